/**
 * What a Postgres `text` or `jsonb` column can hold. Neither holds the NUL character (U+0000): the query fails
 * ("invalid byte sequence", "unsupported Unicode escape sequence"). jsonb also refuses an unpaired UTF-16
 * surrogate, and text would silently store U+FFFD in its place. Input that goes into such a column is checked here
 * first, so the client gets a BAD_REQUEST naming the field instead of a failed query (an "Unexpected error.").
 * Token data is sealed into `bytea` and async args and results are stored as `json` (migration 0010), which keeps
 * them byte for byte: none of those go through this check.
 */

export const UNSTORABLE_TEXT = 'must not contain the NUL character (U+0000) or an unpaired UTF-16 surrogate';

// With the `u` flag a surrogate pair is one code point, so \p{Cs} matches only unpaired surrogates. (The target
// library stays ES2023, which lacks String.prototype.isWellFormed, so that nothing newer than Node 20 slips in.)
const UNPAIRED_SURROGATE = /\p{Cs}/u;

export function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && !UNPAIRED_SURROGATE.test(text);
}
