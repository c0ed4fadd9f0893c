import { BadRequestError, collectFieldErrors } from '../errors.ts';
import { isStorableText, UNSTORABLE_TEXT } from '../storable-text.ts';
import { type TokenType, validateTokenData } from './token-data.ts';

/** A token to create, as a client (createToken) or a formula's `tokenize` block describes it. */
export interface TokenRequest {
  type: string;
  data?: unknown;
  metadata?: unknown;
  containers?: unknown;
  expiresAt?: unknown;
}

/** A token request that passed every rule, ready to be encrypted and stored. */
export interface ValidTokenRequest {
  type: TokenType;
  data: unknown;
  mask: unknown;
  metadata: Record<string, unknown>;
  containers: string[];
  expiresAt: Date | null;
}

/** Basis Theory's convention: `/<data classification>/<impact level>/`. */
export const DEFAULT_CONTAINERS: Record<TokenType, string> = {
  TOKEN: '/general/high/',
  CARD: '/pci/high/',
  BANK: '/bank/high/',
};

const TOKEN_TYPES = new Set<string>(['TOKEN', 'CARD', 'BANK']);
const CONTAINER_PATTERN = /^(\/[a-z0-9_-]+)+\/$/;
const MAX_CONTAINERS = 10;

/** A container path: lowercase segments between slashes, `/pci/high/` (also how applications scope `token:use`). */
export function isContainerPath(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_CONTAINER_LENGTH && CONTAINER_PATTERN.test(value);
}
const MAX_CONTAINER_LENGTH = 200;
const MAX_METADATA_KEYS = 50;
const MAX_METADATA_VALUE_LENGTH = 1_000;
// Keys are stored in the clear and named in error fields (`metadata.<key>`): bounded like values, tighter.
const MAX_METADATA_KEY_LENGTH = 100;

/**
 * Checks a token request and returns it normalised. Every offending field is reported at once, keyed by its path
 * under `path` (`data.number`, `expiresAt`, or `tokenize.card.data.number` for a formula's tokenize block).
 * Metadata is not encrypted, so it is kept to flat, short, non-sensitive values (strings, numbers, booleans).
 */
export function validateTokenRequest(request: TokenRequest, now: Date, path = ''): ValidTokenRequest {
  const { errors, fail } = collectFieldErrors(path);

  const type = typeof request.type === 'string' ? request.type.toUpperCase() : '';
  let validated: { data: unknown; mask: unknown } | null = null;
  if (!TOKEN_TYPES.has(type)) {
    fail('type', 'must be one of TOKEN, CARD, BANK');
  } else {
    try {
      validated = validateTokenData(type as TokenType, request.data, now);
    } catch (error) {
      if (!(error instanceof BadRequestError)) throw error;
      for (const [field, messages] of Object.entries(error.errors ?? { data: [error.message] })) {
        for (const message of messages) fail(field, message);
      }
    }
  }
  const metadata = validateMetadata(request.metadata, fail);
  const containers = validateContainers(request.containers, type, fail);
  const expiresAt = validateExpiry(request.expiresAt, now, fail);

  if (Object.keys(errors).length > 0 || validated === null) {
    throw BadRequestError.forFields(errors, 'The token is invalid.');
  }
  return {
    type: type as TokenType,
    data: validated.data,
    mask: validated.mask,
    metadata,
    containers: containers ?? [DEFAULT_CONTAINERS[type as TokenType]],
    expiresAt,
  };
}

/** Records a problem with a field; validation goes on, so one error names every bad field. */
export type Fail = (field: string, message: string) => void;

export function validateMetadata(metadata: unknown, fail: Fail): Record<string, unknown> {
  if (metadata === undefined || metadata === null) return {};
  if (!isPlainObject(metadata)) {
    fail('metadata', 'must be an object');
    return {};
  }
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA_KEYS) fail('metadata', `must have at most ${MAX_METADATA_KEYS} keys`);
  for (const [key, value] of entries) {
    if (!isStorableText(key)) {
      fail('metadata', `keys ${UNSTORABLE_TEXT}`);
      continue;
    }
    if (key.length > MAX_METADATA_KEY_LENGTH) {
      fail('metadata', `keys must be at most ${MAX_METADATA_KEY_LENGTH} characters`);
      continue;
    }
    if (value === null || typeof value === 'boolean') continue;
    if (typeof value === 'number' && Number.isFinite(value)) {
      // As in token data (src/tokens/token-data.ts): an integer past 2^53 arrived with digits already lost.
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        fail(
          `metadata.${key}`,
          'must be a number JSON carries exactly (integers up to 2^53 - 1; send a longer one as a string)',
        );
      }
      continue;
    }
    if (typeof value === 'string') {
      if (value.length > MAX_METADATA_VALUE_LENGTH) {
        fail(`metadata.${key}`, `must be at most ${MAX_METADATA_VALUE_LENGTH} characters`);
      } else if (!isStorableText(value)) fail(`metadata.${key}`, UNSTORABLE_TEXT);
      continue;
    }
    fail(`metadata.${key}`, 'must be a string, number, boolean or null');
  }
  return metadata;
}

function validateContainers(containers: unknown, type: string, fail: Fail): string[] | null {
  if (containers === undefined || containers === null) return null;
  if (!Array.isArray(containers)) {
    fail('containers', 'must be a list of container paths');
    return null;
  }
  if (containers.length === 0) fail('containers', 'must not be empty (omit it for the default container)');
  if (containers.length > MAX_CONTAINERS) fail('containers', `must have at most ${MAX_CONTAINERS} entries`);
  for (const container of containers) {
    if (!isContainerPath(container)) {
      const example = TOKEN_TYPES.has(type) ? DEFAULT_CONTAINERS[type as TokenType] : '/general/high/';
      fail('containers', `${JSON.stringify(container)} is not a container path like "${example}" (lowercase segments)`);
    }
  }
  return [...new Set(containers as string[])];
}

function validateExpiry(expiresAt: unknown, now: Date, fail: Fail): Date | null {
  if (expiresAt === undefined || expiresAt === null) return null;
  const date = expiresAt instanceof Date ? expiresAt : typeof expiresAt === 'string' ? new Date(expiresAt) : null;
  if (date === null || Number.isNaN(date.getTime())) {
    fail('expiresAt', 'must be an ISO 8601 date and time');
    return null;
  }
  if (date.getTime() <= now.getTime()) fail('expiresAt', 'must be in the future');
  return date;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
