import { BadRequestError } from '../errors.ts';
import { isStorableText, UNSTORABLE_TEXT } from '../storable-text.ts';

/**
 * Keyset pagination. Ids are UUIDv7 (time-ordered), so `where id > $after order by id limit n+1` over an index on
 * (tenant_id, id) is as fast on page 1,000 as on page 1, and a walk through the rows there were when it began sees
 * each of them once, whatever is inserted meanwhile. It is no feed of new rows: an id is made before its insert
 * commits, so a row can commit behind a cursor already handed out (the README says so).
 */
export interface PageRequest {
  /** Rows to return (already validated). */
  size: number;
  /** Exclusive lower bound: the id of the last row of the previous page. */
  afterId: string | null;
}

export interface Page<T> {
  rows: T[];
  hasNextPage: boolean;
}

/** How many ids a list's `ids` filter may name (`reactors`, `tokens`). */
export const MAX_LISTED_IDS = 100;

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeCursor(id: string): string {
  return Buffer.from(`id:${id}`).toString('base64url');
}

export function pageRequest(
  args: { first?: number | null; after?: string | null; last?: number | null; before?: string | null },
  limits: { default: number; max: number },
): PageRequest {
  if (args.last != null || args.before != null) {
    throw BadRequestError.forFields({
      [args.last != null ? 'last' : 'before']: ['lists page forward only: use first/after'],
    });
  }
  const size = args.first ?? limits.default;
  if (!Number.isInteger(size) || size < 1 || size > limits.max) {
    throw BadRequestError.forFields({ first: [`must be between 1 and ${limits.max}`] });
  }
  if (args.after == null) return { size, afterId: null };
  const decoded = Buffer.from(args.after, 'base64url').toString();
  const id = decoded.startsWith('id:') ? decoded.slice(3) : '';
  if (!UUID_PATTERN.test(id)) throw BadRequestError.forFields({ after: ['is not a cursor returned by this list'] });
  return { size, afterId: id };
}

/** Stores fetch `size + 1` rows; the extra one only tells that there is a next page. */
export function toPage<T>(rows: T[], request: PageRequest): Page<T> {
  return { rows: rows.slice(0, request.size), hasNextPage: rows.length > request.size };
}

/**
 * SQL LIKE pattern for the seeds' "wildcard search": a substring match, `*` as an explicit wildcard. A search no
 * stored text could hold is a BAD_REQUEST on `field`, not a failed query.
 */
export function wildcardPattern(search: string, field: string): string {
  if (!isStorableText(search)) throw BadRequestError.forFields({ [field]: [UNSTORABLE_TEXT] });
  const escaped = search.replace(/[\\%_]/g, (char) => `\\${char}`).replaceAll('*', '%');
  return `%${escaped}%`;
}
