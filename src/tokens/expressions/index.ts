import { Context, toValueSync } from 'liquidjs';
import { BadRequestError } from '../../errors.ts';
import {
  type CompiledExpression,
  type CompiledString,
  compileString,
  ExpressionSyntaxError,
  TOKENS_VARIABLE,
} from './compile.ts';
import { liquid } from './engine.ts';
import { FilterError } from './filters.ts';
import { describePath, findStrings, pathOf, replaceStrings, type StringSite } from './walk.ts';

export { ALLOWED_FILTERS } from './engine.ts';

/** A token as an expression sees it; `{{ token: <id> | json: '$.data.number' }}` paths are over these fields. */
export interface DetokenizableToken {
  id: string;
  type: string;
  data: unknown;
  metadata: Record<string, unknown> | null;
  containers: string[];
  createdAt: string;
  expiresAt: string | null;
  fingerprint: string | null;
  mask: unknown;
}

/**
 * Loads tokens by id (lowercase UUIDs). Called once per request with every distinct id, and not at all when the
 * args hold no expression. The caller scopes it to the tenant, drops expired and invisible tokens, and may throw
 * ForbiddenError (token:use); an id missing from the map is reported as not found.
 */
export type TokenLoader = (ids: string[]) => Promise<Map<string, DetokenizableToken>>;

export interface DetokenizeOptions {
  /** Distinct tokens one request may reference (DESIGN section 10). */
  maxTokens?: number;
}

const DEFAULT_MAX_TOKENS = 100;

/**
 * `{{ ... }}` expressions one request's args may hold, repeats of a token included. Liquid's parse of one string
 * takes time that grows with the square of its expressions, on the thread that serves every request: 60,000 in one
 * 2.6 MB string held the gateway for 18 s (6.6 s here alone). A thousand, in one string, parse in 17-28 ms once
 * warm, and leave room for 100 tokens read field by field.
 */
export const MAX_EXPRESSIONS = 1_000;

interface ExpressionSite {
  site: StringSite;
  compiled: CompiledString;
}

/**
 * Replaces every `{{ ... }}` expression in string values of `args` with token data. A string that is exactly one
 * expression becomes the value itself (an object, a number after to_number); expressions inside longer strings
 * are interpolated as text, objects as JSON. Keys are never evaluated, and inserted data is never scanned again,
 * so token data containing `{{ }}` arrives verbatim.
 *
 * The result shares unchanged subtrees with `args` (and is `args` itself when there is nothing to replace); the
 * input is never mutated.
 */
export async function detokenize(
  args: unknown,
  loadTokens: TokenLoader,
  options: DetokenizeOptions = {},
): Promise<unknown> {
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
  const sites = compileSites(args);
  if (sites.length === 0) return args;

  const ids = distinctIds(sites);
  checkTokenCount(ids, maxTokens);

  const loaded = lowercaseKeys(await loadTokens(ids));
  for (const { site, compiled } of sites) {
    for (const part of compiled.parts) {
      if (typeof part !== 'string' && !loaded.has(part.tokenId)) {
        // Worded the same for unknown, expired and another tenant's ids, so it reveals nothing about which.
        fail(site, `Token "${part.tokenId}" in expression "${part.source}" was not found.`);
      }
    }
  }

  const evaluation: Evaluation = { loaded, tokens: undefined, context: undefined };
  const replacements = sites.map(({ site, compiled }) => ({ site, value: render(compiled, evaluation, site) }));
  return replaceStrings(args, replacements);
}

/** The distinct token ids `args` references, lowercase, in order of first use. Throws on a malformed expression. */
export function findTokenIds(args: unknown): string[] {
  return distinctIds(compileSites(args));
}

/**
 * For deferred detokenization (src/tokens/sealing.ts): the distinct token ids `args` references and, when every
 * expression in it is a whole `{{ <id> }}` (the token's data as the value, no filter), the path of each. `sites` is
 * null when some expression needs Liquid or is part of a longer string: those are rendered by `detokenize`. Throws
 * as `detokenize` does for a malformed expression or too many tokens.
 */
export function planDataSites(
  args: unknown,
  options: DetokenizeOptions = {},
): { ids: string[]; sites: Array<{ path: Array<string | number>; tokenId: string }> | null } {
  const sites = compileSites(args);
  const ids = distinctIds(sites);
  checkTokenCount(ids, options.maxTokens ?? DEFAULT_MAX_TOKENS);
  const plain = sites.every(({ compiled }) => compiled.whole?.dataOnly === true);
  return {
    ids,
    sites: plain
      ? sites.map(({ site, compiled }) => ({
          path: pathOf(site),
          tokenId: (compiled.whole as CompiledExpression).tokenId,
        }))
      : null,
  };
}

function checkTokenCount(ids: string[], maxTokens: number): void {
  if (ids.length > maxTokens) {
    const message = `At most ${maxTokens} tokens can be detokenized in one request; the args reference ${ids.length}.`;
    throw BadRequestError.forFields({ args: [message] }, message);
  }
}

function compileSites(args: unknown): ExpressionSite[] {
  const found = findStrings(args, (value) => value.includes('{{'));
  let expressions = 0;
  for (const site of found) expressions += openingsIn(site.value);
  if (expressions > MAX_EXPRESSIONS) {
    const message = `At most ${MAX_EXPRESSIONS} {{ }} expressions can be in one request's args; these hold ${expressions}.`;
    throw BadRequestError.forFields({ args: [message] }, message);
  }
  return found.map((site) => {
    try {
      return { site, compiled: compileString(site.value) };
    } catch (error) {
      if (error instanceof ExpressionSyntaxError) fail(site, error.message);
      throw error;
    }
  });
}

/** How many `{{` the string holds: its expressions, counted before any is parsed. */
function openingsIn(value: string): number {
  let count = 0;
  for (let at = value.indexOf('{{'); at !== -1; at = value.indexOf('{{', at + 2)) count++;
  return count;
}

function distinctIds(sites: ExpressionSite[]): string[] {
  const ids = new Set<string>();
  for (const { compiled } of sites) for (const id of compiled.tokenIds) ids.add(id);
  return [...ids];
}

/** The loaded tokens, and their Liquid scope and context, made only if an expression needs Liquid. */
interface Evaluation {
  loaded: Map<string, DetokenizableToken>;
  tokens: Record<string, DetokenizableToken> | undefined;
  context: Context | undefined;
}

function render(compiled: CompiledString, evaluation: Evaluation, site: StringSite): unknown {
  if (compiled.whole) return evaluate(compiled.whole, evaluation, site) ?? null;
  let text = '';
  for (const part of compiled.parts) text += typeof part === 'string' ? part : asText(evaluate(part, evaluation, site));
  return text;
}

function evaluate(expression: CompiledExpression, evaluation: Evaluation, site: StringSite): unknown {
  if (expression.dataOnly) return evaluation.loaded.get(expression.tokenId)?.data;
  evaluation.tokens ??= tokensScope(evaluation.loaded);
  evaluation.context ??= new Context({ [TOKENS_VARIABLE]: evaluation.tokens }, liquid.options, {}, { liquid });
  try {
    // Every filter is synchronous and the tokens are already loaded, so the generator completes without awaiting.
    return toValueSync(expression.output.value.value(evaluation.context, false));
  } catch (error) {
    // Only FilterError messages are ours and known to be free of token data; anything from liquidjs is summarised.
    const reason = error instanceof FilterError ? `: ${error.message}` : ' could not be evaluated';
    return fail(site, `Expression "${expression.source}"${reason}.`);
  }
}

function asText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Only the documented fields reach expressions, whatever else the loader's rows carry. */
function tokensScope(loaded: Map<string, DetokenizableToken>): Record<string, DetokenizableToken> {
  const tokens: Record<string, DetokenizableToken> = Object.create(null);
  for (const [id, token] of loaded) {
    tokens[id] = {
      id: token.id,
      type: token.type,
      data: token.data,
      metadata: token.metadata,
      containers: token.containers,
      createdAt: token.createdAt,
      expiresAt: token.expiresAt,
      fingerprint: token.fingerprint,
      mask: token.mask,
    };
  }
  return tokens;
}

function lowercaseKeys(tokens: Map<string, DetokenizableToken>): Map<string, DetokenizableToken> {
  let lowercase = true;
  for (const id of tokens.keys()) if (id !== id.toLowerCase()) lowercase = false;
  if (lowercase) return tokens;
  const result = new Map<string, DetokenizableToken>();
  for (const [id, token] of tokens) result.set(id.toLowerCase(), token);
  return result;
}

function fail(site: StringSite, message: string): never {
  throw BadRequestError.forFields({ [describePath(site)]: [message] }, message);
}
