import { type Output, type Template, Tokenizer, TypeGuards } from 'liquidjs';
import { LRUCache } from 'lru-cache';
import { liquid } from './engine.ts';

/** The variable the normalised expressions read tokens from; ids are its keys. */
export const TOKENS_VARIABLE = '__tokens';

export interface CompiledExpression {
  /** The expression as the caller wrote it, for error messages. */
  source: string;
  output: Output;
  tokenId: string;
  /**
   * `{{ <id> }}` alone, the most common expression: the token's data as it is, with no filter. Evaluated without
   * Liquid (src/tokens/expressions/index.ts), which gives the same value for it at a fraction of the cost.
   */
  dataOnly: boolean;
}

export interface CompiledString {
  /** Literal text and expressions, in order. */
  parts: Array<string | CompiledExpression>;
  /** Set when the string is exactly one expression (ignoring surrounding whitespace): it becomes the raw value. */
  whole: CompiledExpression | null;
  tokenIds: string[];
}

/** Thrown for a malformed expression; the caller adds where in the args it was. */
export class ExpressionSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionSyntaxError';
  }
}

// Same strings recur on every call of a reactor (`{{ <id> | json: '$.number' }}` with a different id per card, but
// the same literal templates across retries and batches); long strings are not cached so a few 1 MB args cannot
// pin memory.
const CACHE_ENTRIES = 2_000;
const MAX_CACHED_LENGTH = 4_096;
const cache = new LRUCache<string, CompiledString>({ max: CACHE_ENTRIES });

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
/**
 * The one rewrite done by hand, on the content of an output token that liquidjs itself delimited: a raw UUID is
 * not a valid Liquid identifier (it would parse as subtraction), so `<id>` becomes `__tokens["<id>"].data` and
 * `token: <id>` becomes `__tokens["<id>"]`. Everything after the id (filters, arguments) is left to Liquid.
 */
const LEADING_TOKEN_REFERENCE = new RegExp(`^(\\s*)(token\\s*:\\s*)?(${UUID})(?=\\s|\\||$)`);

export function compileString(input: string): CompiledString {
  const cached = cache.get(input);
  if (cached) return cached;
  const compiled = compile(input);
  if (input.length <= MAX_CACHED_LENGTH) cache.set(input, compiled);
  return compiled;
}

function compile(input: string): CompiledString {
  const { normalised, sources } = normalise(input);
  let templates: Template[];
  try {
    templates = liquid.parse(normalised);
  } catch (error) {
    throw new ExpressionSyntaxError(describeLiquidError(error, sources));
  }

  const parts: CompiledString['parts'] = [];
  const expressions: CompiledExpression[] = [];
  let onlyWhitespaceAround = true;
  for (const template of templates) {
    const token = template.token;
    if (TypeGuards.isHTMLToken(token)) {
      const text = token.getContent();
      if (text.trim() !== '') onlyWhitespaceAround = false;
      if (text !== '') parts.push(text);
      continue;
    }
    const source = sources[expressions.length];
    if (!TypeGuards.isOutputToken(token) || source === undefined) {
      throw new ExpressionSyntaxError('Only output expressions ({{ ... }}) are allowed.');
    }
    const output = template as Output;
    const tokenId = referencedToken(output, source);
    const expression = { source, output, tokenId, dataOnly: isDataOnly(output) };
    expressions.push(expression);
    parts.push(expression);
  }
  const whole = onlyWhitespaceAround && expressions.length === 1 ? (expressions[0] ?? null) : null;
  return { parts, whole, tokenIds: [...new Set(expressions.map((expression) => expression.tokenId))] };
}

/** Rewrites the leading token reference of every output; also where tags and unbalanced braces are refused. */
function normalise(input: string): { normalised: string; sources: string[] } {
  let tokens: ReturnType<Tokenizer['readTopLevelTokens']>;
  try {
    tokens = new Tokenizer(input, liquid.options.operators).readTopLevelTokens(liquid.options);
  } catch (error) {
    throw new ExpressionSyntaxError(describeLiquidError(error, []));
  }
  let normalised = '';
  let copiedUpTo = 0;
  const sources: string[] = [];
  for (const token of tokens) {
    if (TypeGuards.isTagToken(token)) {
      throw new ExpressionSyntaxError(
        `Liquid tags are not allowed ("${token.getText()}"); only output expressions ({{ ... }}) are.`,
      );
    }
    if (!TypeGuards.isOutputToken(token)) continue;
    sources.push(token.getText());
    const [contentBegin, contentEnd] = token.contentRange;
    const match = LEADING_TOKEN_REFERENCE.exec(input.slice(contentBegin, contentEnd));
    if (!match) continue; // not a token reference: referencedToken() rejects it with the expression named
    const [reference, space = '', tokenPrefix, id = ''] = match;
    const lookup = `${TOKENS_VARIABLE}["${id.toLowerCase()}"]${tokenPrefix ? '' : '.data'}`;
    normalised += input.slice(copiedUpTo, contentBegin) + space + lookup;
    copiedUpTo = contentBegin + reference.length;
  }
  return { normalised: normalised + input.slice(copiedUpTo), sources };
}

/**
 * Accepts only the shapes normalise() produces, `__tokens["<id>"]` or `__tokens["<id>"].data`, with literal filter
 * arguments. Anything else (`{{ foo }}`, `{{ "text" }}`, `{{ a | pad_left: other }}`) would either read a variable
 * that does not exist or compute something that is not a token, so it is refused before any token is loaded.
 */
function referencedToken(output: Output, source: string): string {
  const { initial, filters } = output.value;
  const [access, ...rest] = initial.postfix;
  const props = access && rest.length === 0 && TypeGuards.isPropertyAccessToken(access) ? access.props : [];
  const [root, key, field, ...more] = props;
  const valid =
    access !== undefined &&
    TypeGuards.isPropertyAccessToken(access) &&
    access.variable === undefined &&
    TypeGuards.isWordToken(root) &&
    root.content === TOKENS_VARIABLE &&
    TypeGuards.isQuotedToken(key) &&
    new RegExp(`^${UUID}$`).test(key.content) &&
    (field === undefined || (TypeGuards.isWordToken(field) && field.content === 'data')) &&
    more.length === 0;
  if (!valid || !TypeGuards.isQuotedToken(key)) {
    throw new ExpressionSyntaxError(
      `Expression "${source}" must start with a token id (a UUID) or "token: <id>", e.g. {{ <id> | json: '$.number' }}.`,
    );
  }
  for (const filter of filters) {
    for (const arg of filter.args) {
      const literal =
        !Array.isArray(arg) &&
        (TypeGuards.isQuotedToken(arg) || TypeGuards.isNumberToken(arg) || TypeGuards.isLiteralToken(arg));
      if (!literal) {
        throw new ExpressionSyntaxError(
          `Expression "${source}" passes a non-literal argument to "${filter.name}"; filter arguments must be quoted strings or numbers.`,
        );
      }
    }
  }
  return key.content.toLowerCase();
}

/** `__tokens["<id>"].data` with no filter (referencedToken() has already checked the shape). */
function isDataOnly(output: Output): boolean {
  const [access] = output.value.initial.postfix;
  const props = access && TypeGuards.isPropertyAccessToken(access) ? access.props : [];
  return output.value.filters.length === 0 && props.length === 3;
}

/**
 * liquidjs messages end with a position and a source excerpt of the *normalised* text; only the first clause is
 * kept, and the `__tokens[...]` lookups are put back into the form the caller wrote.
 */
function describeLiquidError(error: unknown, sources: string[]): string {
  const raw = error instanceof Error ? error.message : String(error);
  const reason = (raw.split('\n')[0] ?? raw).replace(/, line:\d+, col:\d+$/, '');
  const readable = reason
    .replace(new RegExp(`${TOKENS_VARIABLE}\\["(${UUID})"\\]\\.data`, 'g'), '$1')
    .replace(new RegExp(`${TOKENS_VARIABLE}\\["(${UUID})"\\]`, 'g'), 'token: $1');
  const where = sources.length === 1 ? ` "${sources[0]}"` : '';
  if (/undefined filter: (\S+)/.test(readable)) {
    const name = /undefined filter: (\S+)/.exec(readable)?.[1] ?? '';
    return `Unknown filter "${name}" in expression${where}.`;
  }
  return `Invalid expression${where}: ${readable}.`;
}
