import { BadRequestError, collectFieldErrors, type FieldErrors } from '../errors.ts';

export type TokenType = 'TOKEN' | 'CARD' | 'BANK';

export interface ValidatedTokenData {
  /** The data to encrypt, normalised (card number without separators, month and year as numbers). */
  data: unknown;
  /** What may be shown without `token:read` of the data; null for generic tokens, whose data has no safe part. */
  mask: unknown;
}

export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'unknown';

/**
 * Checks token data by type and returns its normalised form and mask. Every offending field is reported at once
 * (keys like `data.number`), so a client fixes a form in one round trip.
 *
 * TOKEN accepts any JSON value except null, "" and empty objects/arrays: a non-empty string, a finite number, a
 * boolean, an object or an array. Numbers and booleans are allowed because BT's generic token takes them and
 * refusing them buys nothing; emptiness is refused because a token of nothing is always a client mistake.
 */
export function validateTokenData(type: TokenType, data: unknown, now = new Date()): ValidatedTokenData {
  switch (type) {
    case 'TOKEN':
      return validateGeneric(data);
    case 'CARD':
      return validateCard(data, now);
    case 'BANK':
      return validateBank(data);
    default:
      throw BadRequestError.forFields({ type: [`must be one of TOKEN, CARD, BANK`] });
  }
}

function validateGeneric(data: unknown): ValidatedTokenData {
  const problem = genericProblem(data);
  if (problem) throw BadRequestError.forFields({ data: [problem] });
  return { data, mask: null };
}

function genericProblem(data: unknown): string | null {
  if (data === null || data === undefined) return 'is required';
  if (typeof data === 'string') return data.length === 0 ? 'must not be an empty string' : null;
  if (typeof data === 'boolean') return null;
  if (typeof data === 'number') return numberProblem(data);
  if (Array.isArray(data)) return data.length === 0 ? 'must not be an empty array' : jsonProblem(data);
  if (isPlainObject(data)) return Object.keys(data).length === 0 ? 'must not be an empty object' : jsonProblem(data);
  return 'must be a string, number, boolean, object or array';
}

/**
 * A vault must give back what it was given. JSON numbers are read as doubles, so an integer past 2^53 has already lost
 * digits when it arrives (9007199254740993 reads as ...992): refused, rather than stored changed without a word.
 */
function numberProblem(value: number): string | null {
  if (!Number.isFinite(value)) return 'must be a finite number';
  if (Number.isInteger(value) && !Number.isSafeInteger(value))
    return `must be a number JSON carries exactly (${EXACT_INTEGERS})`;
  return null;
}

const EXACT_INTEGERS = 'integers up to 2^53 - 1; send a longer one as a string';

// Iterative: token data arrives from clients, and a deeply nested value must not overflow the stack here.
function jsonProblem(root: unknown): string | null {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return 'must contain only finite numbers';
      if (numberProblem(value)) return `must contain only numbers JSON carries exactly (${EXACT_INTEGERS})`;
      continue;
    }
    // A loop, not push(...items): spreading a very long array exceeds the engine's argument limit.
    if (Array.isArray(value)) for (const item of value) pending.push(item);
    else if (isPlainObject(value)) for (const key in value) pending.push(value[key]);
    else return 'must contain only JSON values';
  }
  return null;
}

const CARD_FIELDS = new Set(['number', 'expiration_month', 'expiration_year', 'cvc']);
// Far enough for any real card, near enough to catch a typo like 2205.
const MAX_YEARS_AHEAD = 50;

function validateCard(data: unknown, now: Date): ValidatedTokenData {
  if (!isPlainObject(data)) throw BadRequestError.forFields({ data: ['must be an object with the card fields'] });
  const { errors, fail } = collectFieldErrors('data');
  for (const key of Object.keys(data)) if (!CARD_FIELDS.has(key)) fail(key, 'is not an allowed card field');

  const number = cardNumber(data.number, fail);
  const month = wholeNumber(data.expiration_month, 'expiration_month', fail, { min: 1, max: 12, digits: '1 or 2' });
  const currentYear = now.getUTCFullYear();
  const year = wholeNumber(data.expiration_year, 'expiration_year', fail, {
    min: 1000,
    max: 9999,
    digits: '4',
  });
  if (year !== null) {
    if (year < currentYear) fail('expiration_year', 'the card has expired');
    else if (year > currentYear + MAX_YEARS_AHEAD) fail('expiration_year', `must be within ${MAX_YEARS_AHEAD} years`);
    else if (month !== null && year === currentYear && month < now.getUTCMonth() + 1) {
      fail('expiration_month', 'the card has expired');
    }
  }
  let cvc: string | undefined;
  if (data.cvc !== undefined) {
    if (typeof data.cvc !== 'string') fail('cvc', 'must be a string of 3 or 4 digits');
    else if (!/^\d{3,4}$/.test(data.cvc)) fail('cvc', 'must be 3 or 4 digits');
    else cvc = data.cvc;
  }

  if (Object.keys(errors).length > 0 || number === null || month === null || year === null) {
    throw BadRequestError.forFields(errors, 'The card data is invalid.');
  }
  const bin = number.slice(0, 6);
  const last4 = number.slice(-4);
  return {
    data: { number, expiration_month: month, expiration_year: year, ...(cvc === undefined ? {} : { cvc }) },
    mask: {
      number: `${bin}${'X'.repeat(number.length - 10)}${last4}`,
      bin,
      last4,
      brand: cardBrand(number),
      expiration_month: month,
      expiration_year: year,
    },
  };
}

function cardNumber(value: unknown, fail: (field: string, message: string) => void): string | null {
  // A number type would already have lost digits past 2^53 or leading zeros, so only strings are accepted.
  if (typeof value !== 'string') {
    fail('number', value === undefined ? 'is required' : 'must be a string of digits');
    return null;
  }
  const digits = value.replace(/[\s-]/g, '');
  if (!/^\d{13,19}$/.test(digits)) {
    fail('number', 'must be 13 to 19 digits');
    return null;
  }
  if (!luhnValid(digits)) {
    fail('number', 'is not a valid card number (Luhn check failed)');
    return null;
  }
  return digits;
}

function wholeNumber(
  value: unknown,
  field: string,
  fail: (field: string, message: string) => void,
  range: { min: number; max: number; digits: string },
): number | null {
  if (value === undefined || value === null) {
    fail(field, 'is required');
    return null;
  }
  const parsed =
    typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(parsed) || parsed < range.min || parsed > range.max) {
    fail(field, range.digits === '4' ? 'must be a 4-digit year' : `must be between ${range.min} and ${range.max}`);
    return null;
  }
  return parsed;
}

const BANK_FIELDS = new Set(['routing_number', 'account_number']);

function validateBank(data: unknown): ValidatedTokenData {
  if (!isPlainObject(data)) throw BadRequestError.forFields({ data: ['must be an object with the bank fields'] });
  const errors: FieldErrors = {};
  for (const key of Object.keys(data)) {
    if (!BANK_FIELDS.has(key)) errors[`data.${key}`] = ['is not an allowed bank field'];
  }
  const { routing_number: routing, account_number: account } = data;
  if (typeof routing !== 'string') {
    errors['data.routing_number'] = [routing === undefined ? 'is required' : 'must be a string of 9 digits'];
  } else if (!/^\d{9}$/.test(routing)) {
    errors['data.routing_number'] = ['must be 9 digits'];
  } else if (!abaRoutingValid(routing)) {
    errors['data.routing_number'] = ['is not a valid ABA routing number (checksum failed)'];
  }
  if (typeof account !== 'string') {
    errors['data.account_number'] = [account === undefined ? 'is required' : 'must be a string of digits'];
  } else if (!/^\d{4,17}$/.test(account)) {
    errors['data.account_number'] = ['must be 4 to 17 digits'];
  }
  if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The bank account data is invalid.');
  const accountNumber = account as string;
  const last4 = accountNumber.slice(-4);
  return {
    data: { routing_number: routing, account_number: accountNumber },
    mask: { routing_number: routing, account_number: `${'X'.repeat(accountNumber.length - 4)}${last4}`, last4 },
  };
}

export function luhnValid(number: string): boolean {
  if (!/^\d+$/.test(number)) return false;
  let sum = 0;
  for (let i = 0; i < number.length; i++) {
    let digit = number.charCodeAt(number.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/** The network from the number's IIN ranges; separators are ignored. */
export function cardBrand(number: string): CardBrand {
  const digits = number.replace(/[\s-]/g, '');
  if (!/^\d+$/.test(digits)) return 'unknown';
  const prefix = (length: number) => Number(digits.slice(0, length));
  if (digits.startsWith('4')) return 'visa';
  if (digits.startsWith('34') || digits.startsWith('37')) return 'amex';
  if (between(prefix(2), 51, 55) || between(prefix(4), 2221, 2720)) return 'mastercard';
  if (
    digits.startsWith('6011') ||
    digits.startsWith('65') ||
    between(prefix(3), 644, 649) ||
    between(prefix(6), 622126, 622925)
  ) {
    return 'discover';
  }
  return 'unknown';
}

export function abaRoutingValid(routing: string): boolean {
  if (!/^\d{9}$/.test(routing)) return false;
  const d = [...routing].map(Number) as number[];
  const at = (i: number) => d[i] ?? 0;
  const sum = 3 * (at(0) + at(3) + at(6)) + 7 * (at(1) + at(4) + at(7)) + (at(2) + at(5) + at(8));
  return sum % 10 === 0;
}

function between(value: number, low: number, high: number): boolean {
  return value >= low && value <= high;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
