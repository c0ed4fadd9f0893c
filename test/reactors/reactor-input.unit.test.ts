import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../src/errors.ts';
import { validateReactorInput } from '../../src/reactors/configuration.ts';

const contract = [
  { name: 'KEY', description: null, type: 'STRING' as const },
  { name: 'LIMIT', description: null, type: 'NUMBER' as const },
];

function errorsOf(run: () => unknown) {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestError);
    return (error as BadRequestError).errors;
  }
  throw new Error('expected a BAD_REQUEST');
}

describe('validateReactorInput', () => {
  it('returns the trimmed name and the configuration cast to the contract', () => {
    expect(validateReactorInput({ name: ' r ', configuration: { KEY: 1, LIMIT: '5' } }, contract)).toEqual({
      name: 'r',
      configuration: { KEY: '1', LIMIT: 5 },
    });
  });

  it('reports name, configuration and the errors the caller already found in one BAD_REQUEST', () => {
    const errors = errorsOf(() =>
      validateReactorInput({ name: '', configuration: { KEY: 'k' } }, contract, {
        applicationId: ['is not an application of this tenant'],
      }),
    );
    expect(errors).toEqual({
      applicationId: ['is not an application of this tenant'],
      name: ['is required'],
      'configuration.LIMIT': ['is required'],
    });
  });

  it('skips the configuration when the formula is unknown (null contract)', () => {
    expect(
      errorsOf(() => validateReactorInput({ name: 'r', configuration: { ANY: 1 } }, null, { formulaId: ['unknown'] })),
    ).toEqual({
      formulaId: ['unknown'],
    });
  });

  it('rejects a configuration that is not an object', () => {
    expect(errorsOf(() => validateReactorInput({ name: 'r', configuration: [1] }, contract))).toEqual({
      configuration: ['must be an object'],
    });
  });

  it('rejects a reactor name of 201 characters', () => {
    expect(
      errorsOf(() => validateReactorInput({ name: 'x'.repeat(201), configuration: { KEY: 'k', LIMIT: 1 } }, contract)),
    ).toEqual({
      name: ['must be at most 200 characters'],
    });
  });
});
