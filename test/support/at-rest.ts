/**
 * Every column of a stored row as one text, sealed bytes as latin1 and the rest as JSON, so that anything a test
 * looks for in the clear would show, whichever column held it.
 */
export function rowAsText(row: Record<string, unknown>): string {
  return Object.values(row)
    .map((value) => (value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : JSON.stringify(value)))
    .join('\n');
}
