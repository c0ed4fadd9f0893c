import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../src/errors.ts';
import { abaRoutingValid, cardBrand, luhnValid, validateTokenData } from '../../src/tokens/token-data.ts';

const now = new Date('2025-06-15T12:00:00Z');
const card = (overrides: Record<string, unknown> = {}) => ({
  number: '4242424242424242',
  expiration_month: 12,
  expiration_year: 2030,
  ...overrides,
});

function fieldErrors(run: () => unknown): Record<string, string[]> {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestError);
    return (error as BadRequestError).errors ?? {};
  }
  throw new Error('expected a BadRequestError');
}

describe('generic tokens', () => {
  it('accept a non-empty string, a number, a boolean, an object and an array, with a null mask', () => {
    for (const data of ['secret', 42, false, { a: { b: [1, null] } }, ['x']]) {
      expect(validateTokenData('TOKEN', data, now)).toEqual({ data, mask: null });
    }
  });

  it('reject null, the empty string, empty objects and arrays, and non-finite numbers', () => {
    for (const data of [null, undefined, '', {}, [], Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(Object.keys(fieldErrors(() => validateTokenData('TOKEN', data, now)))).toEqual(['data']);
    }
  });

  it('reject an integer past 2^53, which JSON has already rounded, at the top or nested; keep safe ones and fractions', () => {
    const rounded = JSON.parse('9007199254740993');
    expect(fieldErrors(() => validateTokenData('TOKEN', rounded, now)).data).toEqual([
      'must be a number JSON carries exactly (integers up to 2^53 - 1; send a longer one as a string)',
    ]);
    expect(fieldErrors(() => validateTokenData('TOKEN', { account: [1, -1e20] }, now)).data).toEqual([
      'must contain only numbers JSON carries exactly (integers up to 2^53 - 1; send a longer one as a string)',
    ]);
    for (const data of [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, { rate: 1.5e-7 }, 123456.789]) {
      expect(validateTokenData('TOKEN', data, now).data).toEqual(data);
    }
  });

  it('reject values that are not JSON, however deep', () => {
    expect(fieldErrors(() => validateTokenData('TOKEN', { a: [{ b: new Date() }] }, now)).data).toEqual([
      'must contain only JSON values',
    ]);
  });

  it('accept deeply nested data without overflowing the stack', () => {
    let data: unknown = 'leaf';
    for (let i = 0; i < 100_000; i++) data = { d: data };
    expect(validateTokenData('TOKEN', data, now).data).toBe(data);
  });
});

describe('card tokens', () => {
  it('accept a valid card and mask it to BIN 6 and last 4', () => {
    expect(validateTokenData('CARD', card({ cvc: '123' }), now)).toEqual({
      data: { number: '4242424242424242', expiration_month: 12, expiration_year: 2030, cvc: '123' },
      mask: {
        number: '424242XXXXXX4242',
        bin: '424242',
        last4: '4242',
        brand: 'visa',
        expiration_month: 12,
        expiration_year: 2030,
      },
    });
  });

  it('strip spaces and dashes from the number', () => {
    const { data } = validateTokenData('CARD', card({ number: '4242 4242-4242 4242' }), now);
    expect(data).toMatchObject({ number: '4242424242424242' });
  });

  it('convert a numeric-string month and year to numbers', () => {
    const { data } = validateTokenData('CARD', card({ expiration_month: '03', expiration_year: '2031' }), now);
    expect(data).toMatchObject({ expiration_month: 3, expiration_year: 2031 });
  });

  it('rejects a card number that fails the Luhn check', () => {
    expect(fieldErrors(() => validateTokenData('CARD', card({ number: '4242424242424241' }), now))).toEqual({
      'data.number': ['is not a valid card number (Luhn check failed)'],
    });
  });

  it('rejects a card number of 12 or 20 digits, letters, or a number type', () => {
    for (const number of ['424242424242', '42424242424242424242', '4242abcd42424242', 4242424242424242]) {
      expect(Object.keys(fieldErrors(() => validateTokenData('CARD', card({ number }), now)))).toEqual(['data.number']);
    }
  });

  it('accepts 13- and 19-digit card numbers', () => {
    expect(validateTokenData('CARD', card({ number: '4222222222222' }), now).mask).toMatchObject({
      number: '422222XXX2222',
    });
    expect(validateTokenData('CARD', card({ number: '6011000990139424' }), now).mask).toMatchObject({
      brand: 'discover',
    });
  });

  it('rejects a month of 0 or 13 and a year that is not 4 digits', () => {
    const errors = fieldErrors(() =>
      validateTokenData('CARD', card({ expiration_month: 13, expiration_year: 30 }), now),
    );
    expect(Object.keys(errors).sort()).toEqual(['data.expiration_month', 'data.expiration_year']);
    expect(Object.keys(fieldErrors(() => validateTokenData('CARD', card({ expiration_month: 0 }), now)))).toEqual([
      'data.expiration_month',
    ]);
  });

  it('rejects a card that expired in an earlier year', () => {
    expect(fieldErrors(() => validateTokenData('CARD', card({ expiration_year: 2024 }), now))).toEqual({
      'data.expiration_year': ['the card has expired'],
    });
  });

  it('rejects a card that expired earlier this year, and accepts one expiring this month', () => {
    expect(
      fieldErrors(() => validateTokenData('CARD', card({ expiration_month: 5, expiration_year: 2025 }), now)),
    ).toEqual({ 'data.expiration_month': ['the card has expired'] });
    expect(() => validateTokenData('CARD', card({ expiration_month: 6, expiration_year: 2025 }), now)).not.toThrow();
  });

  it('rejects an expiry more than 50 years ahead', () => {
    expect(Object.keys(fieldErrors(() => validateTokenData('CARD', card({ expiration_year: 2099 }), now)))).toEqual([
      'data.expiration_year',
    ]);
  });

  it('rejects a cvc that is not 3 or 4 digits, and a numeric cvc', () => {
    for (const cvc of ['12', '12345', 'abc', 123]) {
      expect(Object.keys(fieldErrors(() => validateTokenData('CARD', card({ cvc }), now)))).toEqual(['data.cvc']);
    }
  });

  it('rejects unknown keys, naming each one', () => {
    expect(
      Object.keys(fieldErrors(() => validateTokenData('CARD', card({ name: 'x', pin: '1' }), now))).sort(),
    ).toEqual(['data.name', 'data.pin']);
  });

  it('reports every missing field at once', () => {
    expect(Object.keys(fieldErrors(() => validateTokenData('CARD', {}, now))).sort()).toEqual([
      'data.expiration_month',
      'data.expiration_year',
      'data.number',
    ]);
  });

  it('rejects card data that is not an object', () => {
    expect(Object.keys(fieldErrors(() => validateTokenData('CARD', '4242424242424242', now)))).toEqual(['data']);
  });
});

describe('bank tokens', () => {
  it('accept a valid routing and account number and mask the account to its last 4', () => {
    expect(validateTokenData('BANK', { routing_number: '021000021', account_number: '1234567890' }, now)).toEqual({
      data: { routing_number: '021000021', account_number: '1234567890' },
      mask: { routing_number: '021000021', account_number: 'XXXXXX7890', last4: '7890' },
    });
  });

  it('rejects a routing number that fails the ABA checksum', () => {
    expect(
      fieldErrors(() => validateTokenData('BANK', { routing_number: '021000022', account_number: '1234' }, now)),
    ).toEqual({ 'data.routing_number': ['is not a valid ABA routing number (checksum failed)'] });
  });

  it('rejects a routing number that is not 9 digits and an account number outside 4 to 17 digits', () => {
    const errors = fieldErrors(() =>
      validateTokenData('BANK', { routing_number: '02100002', account_number: '123' }, now),
    );
    expect(Object.keys(errors).sort()).toEqual(['data.account_number', 'data.routing_number']);
    expect(
      Object.keys(
        fieldErrors(() =>
          validateTokenData('BANK', { routing_number: '021000021', account_number: '1'.repeat(18) }, now),
        ),
      ),
    ).toEqual(['data.account_number']);
  });

  it('rejects unknown keys and missing fields', () => {
    expect(Object.keys(fieldErrors(() => validateTokenData('BANK', { iban: 'x' }, now))).sort()).toEqual([
      'data.account_number',
      'data.iban',
      'data.routing_number',
    ]);
  });
});

describe('card helpers', () => {
  it('luhnValid accepts known test numbers and rejects one-digit changes and non-digits', () => {
    for (const number of ['4242424242424242', '5555555555554444', '378282246310005', '6011111111111117']) {
      expect(luhnValid(number)).toBe(true);
    }
    expect(luhnValid('4242424242424243')).toBe(false);
    expect(luhnValid('4242-4242')).toBe(false);
    expect(luhnValid('')).toBe(false);
  });

  it('cardBrand recognises visa, mastercard (51-55 and 2221-2720), amex, discover and falls back to unknown', () => {
    expect(cardBrand('4242424242424242')).toBe('visa');
    expect(cardBrand('5555555555554444')).toBe('mastercard');
    expect(cardBrand('2223003122003222')).toBe('mastercard');
    expect(cardBrand('378282246310005')).toBe('amex');
    expect(cardBrand('6011111111111117')).toBe('discover');
    expect(cardBrand('6445644564456445')).toBe('discover');
    expect(cardBrand('3566002020360505')).toBe('unknown');
    expect(cardBrand('4242 4242 4242 4242')).toBe('visa');
  });

  it('abaRoutingValid applies the 3-7-1 checksum', () => {
    expect(abaRoutingValid('011000015')).toBe(true);
    expect(abaRoutingValid('011000016')).toBe(false);
  });
});
