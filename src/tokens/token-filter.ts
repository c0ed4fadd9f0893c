import { MAX_LISTED_IDS } from '../db/pagination.ts';
import { BadRequestError, collectFieldErrors } from '../errors.ts';
import { isStorableText, UNSTORABLE_TEXT } from '../storable-text.ts';
import type { TokenType } from './token-data.ts';
import { isContainerPath, validateMetadata } from './token-input.ts';

/** What the `tokens` list is narrowed to, as a client gives it; every part given must match. */
export interface TokenFilter {
  ids?: readonly string[] | null;
  type?: TokenType | null;
  fingerprint?: string | null;
  metadata?: Record<string, unknown> | null;
  container?: string | null;
}

/** A checked filter; null parts match every token. */
export interface ValidTokenFilter {
  /** Only these tokens; an empty list matches none. */
  ids: readonly string[] | null;
  type: TokenType | null;
  fingerprint: string | null;
  /** Every key must be in the token's metadata with this value; null or empty: any metadata. */
  metadata: Record<string, unknown> | null;
  /** A container path: the token must have this container or one below it (`/pci/` matches `/pci/high/`). */
  container: string | null;
  /** The application's token containers: only tokens one of these covers are listed; null: every token. */
  reach: readonly string[] | null;
}

// Fingerprints are 43 characters (base64url of an HMAC-SHA-256); a longer one cannot match anything.
const MAX_FINGERPRINT_LENGTH = 200;

/**
 * Checks a filter as createToken checks the same fields: metadata values are flat (string, number, boolean, null),
 * the container is a path like `/pci/`, and no text holds what a Postgres text column cannot (a failed query
 * otherwise). Every bad field is named at once (BAD_REQUEST).
 */
export function validateTokenFilter(filter: TokenFilter, reach: readonly string[] | null): ValidTokenFilter {
  const { errors, fail } = collectFieldErrors();
  const { ids, fingerprint, container } = filter;
  if (ids != null && ids.length > MAX_LISTED_IDS) fail('ids', `must list at most ${MAX_LISTED_IDS} ids`);
  if (fingerprint != null) {
    if (fingerprint.length > MAX_FINGERPRINT_LENGTH) {
      fail('fingerprint', `must be at most ${MAX_FINGERPRINT_LENGTH} characters`);
    } else if (!isStorableText(fingerprint)) fail('fingerprint', UNSTORABLE_TEXT);
  }
  const metadata = filter.metadata == null ? null : validateMetadata(filter.metadata, fail);
  if (container != null && !isContainerPath(container)) {
    fail('container', `${JSON.stringify(container)} is not a container path like "/pci/" (lowercase segments)`);
  }
  if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The token filter is invalid.');
  return {
    ids: ids ?? null,
    type: filter.type ?? null,
    fingerprint: fingerprint ?? null,
    metadata: metadata && Object.keys(metadata).length > 0 ? metadata : null,
    container: container ?? null,
    reach,
  };
}
