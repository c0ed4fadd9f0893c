/**
 * Rules of a reactor that need no database: its name, its configuration against the formula's contract, and how a
 * merge-patch (`patchReactor`, RFC 7386) changes it.
 */

import { BadRequestError, type FieldErrors } from '../errors.ts';
import {
  type ConfigurationOption,
  castParameterValue,
  characterCount,
  DEFAULT_FORMULA_LIMITS,
  isJsonObject,
} from '../formulas/rules.ts';
import { mergePatch } from '../merge-patch.ts';
import { isStorableText, UNSTORABLE_TEXT } from '../storable-text.ts';

export type ConfigurationValue = string | number | boolean;

/**
 * Checks a reactor's configuration against its formula's contract and returns it with values cast to the declared
 * types, in the contract's order. Casting follows `castParameterValue` (the same rules as invocation args): "123" is
 * a NUMBER, "true" a BOOLEAN, and a number or boolean given to a STRING option becomes its string form, since the
 * seeds cast towards the declared type whenever the value survives the trip. null, objects and arrays are type
 * errors. Names the formula does not declare are rejected: the reactor would carry them silently, and a typo in a
 * name would otherwise pass as a missing option.
 * Throws one BAD_REQUEST naming every bad key as `configuration.<NAME>`.
 */
export function validateConfiguration(
  contract: ConfigurationOption[],
  configuration: Record<string, unknown>,
): Record<string, ConfigurationValue> {
  const checked = checkStoredConfiguration(contract, configuration);
  if (checked.errors) throw BadRequestError.forFields(checked.errors, 'The reactor configuration is invalid.');
  return checked.configuration;
}

/**
 * A stored configuration checked against the formula's contract as it is now, which may have changed since the
 * reactor was written (`updateReactorFormula` does not touch its reactors): the configuration cast to the current
 * types, or the errors `validateConfiguration` would throw, or null when there are none.
 */
export function checkStoredConfiguration(
  contract: ConfigurationOption[],
  configuration: Record<string, unknown>,
): { configuration: Record<string, ConfigurationValue>; errors: FieldErrors | null } {
  const errors: FieldErrors = {};
  const cast = collectConfiguration(contract, configuration, errors);
  return { configuration: cast, errors: Object.keys(errors).length > 0 ? errors : null };
}

function collectConfiguration(
  contract: ConfigurationOption[],
  configuration: unknown,
  errors: FieldErrors,
): Record<string, ConfigurationValue> {
  const result: Record<string, ConfigurationValue> = {};
  if (!isJsonObject(configuration)) {
    errors.configuration = ['must be an object'];
    return result;
  }
  const declared = new Set<string>();
  for (const option of contract) {
    declared.add(option.name);
    const field = `configuration.${option.name}`;
    if (!Object.hasOwn(configuration, option.name) || configuration[option.name] === undefined) {
      errors[field] = ['is required'];
      continue;
    }
    const cast = castParameterValue(option.type, configuration[option.name]);
    if (!cast.ok) errors[field] = [cast.message];
    else if (typeof cast.value === 'string' && !isStorableText(cast.value)) errors[field] = [UNSTORABLE_TEXT];
    else defineValue(result, option.name, cast.value);
  }
  for (const name of Object.keys(configuration)) {
    if (!declared.has(name)) errors[`configuration.${name}`] = ['is not a configuration option of the formula'];
  }
  return result;
}

/**
 * Name and configuration of a reactor being created or replaced, checked together so one BAD_REQUEST lists every
 * bad field, along with `knownErrors` the caller found on its own (an unknown formula or application). With a null
 * `contract` (the formula is unknown) the configuration is not checked: there is nothing to check it against.
 */
export function validateReactorInput(
  input: { name: unknown; configuration: unknown },
  contract: ConfigurationOption[] | null,
  knownErrors: FieldErrors = {},
): { name: string; configuration: Record<string, ConfigurationValue> } {
  const errors: FieldErrors = { ...knownErrors };
  const name = collectName(input.name, DEFAULT_FORMULA_LIMITS.maxNameLength, errors);
  const configuration = contract ? collectConfiguration(contract, input.configuration, errors) : {};
  if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The reactor is invalid.');
  return { name, configuration };
}

/** Returns the trimmed name, or throws BAD_REQUEST `name`. */
export function validateReactorName(name: unknown, maxLength = DEFAULT_FORMULA_LIMITS.maxNameLength): string {
  const errors: FieldErrors = {};
  const trimmed = collectName(name, maxLength, errors);
  if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The reactor is invalid.');
  return trimmed;
}

function collectName(name: unknown, maxLength: number, errors: FieldErrors): string {
  const trimmed = typeof name === 'string' ? name.trim() : '';
  if (trimmed === '') errors.name = ['is required'];
  else if (characterCount(trimmed) > maxLength) errors.name = [`must be at most ${maxLength} characters`];
  else if (!isStorableText(trimmed)) errors.name = [UNSTORABLE_TEXT];
  return trimmed;
}

export interface ReactorFields {
  name: string;
  configuration: Record<string, unknown>;
  applicationId: string | null;
}

export interface ReactorPatch {
  name?: string | null;
  configuration?: Record<string, unknown> | null;
  applicationId?: string | null;
}

/**
 * The reactor after a `patchReactor` merge-patch: an absent field keeps its value, `null` clears it (a name cannot
 * be cleared: BAD_REQUEST; `applicationId: null` detaches the application; `configuration: null` empties it), and
 * `configuration` is merged key by key, a null value deleting that key.
 * Without `contract` the merged configuration is returned as is for the caller to validate; with it, the
 * configuration is validated and cast too, and name and configuration errors come back in one BAD_REQUEST.
 */
export function applyReactorPatch(
  current: ReactorFields,
  patch: ReactorPatch,
  contract?: ConfigurationOption[],
): ReactorFields {
  const errors: FieldErrors = {};

  let name = current.name;
  if (patch.name !== undefined) name = collectName(patch.name, DEFAULT_FORMULA_LIMITS.maxNameLength, errors);

  let configuration = current.configuration;
  if (patch.configuration === null) configuration = {};
  else if (patch.configuration !== undefined) {
    if (isJsonObject(patch.configuration)) {
      configuration = mergePatch(current.configuration, patch.configuration) as Record<string, unknown>;
    } else errors.configuration = ['must be an object'];
  }
  if (contract && !errors.configuration) configuration = collectConfiguration(contract, configuration, errors);

  const applicationId = patch.applicationId === undefined ? current.applicationId : patch.applicationId;

  if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The reactor is invalid.');
  return { name, configuration, applicationId };
}

// Plain assignment of a `__proto__` key (which JSON.parse does produce as an own key) would set the prototype.
function defineValue(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
