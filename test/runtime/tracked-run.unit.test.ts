import { describe, expect, it } from 'vitest';
import { withTimeLeft } from '../../src/runtime/tracked-run.ts';
import type { SingleTask } from '../../src/runtime/types.ts';

const run: SingleTask = {
  kind: 'run',
  slot: 3,
  input: {
    tenantId: 'tenant',
    formulaId: 'formula',
    code: 'module.exports = async () => ({})',
    codeHash: 'hash',
    args: {},
    configuration: {},
    bt: null,
    timeoutMs: 30_000,
  },
};

describe('withTimeLeft', () => {
  it('cuts the time limit by the wait, keeps the whole limit for messages, and drops the old slot', () => {
    const once = withTimeLeft(run, 1_000.4);
    expect(once).toMatchObject({ kind: 'run', input: { timeoutMs: 28_999, fullTimeoutMs: 30_000 } });
    expect('slot' in once).toBe(false);
    // Waiting twice (held in the gate, then moved off a stuck thread): still the caller's limit.
    expect(withTimeLeft(once, 28_000)).toMatchObject({ input: { timeoutMs: 999, fullTimeoutMs: 30_000 } });
    // Never below 1 ms: the run still goes, and times out at once.
    expect(withTimeLeft(run, 40_000)).toMatchObject({ input: { timeoutMs: 1, fullTimeoutMs: 30_000 } });
  });

  it('leaves other tasks alone', () => {
    const check: SingleTask = { kind: 'check', code: 'x' };
    expect(withTimeLeft(check, 10)).toBe(check);
  });
});
