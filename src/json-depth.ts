/**
 * How deeply JSON may nest, in what clients send (args, token data) and what formulas return (raw, tokenize).
 * Deeper values broke recursive steps past a few thousand levels: JSON.stringify overflowed its stack (a 500 for
 * 10,000-level args), and a formula result 2,000 levels deep could not be posted from its worker thread at all, so
 * the call hung until its timeout and an async request stayed RUNNING. 64 levels is far more than any card, bank
 * account, args object or result needs, and far from where anything overflows. (Node's own JSON.parse, which reads
 * request bodies, is not recursive in this way and accepts deep input.)
 */
export const MAX_JSON_DEPTH = 64;

/** True when `value` nests objects or arrays more than `max` levels deep. Iterative, so deep input cannot overflow it. */
export function nestedDeeperThan(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop() as [unknown, number];
    if (item === null || typeof item !== 'object') continue;
    if (depth >= max) return true;
    const children = Array.isArray(item) ? item : Object.values(item);
    for (const child of children) if (child !== null && typeof child === 'object') pending.push([child, depth + 1]);
  }
  return false;
}
