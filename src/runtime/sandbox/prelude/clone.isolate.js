// structuredClone for the values formulas pass around: JSON-like data, Date, RegExp, Map, Set, ArrayBuffer, typed
// arrays, DataView, errors and boxed primitives, with cycles and shared references kept. As in Node, functions,
// symbols, promises and weak collections throw a DataCloneError, and other objects come back as plain objects.
const TYPED_ARRAYS = Object.freeze({
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
});
// The brand of a typed array, which neither a subclass (Buffer) nor a Symbol.toStringTag of the formula's changes.
const typedArrayName = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype),
  Symbol.toStringTag,
).get;
const ERROR_TYPES = Object.freeze({ Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError });
const UNCLONEABLE = [NativePromise, WeakMap, WeakSet, WeakRef];

function uncloneable(value) {
  let text;
  if (typeof value === 'function') text = apply(functionToString, value, []);
  else if (typeof value === 'symbol') text = NativeString(value);
  else text = `#<${value?.constructor?.name ?? 'Object'}>`;
  return new DOMException(`${text.slice(0, 200)} could not be cloned.`, 'DataCloneError');
}

function cloneInto(value, seen) {
  if (typeof value === 'function' || typeof value === 'symbol') throw uncloneable(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return seen.get(value);
  const keep = (copy) => {
    seen.set(value, copy);
    return copy;
  };
  if (isArray(value)) {
    const copy = keep(new Array(value.length));
    for (const key of Object.keys(value)) copy[key] = cloneInto(value[key], seen);
    return copy;
  }
  if (value instanceof Date) return keep(new Date(Date.prototype.getTime.call(value)));
  if (value instanceof RegExp) return keep(new RegExp(value.source, value.flags));
  if (value instanceof ArrayBuffer) return keep(ArrayBuffer.prototype.slice.call(value, 0));
  if (value instanceof DataView) {
    return keep(new DataView(cloneInto(value.buffer, seen), value.byteOffset, value.byteLength));
  }
  if (ArrayBuffer.isView(value)) {
    const Typed = TYPED_ARRAYS[apply(typedArrayName, value, [])];
    return keep(new Typed(cloneInto(value.buffer, seen), value.byteOffset, value.length));
  }
  if (value instanceof Map) {
    const copy = keep(new Map());
    for (const [k, v] of Map.prototype.entries.call(value)) copy.set(cloneInto(k, seen), cloneInto(v, seen));
    return copy;
  }
  if (value instanceof Set) {
    const copy = keep(new Set());
    for (const v of Set.prototype.values.call(value)) copy.add(cloneInto(v, seen));
    return copy;
  }
  if (value instanceof NativeError) {
    const Type = hasOwn(ERROR_TYPES, value.name) ? ERROR_TYPES[value.name] : NativeError;
    const copy = keep(new Type(NativeString(value.message)));
    if (typeof value.stack === 'string') copy.stack = value.stack;
    if ('cause' in value) copy.cause = cloneInto(value.cause, seen);
    return copy;
  }
  for (const Boxed of [Boolean, Number, String, BigInt]) {
    if (value instanceof Boxed) return keep(Object(Boxed.prototype.valueOf.call(value)));
  }
  if (value instanceof Symbol || UNCLONEABLE.some((Type) => value instanceof Type)) throw uncloneable(value);
  const copy = keep({});
  for (const key of Object.keys(value)) copy[key] = cloneInto(value[key], seen);
  return copy;
}

G.structuredClone = function structuredClone(value) {
  if (arguments.length === 0) throw new TypeError('The "value" argument must be specified');
  return cloneInto(value, new Map());
};
