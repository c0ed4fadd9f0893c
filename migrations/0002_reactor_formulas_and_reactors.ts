import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';

/**
 * Reactor formulas (tenant-private, or official with tenant_id NULL) and reactors, plus three official formulas.
 * The official formulas' code is written out here rather than imported, so this migration stays what it was when
 * it landed; a change to an official formula is a new migration.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('reactor_formulas')
    .addColumn('id', 'uuid', (col) => col.primaryKey())
    .addColumn('tenant_id', 'uuid', (col) => col.references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('description', 'text')
    .addColumn('type', 'text', (col) => col.notNull().check(sql`type in ('OFFICIAL', 'PRIVATE')`))
    .addColumn('status', 'text', (col) =>
      col.notNull().defaultTo('VERIFIED').check(sql`status in ('VERIFIED', 'COMING_SOON')`),
    )
    .addColumn('icon', 'text')
    .addColumn('code', 'text', (col) => col.notNull())
    .addColumn('code_hash', 'text', (col) => col.notNull())
    .addColumn('configuration', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('request_parameters', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_by', 'uuid')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('modified_by', 'uuid')
    .addColumn('modified_at', 'timestamptz')
    // Official means global: a tenant-owned official formula, or an ownerless private one, would be readable or
    // writable by the wrong people.
    .addCheckConstraint('reactor_formulas_official_is_global', sql`(type = 'OFFICIAL') = (tenant_id is null)`)
    .execute();
  // Keyset pagination; `tenant_id is null` (the official formulas) is served by the same index.
  await db.schema
    .createIndex('reactor_formulas_tenant_id_id')
    .on('reactor_formulas')
    .columns(['tenant_id', 'id'])
    .execute();

  await db.schema
    .createTable('reactors')
    .addColumn('id', 'uuid', (col) => col.primaryKey())
    .addColumn('tenant_id', 'uuid', (col) => col.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (col) => col.notNull())
    // NO ACTION (not RESTRICT): deleting a tenant cascades to its reactors and formulas in one statement.
    .addColumn('formula_id', 'uuid', (col) => col.notNull().references('reactor_formulas.id'))
    // A deleted application detaches from its reactors rather than blocking the delete.
    .addColumn('application_id', 'uuid', (col) => col.references('applications.id').onDelete('set null'))
    .addColumn('configuration', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_by', 'uuid')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('modified_by', 'uuid')
    .addColumn('modified_at', 'timestamptz')
    .execute();
  // Keyset pagination of a tenant's reactors: `reactors(first: 20)` reads 21 index entries whatever the tenant size.
  await db.schema.createIndex('reactors_tenant_id_id').on('reactors').columns(['tenant_id', 'id']).execute();
  // "Is this formula still used?" on formula delete, and the foreign-key checks behind it.
  await db.schema.createIndex('reactors_formula_id').on('reactors').column('formula_id').execute();
  // ON DELETE SET NULL from applications would otherwise scan every reactor.
  await db.schema.createIndex('reactors_application_id').on('reactors').column('application_id').execute();

  for (const formula of OFFICIAL_FORMULAS) {
    await db
      .insertInto('reactor_formulas')
      .values({
        ...formula,
        tenant_id: null,
        type: 'OFFICIAL',
        status: 'VERIFIED',
        icon: null,
        code_hash: createHash('sha256').update(formula.code).digest('hex'),
        configuration: JSON.stringify(formula.configuration),
        request_parameters: JSON.stringify(formula.request_parameters),
      })
      .execute();
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('reactors').execute();
  await db.schema.dropTable('reactor_formulas').execute();
}

const SDK = "require('@basis-theory/basis-theory-reactor-formulas-sdk-js')";

const ECHO_CODE = `// Returns the args it was given, after detokenization: a way to see what a reactor receives.
module.exports = async function (req) {
  return { raw: req.args === undefined ? null : req.args };
};
`;

const CARD_CHECK_CODE = `const { BadRequestError } = ${SDK};

// First match wins, so the narrower prefixes come before the wider ones.
const BRANDS = [
  ['american-express', /^3[47]/],
  ['diners-club', /^3(?:0[0-5]|09|[68])/],
  ['jcb', /^35(?:2[89]|[3-8])/],
  ['visa', /^4/],
  ['mastercard', /^(?:5[1-5]|222[1-9]|22[3-9]|2[3-6]|27[01]|2720)/],
  ['discover', /^(?:6011|64[4-9]|65)/],
  ['unionpay', /^62/],
  ['maestro', /^(?:5[06-9]|6)/],
];

function luhnValid(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

function brandOf(digits) {
  for (const [brand, pattern] of BRANDS) if (pattern.test(digits)) return brand;
  return 'unknown';
}

function isExpired(month, year) {
  const m = Number(month);
  let y = Number(year);
  if (!Number.isInteger(m) || !Number.isInteger(y) || m < 1 || m > 12) return null;
  if (y < 100) y += 2000;
  const now = new Date();
  return y < now.getUTCFullYear() || (y === now.getUTCFullYear() && m < now.getUTCMonth() + 1);
}

// Checks a card (usually a detokenized card token: { number, expiration_month, expiration_year }) without ever
// returning its number: brand, BIN, last four digits, Luhn validity and, when given, whether it has expired.
module.exports = async function (req) {
  const card = req.args && typeof req.args.card === 'object' && req.args.card !== null ? req.args.card : null;
  const given = card ? card.number : undefined;
  if (given === undefined || given === null || String(given).trim() === '') {
    throw new BadRequestError({ 'card.number': ['is required'] });
  }
  const digits = String(given).replace(/[\\s-]/g, '');
  if (!/^\\d+$/.test(digits)) throw new BadRequestError({ 'card.number': ['must contain only digits'] });
  const valid = digits.length >= 12 && digits.length <= 19 && luhnValid(digits);
  const hasExpiry = card.expiration_month !== undefined && card.expiration_year !== undefined;
  return {
    raw: {
      brand: brandOf(digits),
      bin: digits.slice(0, 6),
      last4: digits.slice(-4),
      valid,
      expired: hasExpiry ? isExpired(card.expiration_month, card.expiration_year) : null,
    },
  };
};
`;

const HMAC_CODE = `const crypto = require('crypto');
const { BadRequestError, InvalidReactorConfigurationError } = ${SDK};

// HMAC-SHA256 of args.value under the reactor's SECRET, hex-encoded: for signing or blind-indexing a detokenized
// value without the secret ever leaving the gateway.
module.exports = async function (req) {
  const secret = req.configuration ? req.configuration.SECRET : undefined;
  if (typeof secret !== 'string' || secret === '') {
    throw new InvalidReactorConfigurationError({ SECRET: ['is required'] });
  }
  const value = req.args ? req.args.value : undefined;
  if (value === undefined || value === null) throw new BadRequestError({ value: ['is required'] });
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const hmac = crypto.createHmac('sha256', secret).update(text, 'utf8').digest('hex');
  return { raw: { hmac, algorithm: 'HMAC-SHA256', encoding: 'hex' } };
};
`;

// Fixed ids (src/formulas/official.ts names them): they sort before every UUIDv7, so official formulas list first.
const OFFICIAL_FORMULAS = [
  {
    id: '00000000-0000-4000-8000-000000000001',
    name: 'Echo',
    description: 'Returns its args as `raw`, after detokenization. Useful to see what a reactor receives.',
    code: ECHO_CODE,
    configuration: [],
    request_parameters: [],
  },
  {
    id: '00000000-0000-4000-8000-000000000002',
    name: 'Card Check',
    description:
      'Checks `args.card` (e.g. `{{ <card token id> }}`): returns brand, bin, last4, Luhn validity and whether it ' +
      'has expired, never the number.',
    code: CARD_CHECK_CODE,
    configuration: [],
    request_parameters: [
      {
        name: 'card.number',
        description: 'The card number (digits; spaces and dashes ignored).',
        type: 'STRING',
        optional: false,
      },
      { name: 'card.expiration_month', description: 'Expiration month, 1-12.', type: 'NUMBER', optional: true },
      { name: 'card.expiration_year', description: 'Expiration year (four digits).', type: 'NUMBER', optional: true },
    ],
  },
  {
    id: '00000000-0000-4000-8000-000000000003',
    name: 'HMAC-SHA256',
    description: "Returns the hex HMAC-SHA256 of `args.value` under the reactor's `SECRET`.",
    code: HMAC_CODE,
    configuration: [{ name: 'SECRET', description: 'The HMAC key (UTF-8).', type: 'STRING' }],
    request_parameters: [
      {
        name: 'value',
        description: 'The value to sign (a number or boolean is cast to its string form).',
        type: 'STRING',
        optional: false,
      },
    ],
  },
];
