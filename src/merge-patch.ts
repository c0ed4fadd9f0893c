/**
 * JSON merge patch as RFC 7386 (reissued unchanged in substance as RFC 7396) defines it, written from the RFC's own
 * pseudocode rather than taken from npm: `json-merge-patch` 1.0.2 (checked) mutates its target in place and assigns
 * keys with `target[key] =`, so a `__proto__` key in a patch would set a prototype; and it would mean a runtime
 * dependency plus separate typings for 10 lines.
 * Inputs are never mutated; the result shares untouched subtrees with them, so treat it as read-only or copy it.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return patch;
  const result: Record<string, unknown> = isJsonObject(target) ? { ...target } : {};
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete result[name];
    else defineValue(result, name, mergePatch(Object.hasOwn(result, name) ? result[name] : undefined, value));
  }
  return result;
}

// Plain assignment of a `__proto__` key (which JSON.parse does produce as an own key) would set the prototype.
function defineValue(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
