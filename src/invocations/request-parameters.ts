/**
 * Checks invocation args against the formula's `request_parameters`, after detokenization (a single complex token
 * may supply several parameters, so checking before would reject valid requests).
 */
import { BadRequestError, type FieldErrors } from '../errors.ts';
import { castParameterValue, isJsonObject, type RequestParameter } from '../formulas/rules.ts';

/**
 * Returns a new args object with every declared parameter cast to its type at its dotted path (`user.address.city`
 * walks `args.user.address`); the input is not mutated. Undeclared args pass through unchanged: the seeds forward
 * them (DESIGN.md section 4), and they are how a formula receives arrays and free-form objects.
 *
 * - `args` null or absent counts as `{}`; any other non-object is rejected.
 * - A parameter whose value is absent or null is missing: an error if required, left as it is if optional (a
 *   detokenized field that does not exist reads as null, and that is not a type error of the client).
 * - An intermediate that holds a scalar or an array cannot hold the parameter: error on that intermediate's path.
 * - Casting is `castParameterValue`: "123" -> 123, "true" -> true, 123 -> "123" for STRING; anything else -> 400.
 *
 * Throws one BAD_REQUEST with every offending path (`args.user.first_name: ['is required']`).
 */
export function validateArgs(parameters: RequestParameter[], args: unknown): Record<string, unknown> {
  if (args === null || args === undefined) args = {};
  if (!isJsonObject(args)) throw BadRequestError.forFields({ args: ['must be an object'] }, 'The args are invalid.');

  const errors: FieldErrors = {};
  const writes: Array<{ segments: string[]; value: unknown }> = [];

  for (const parameter of parameters) {
    const segments = parameter.name.split('.');
    const found = readPath(args, segments);
    if (found.kind === 'blocked') {
      addError(errors, `args.${segments.slice(0, found.depth + 1).join('.')}`, 'must be an object');
      continue;
    }
    if (found.kind === 'missing' || found.value === null) {
      if (!parameter.optional) addError(errors, `args.${parameter.name}`, 'is required');
      continue;
    }
    const cast = castParameterValue(parameter.type, found.value);
    if (!cast.ok) addError(errors, `args.${parameter.name}`, cast.message);
    else if (cast.value !== found.value) writes.push({ segments, value: cast.value });
  }

  if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The args are invalid.');
  return writeAll(args, writes);
}

// Module-level, not a closure per call: tsx compiles with esbuild's keepNames, which names a closure with an
// Object.defineProperty each time one is made (perf: 1.8% of a worker's CPU under load, BENCHMARKS.md).
function addError(errors: FieldErrors, field: string, message: string): void {
  const list = errors[field];
  if (!list) errors[field] = [message];
  else if (!list.includes(message)) list.push(message);
}

type PathRead = { kind: 'found'; value: unknown } | { kind: 'missing' } | { kind: 'blocked'; depth: number };

// Only own properties count: `args.constructor` or `args.__proto__` must never reach Object.prototype.
function readPath(root: Record<string, unknown>, segments: string[]): PathRead {
  let current: Record<string, unknown> = root;
  for (let depth = 0; depth < segments.length; depth++) {
    const segment = segments[depth]!;
    const value = Object.hasOwn(current, segment) ? current[segment] : undefined;
    if (depth === segments.length - 1) return value === undefined ? { kind: 'missing' } : { kind: 'found', value };
    if (value === undefined || value === null) return { kind: 'missing' };
    if (!isJsonObject(value)) return { kind: 'blocked', depth };
    current = value;
  }
  return { kind: 'missing' };
}

/** Copies only the objects on the written paths, each at most once; untouched subtrees are shared with the input. */
function writeAll(args: Record<string, unknown>, writes: Array<{ segments: string[]; value: unknown }>) {
  const root = { ...args };
  const copies = new WeakSet<object>([root]);
  for (const { segments, value } of writes) {
    let current = root;
    for (const segment of segments.slice(0, -1)) {
      let child = current[segment] as Record<string, unknown>;
      if (!copies.has(child)) {
        child = { ...child };
        copies.add(child);
        defineValue(current, segment, child);
      }
      current = child;
    }
    defineValue(current, segments[segments.length - 1]!, value);
  }
  return root;
}

// Plain assignment of a `__proto__` key (an own key when args come from JSON.parse) would set the prototype.
function defineValue(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
