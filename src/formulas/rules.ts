/**
 * Rules of a reactor formula that need no database: the formula's fields, its `configuration` contract, its
 * `request_parameters` contract, and how a value is cast to a declared parameter type (shared by reactor
 * configuration and invocation args, so both read the same casting rules).
 * Compiling the code is not checked here: only the sandbox can say whether code is a valid function.
 */

import { BadRequestError, type FieldErrors } from '../errors.ts';
import { isStorableText, UNSTORABLE_TEXT } from '../storable-text.ts';

export const PARAMETER_TYPES = ['STRING', 'BOOLEAN', 'NUMBER'] as const;
export type ParameterType = (typeof PARAMETER_TYPES)[number];

export const FORMULA_TYPES = ['OFFICIAL', 'PRIVATE'] as const;
export type FormulaType = (typeof FORMULA_TYPES)[number];

export interface ConfigurationOption {
  name: string;
  description: string | null;
  type: ParameterType;
}

export interface RequestParameter {
  name: string;
  description: string | null;
  type: ParameterType;
  optional: boolean;
}

export interface ConfigurationOptionInput {
  name: string;
  description?: string | null;
  type: ParameterType;
}

export interface RequestParameterInput {
  name: string;
  description?: string | null;
  type: ParameterType;
  optional?: boolean | null;
}

export interface FormulaInput {
  name: string;
  description?: string | null;
  type: FormulaType;
  icon?: string | null;
  code: string;
  configuration: ConfigurationOptionInput[];
  requestParameters: RequestParameterInput[];
}

export interface NormalizedFormulaInput {
  name: string;
  description: string | null;
  type: FormulaType;
  icon: string | null;
  code: string;
  configuration: ConfigurationOption[];
  requestParameters: RequestParameter[];
}

export interface FormulaLimits {
  maxNameLength: number;
  maxCodeLength: number;
}

export const DEFAULT_FORMULA_LIMITS: FormulaLimits = { maxNameLength: 200, maxCodeLength: 50_000 };

/**
 * Checks every field and throws one BAD_REQUEST listing all offending fields, so a client fixes its input in one
 * round trip. Returns the input with defaults filled in (`description: null`, `optional: false`) and the name trimmed.
 */
export function validateFormulaInput(
  input: FormulaInput,
  limits: FormulaLimits = DEFAULT_FORMULA_LIMITS,
): NormalizedFormulaInput {
  const errors: FieldErrors = {};
  const add = (field: string, message: string) => {
    const list = errors[field];
    if (list) list.push(message);
    else errors[field] = [message];
  };

  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (name === '') add('name', 'is required');
  else if (characterCount(name) > limits.maxNameLength)
    add('name', `must be at most ${limits.maxNameLength} characters`);
  else if (!isStorableText(name)) add('name', UNSTORABLE_TEXT);

  const description = input.description ?? null;
  if (description !== null && typeof description !== 'string') add('description', 'must be a string');
  else if (description !== null && !isStorableText(description)) add('description', UNSTORABLE_TEXT);

  if (!(FORMULA_TYPES as readonly unknown[]).includes(input.type))
    add('type', `must be one of ${FORMULA_TYPES.join(', ')}`);

  const icon = input.icon ?? null;
  if (icon !== null) {
    const problem = iconProblem(icon);
    if (problem) add('icon', problem);
  }

  const code = typeof input.code === 'string' ? input.code : '';
  if (code.trim() === '') add('code', 'is required');
  else if (characterCount(code) > limits.maxCodeLength)
    add('code', `must be at most ${limits.maxCodeLength} characters`);
  else if (!isStorableText(code)) add('code', UNSTORABLE_TEXT);

  const configuration = Array.isArray(input.configuration) ? input.configuration : [];
  if (!Array.isArray(input.configuration)) add('configuration', 'must be a list');
  const requestParameters = Array.isArray(input.requestParameters) ? input.requestParameters : [];
  if (!Array.isArray(input.requestParameters)) add('requestParameters', 'must be a list');

  checkConfigurationContract(configuration, add);
  checkRequestParameterContract(requestParameters, add);

  if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The reactor formula is invalid.');

  return {
    name,
    description: description as string | null,
    type: input.type,
    icon: icon?.trim() ?? null,
    code,
    configuration: configuration.map((option) => ({
      name: option.name,
      description: option.description ?? null,
      type: option.type,
    })),
    requestParameters: requestParameters.map((parameter) => ({
      name: parameter.name,
      description: parameter.description ?? null,
      type: parameter.type,
      optional: parameter.optional ?? false,
    })),
  };
}

type AddError = (field: string, message: string) => void;

function checkConfigurationContract(options: ConfigurationOptionInput[], add: AddError): void {
  const firstIndexByName = new Map<string, number>();
  options.forEach((option, index) => {
    const field = `configuration[${index}]`;
    checkParameterBasics(option, field, add);
    const name = option?.name;
    if (typeof name !== 'string' || name.trim() === '') return;
    // A reactor's configuration is a flat map; the seeds say dotted (nested) names are not supported there.
    if (name.includes('.')) add(`${field}.name`, 'must not contain a dot');
    const first = firstIndexByName.get(name);
    if (first === undefined) firstIndexByName.set(name, index);
    else add(`${field}.name`, `duplicates configuration[${first}].name`);
  });
}

function checkRequestParameterContract(parameters: RequestParameterInput[], add: AddError): void {
  const firstIndexByName = new Map<string, number>();
  parameters.forEach((parameter, index) => {
    const field = `requestParameters[${index}]`;
    checkParameterBasics(parameter, field, add);
    const optional = parameter?.optional;
    if (optional !== undefined && optional !== null && typeof optional !== 'boolean') {
      add(`${field}.optional`, 'must be a boolean');
    }
    const name = parameter?.name;
    if (typeof name !== 'string' || name.trim() === '') return;
    if (name.split('.').some((segment) => segment === '')) {
      add(`${field}.name`, 'must not have an empty segment (leading, trailing or double dot)');
      return;
    }
    const first = firstIndexByName.get(name);
    if (first === undefined) firstIndexByName.set(name, index);
    else add(`${field}.name`, `duplicates requestParameters[${first}].name`);
  });

  // A path cannot hold a value and an object at once: with `user` (a string) and `user.name`, no args could ever
  // satisfy both. The error goes on the parent (the shorter name), once, naming its first child.
  const firstChildByParent = new Map<string, string>();
  for (const name of firstIndexByName.keys()) {
    const segments = name.split('.');
    for (let depth = 1; depth < segments.length; depth++) {
      const prefix = segments.slice(0, depth).join('.');
      if (firstIndexByName.has(prefix) && !firstChildByParent.has(prefix)) firstChildByParent.set(prefix, name);
    }
  }
  for (const [parent, child] of firstChildByParent) {
    add(
      `requestParameters[${firstIndexByName.get(parent)}].name`,
      `is both a value and the parent of "${child}"; declare only one of them`,
    );
  }
}

function checkParameterBasics(
  parameter: ConfigurationOptionInput | RequestParameterInput,
  field: string,
  add: AddError,
): void {
  if (typeof parameter !== 'object' || parameter === null) {
    add(field, 'must be an object');
    return;
  }
  const { name, description, type } = parameter;
  if (typeof name !== 'string' || name.trim() === '') add(`${field}.name`, 'is required');
  else {
    // Surrounding spaces would make keys that look equal but are not; `__proto__` would reach an object's prototype.
    if (name !== name.trim()) add(`${field}.name`, 'must not start or end with whitespace');
    if (name.split('.').includes('__proto__')) add(`${field}.name`, 'must not use the reserved name "__proto__"');
    if (!isStorableText(name)) add(`${field}.name`, UNSTORABLE_TEXT);
  }
  if (description !== undefined && description !== null && typeof description !== 'string') {
    add(`${field}.description`, 'must be a string');
  } else if (typeof description === 'string' && !isStorableText(description)) {
    add(`${field}.description`, UNSTORABLE_TEXT);
  }
  // GraphQL enums already reject unknown types; stored contracts and other callers do not go through GraphQL.
  if (!(PARAMETER_TYPES as readonly unknown[]).includes(type)) {
    add(`${field}.type`, `must be one of ${PARAMETER_TYPES.join(', ')}`);
  }
}

// The data URL may carry spaces after the comma: the seeds' own example does (`base64, iVBOR...`).
const ICON_DATA_URL = /^data:image\/(png|jpe?g);base64,\s*([A-Za-z0-9+/]*={0,2})\s*$/i;
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];

/** Null when the icon is acceptable, else the message. The bytes are checked, not only the declared type. */
function iconProblem(icon: unknown): string | null {
  const shape = 'must be a base64 data URL of an image/png, image/jpg or image/jpeg image';
  if (typeof icon !== 'string') return shape;
  const match = ICON_DATA_URL.exec(icon.trim());
  if (!match) return shape;
  const [, subtype = '', payload = ''] = match;
  // Buffer.from(..., 'base64') silently skips bad characters, so the payload is checked before decoding.
  if (payload === '' || !CANONICAL_BASE64.test(payload)) return 'must hold valid base64 data';
  const bytes = Buffer.from(payload, 'base64');
  const isPng = subtype.toLowerCase() === 'png';
  const signature = isPng ? PNG_SIGNATURE : JPEG_SIGNATURE;
  if (!signature.every((byte, i) => bytes[i] === byte)) {
    return `must hold ${isPng ? 'PNG' : 'JPEG'} data, as its declared type image/${subtype.toLowerCase()} says`;
  }
  return null;
}

/** Counts code points, as Postgres counts characters, so an emoji is one character and not two. */
export function characterCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export type CastResult = { ok: true; value: string | number | boolean } | { ok: false; message: string };

// JSON's number grammar, with an optional leading '+' and a bare leading '.': `Number()` alone would also take
// '', '0x1f', 'Infinity' and '1_000'-like oddities, none of which a client means as a number.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Casts a value to a declared parameter type, the seeds' "auto casting": a number or boolean sent as a string is
 * parsed ("123" -> 123, "TRUE" -> true), and a number or boolean declared STRING becomes its string form
 * (123 -> "123"). Surrounding whitespace is ignored when parsing. Nothing else is cast: 1/0 are not booleans, a
 * boolean is not a number, and null, objects and arrays are never any declared type.
 */
export function castParameterValue(type: ParameterType, value: unknown): CastResult {
  switch (type) {
    case 'STRING':
      if (typeof value === 'string') return { ok: true, value };
      if (typeof value === 'number' && Number.isFinite(value)) return { ok: true, value: String(value) };
      if (typeof value === 'boolean') return { ok: true, value: String(value) };
      return { ok: false, message: `must be a string, not ${describe(value)}` };
    case 'NUMBER': {
      if (typeof value === 'number' && Number.isFinite(value)) return { ok: true, value };
      if (typeof value === 'string' && DECIMAL.test(value.trim())) {
        const parsed = Number(value.trim());
        if (Number.isFinite(parsed)) return { ok: true, value: parsed };
      }
      return { ok: false, message: `must be a number, not ${describe(value)}` };
    }
    case 'BOOLEAN': {
      if (typeof value === 'boolean') return { ok: true, value };
      const text = typeof value === 'string' ? value.trim().toLowerCase() : null;
      if (text === 'true') return { ok: true, value: true };
      if (text === 'false') return { ok: true, value: false };
      return { ok: false, message: `must be a boolean, not ${describe(value)}` };
    }
    default:
      return { ok: false, message: `has an unknown declared type ${JSON.stringify(type)}` };
  }
}

/** Names the kind of a value without echoing it: args may hold detokenized card numbers. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isFinite(value) ? 'a number' : 'a non-finite number';
  if (typeof value === 'string') return 'a string that cannot be cast';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}
