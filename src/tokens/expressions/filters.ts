import { JSONPath } from 'jsonpath-plus';

/**
 * Raised by a filter with a message that is safe to show the caller: it describes what was wrong with the
 * expression, never the token data it was applied to (a failing `to_number` must not echo a card number).
 */
export class FilterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FilterError';
  }
}

// pad_left is the one filter whose output size the caller chooses; without a cap `pad_left: 1e9` is a memory bomb.
export const MAX_PAD_LENGTH = 1024;

/** The token filters, by their Liquid names. Each is pure and synchronous, so evaluation never awaits. */
export const tokenFilters: Record<string, (value: unknown, ...args: unknown[]) => unknown> = {
  json: (value, path) => jsonPath(value, path),
  last4: (value) => text(value, 'last4').slice(-4),
  card_bin: (value) => cardBin(value),
  to_number: (value) => toNumber(value),
  to_string: (value) => (typeof value === 'string' ? value : (JSON.stringify(value) ?? '')),
  to_boolean: (value) => toBoolean(value),
  pad_left: (value, length, padding = ' ') => padLeft(value, length, padding),
};

function jsonPath(value: unknown, path: unknown): unknown {
  if (typeof path !== 'string' || !path.startsWith('$')) {
    throw new FilterError(`the json filter needs a JSONPath starting with '$', e.g. json: '$.number'`);
  }
  // Generic tokens often hold a JSON document as a string; reading into it is what a caller writing json: means.
  let document = value;
  if (typeof value === 'string') {
    try {
      document = JSON.parse(value);
    } catch {
      throw new FilterError(`the json filter applies to object data; this token's data is a plain string`);
    }
  }
  if (document === null || typeof document !== 'object') {
    throw new FilterError(`the json filter applies to object data; this token's data is a ${typeof document}`);
  }
  let matches: unknown;
  try {
    // eval: false refuses script and filter expressions (`?(...)`, `(...)`): a path selects, it never runs code.
    matches = JSONPath({ path, json: document as object, wrap: true, eval: false });
  } catch {
    throw new FilterError(`'${path}' is not a supported JSONPath (filter and script expressions are not allowed)`);
  }
  const count = Array.isArray(matches) ? matches.length : 0;
  if (count !== 1) {
    throw new FilterError(`JSONPath '${path}' matched ${count} values; it must match exactly one`);
  }
  return (matches as unknown[])[0];
}

function text(value: unknown, filter: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new FilterError(`${filter} applies to a string or a number, not ${describe(value)}`);
}

/**
 * First 8 digits for numbers of 16 digits or more, else the first 6: the 8-digit BIN is what the networks now
 * assign for 16-digit cards, and it matches BT's card_bin. The token mask keeps only 6 because that is what PCI
 * allows to be displayed for every card length.
 */
function cardBin(value: unknown): string {
  const digits = text(value, 'card_bin').replace(/[\s-]/g, '');
  if (!/^\d{6,}$/.test(digits)) throw new FilterError('card_bin applies to a card number of digits');
  return digits.slice(0, digits.length >= 16 ? 8 : 6);
}

const NUMERIC = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function toNumber(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && NUMERIC.test(value.trim())) {
    const parsed = Number(value.trim());
    if (Number.isFinite(parsed)) return parsed;
  }
  throw new FilterError(`to_number could not convert ${describe(value)} to a number`);
}

function toBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 1 || value === 0) return value === 1;
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (word === 'true' || word === '1') return true;
    if (word === 'false' || word === '0') return false;
  }
  throw new FilterError(`to_boolean could not convert ${describe(value)} to a boolean`);
}

function padLeft(value: unknown, length: unknown, padding: unknown): string {
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > MAX_PAD_LENGTH) {
    throw new FilterError(`pad_left needs a whole length between 0 and ${MAX_PAD_LENGTH}`);
  }
  if (typeof padding !== 'string' || [...padding].length !== 1) {
    throw new FilterError(`pad_left needs a single padding character, e.g. pad_left: 8, '0'`);
  }
  return text(value, 'pad_left').padStart(length, padding);
}

// Names the kind of value only: the value itself is token data and must not appear in an error.
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return 'this string';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
