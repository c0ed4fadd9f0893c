import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';

describe('EXPOSE_FORMULA_LOGS', () => {
  it.each([
    [{}, true],
    [{ NODE_ENV: 'production' }, false],
    [{ EXPOSE_FORMULA_LOGS: 'false' }, false],
    [{ EXPOSE_FORMULA_LOGS: '0' }, false],
    [{ NODE_ENV: 'production', EXPOSE_FORMULA_LOGS: 'true' }, true],
    [{ NODE_ENV: 'production', EXPOSE_FORMULA_LOGS: '1' }, true],
  ])('%o: formula logs shown = %s (unset follows NODE_ENV, set wins)', (env, shown) => {
    expect(loadConfig(env).exposeFormulaLogs).toBe(shown);
  });
});
