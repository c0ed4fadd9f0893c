import { BadRequestError } from '../errors.ts';
import { isPlainObject, type TokenRequest, type ValidTokenRequest, validateTokenRequest } from './token-input.ts';

export interface PlannedToken {
  id: string;
  request: ValidTokenRequest;
}

export interface TokenizationPlan {
  /** `tokenize` with every tokenized value replaced by the id its token will have. */
  result: unknown;
  tokens: PlannedToken[];
}

const TOKEN_REQUEST_KEYS = new Set(['type', 'data', 'metadata', 'containers', 'expiresAt', 'expires_at']);
const MAX_DEPTH = 32;

/**
 * Basis Theory's create-token fields this gateway has no counterpart for, in both spellings. A request naming one is
 * refused with the reason: walked as a plain object instead, it became a token per member (the card number a generic
 * token without the card's checks or mask), and ignored, a formula counting on it (`deduplicate_token`, a custom
 * `id`) would be told its tokens were made as asked.
 */
const UNSUPPORTED_TOKEN_FIELDS: Record<string, string> = {
  id: 'token ids are made by the gateway',
  privacy: 'tokens have no privacy settings here',
  mask: 'masks are made by token type',
  fingerprint_expression: 'fingerprints are made by token type',
  fingerprintExpression: 'fingerprints are made by token type',
  search_indexes: 'tokens have no search indexes here (filter `tokens` by metadata or fingerprint)',
  searchIndexes: 'tokens have no search indexes here (filter `tokens` by metadata or fingerprint)',
  deduplicate_token: 'tokens are not deduplicated (find a card’s tokens by fingerprint)',
  deduplicateToken: 'tokens are not deduplicated (find a card’s tokens by fingerprint)',
};

const isRequestKey = (key: string) => TOKEN_REQUEST_KEYS.has(key) || Object.hasOwn(UNSUPPORTED_TOKEN_FIELDS, key);

/**
 * A value a formula wrote as a token create request: a plain object with a string `type` and a `data` member and no
 * members but those of a Basis Theory create request (`metadata`, `containers`, `expiresAt` or `expires_at`, or one
 * of the UNSUPPORTED_TOKEN_FIELDS, which `planTokenization` refuses).
 */
export function isTokenRequest(value: unknown): value is TokenRequest & { expires_at?: unknown } {
  return (
    isPlainObject(value) && typeof value.type === 'string' && 'data' in value && Object.keys(value).every(isRequestKey)
  );
}

function refuseUnsupportedFields(request: object, path: string): void {
  const unsupported = Object.keys(request).filter((key) => Object.hasOwn(UNSUPPORTED_TOKEN_FIELDS, key));
  if (unsupported.length === 0) return;
  const errors = Object.fromEntries(
    unsupported.map((key) => [`${path}.${key}`, [`is not supported: ${UNSUPPORTED_TOKEN_FIELDS[key]}`]]),
  );
  throw BadRequestError.forFields(errors, 'A token request names a field this gateway does not support.');
}

/**
 * Plans the tokens of a formula's `tokenize` block, "in the same way requests are tokenized via the Tokenize
 * endpoint". The rule, applied from the root down:
 * - `null` or `undefined` stays as it is (there is nothing to tokenize); object members that are `undefined` drop.
 * - a token request (see `isTokenRequest`) becomes that token (one naming a field BT has and this gateway has not is
 *   refused);
 * - any other plain object is walked, each member by this same rule (so requests may sit at any depth);
 * - any other value (string, number, boolean, array) becomes a `TOKEN` token with that value as its data.
 * The result has the same shape with each tokenized value replaced by its token's id. Every request is validated as
 * createToken validates (errors keyed by path, e.g. `tokenize.card.data.number`) before anything is stored, and more
 * than `maxTokens` tokens is refused, so a plan is all or nothing.
 */
export function planTokenization(
  tokenize: unknown,
  options: {
    now: Date;
    maxTokens: number;
    newId: () => string;
    /** The name errors are keyed under: `tokenize` (a formula's block, the default) or `request` (the mutation). */
    root?: string;
  },
): TokenizationPlan {
  const tokens: PlannedToken[] = [];
  const root = options.root ?? 'tokenize';

  const plan = (request: TokenRequest, path: string): string => {
    if (tokens.length >= options.maxTokens) {
      const what = root === 'tokenize' ? 'A tokenize block' : 'A tokenize request';
      const message = `${what} may create at most ${options.maxTokens} tokens.`;
      throw BadRequestError.forFields({ [root]: [message] }, message);
    }
    const id = options.newId();
    tokens.push({ id, request: validateTokenRequest(request, options.now, path) });
    return id;
  };

  const walk = (value: unknown, path: string, depth: number): unknown => {
    if (value === null || value === undefined) return value;
    if (depth > MAX_DEPTH) {
      throw BadRequestError.forFields({ [path]: [`is nested deeper than ${MAX_DEPTH} levels`] });
    }
    if (isTokenRequest(value)) {
      refuseUnsupportedFields(value, path);
      const { expires_at: expiresAtSnake, ...request } = value;
      return plan({ ...request, expiresAt: request.expiresAt ?? expiresAtSnake }, path);
    }
    if (isPlainObject(value)) {
      const result: Record<string, unknown> = {};
      for (const [key, member] of Object.entries(value)) {
        if (member !== undefined) result[key] = walk(member, `${path}.${key}`, depth + 1);
      }
      return result;
    }
    return plan({ type: 'TOKEN', data: value }, path);
  };

  return { result: walk(tokenize, root, 0), tokens };
}
