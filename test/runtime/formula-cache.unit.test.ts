import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createEgressPolicy } from '../../src/runtime/sandbox/egress.ts';
import { FormulaCache } from '../../src/runtime/sandbox/formula-cache.ts';
import { FormulaIsolate } from '../../src/runtime/sandbox/formula-isolate.ts';
import type { RunInput } from '../../src/runtime/types.ts';

const settings = {
  memoryLimitMb: 64,
  maxOutputBytes: 1_000_000,
  policy: createEgressPolicy([]),
  fetchTimeoutMs: 1_000,
  maxResponseBytes: 1_000_000,
};

function input(tenantId: string, code: string): RunInput {
  return {
    tenantId,
    formulaId: 'formula',
    code,
    codeHash: code,
    args: { n: 2 },
    configuration: {},
    bt: null,
    timeoutMs: 1_000,
  };
}

describe('FormulaCache spare isolate', () => {
  it('builds a spare on a later turn, gives it to the next new formula and builds the next one', async () => {
    const cache = new FormulaCache(settings, 10);
    try {
      expect(cache.hasSpare).toBe(false); // not while the worker is busy with the current turn
      await nextTurn();
      expect(cache.hasSpare).toBe(true);

      const first = cache.acquire(input('tenant-a', 'module.exports = async (req) => ({ raw: req.args.n * 2 });'));
      if (!first.ok) throw new Error(first.error.message);
      expect(cache.hasSpare).toBe(false); // taken by that formula
      const run = await first.formula.run(input('tenant-a', ''));
      expect(run.settled).toMatchObject({ ok: true, raw: 4 });
      cache.release(first.formula);

      await nextTurn();
      expect(cache.hasSpare).toBe(true); // the next one is ready
      const second = cache.acquire(input('tenant-b', 'module.exports = async () => ({ raw: 2 });'));
      if (!second.ok) throw new Error(second.error.message);
      expect(second.formula).not.toBe(first.formula);
    } finally {
      cache.disposeAll();
    }
  });

  it('gives a spare to one formula only: globals set by one never reach the next', async () => {
    const cache = new FormulaCache(settings, 10);
    try {
      await nextTurn();
      const polluter = cache.acquire(
        input(
          'tenant-a',
          'globalThis.leak = "a"; Object.prototype.polluted = 1; module.exports = async () => ({ raw: 1 });',
        ),
      );
      if (!polluter.ok) throw new Error(polluter.error.message);
      await polluter.formula.run(input('tenant-a', ''));
      await nextTurn();
      const reader = cache.acquire(
        input('tenant-b', 'module.exports = async () => ({ raw: [typeof globalThis.leak, ({}).polluted ?? null] });'),
      );
      if (!reader.ok) throw new Error(reader.error.message);
      const run = await reader.formula.run(input('tenant-b', ''));
      expect(run.settled).toMatchObject({ ok: true, raw: ['undefined', null] });
    } finally {
      cache.disposeAll();
    }
  });

  it('makes no spare after disposeAll (the worker is about to be terminated)', async () => {
    const cache = new FormulaCache(settings, 10);
    cache.disposeAll();
    await nextTurn();
    expect(cache.hasSpare).toBe(false);
  });
});

// Released handles alone never freed an isolate: every recycled or evicted isolate used to stay in memory for good.
describe('FormulaCache freeing isolates', () => {
  it('disposes the isolate of a formula it evicts, once its call has finished', async () => {
    const cache = new FormulaCache(settings, 1);
    try {
      const first = cache.acquire(input('tenant-a', 'module.exports = async () => ({ raw: 1 });'));
      if (!first.ok) throw new Error(first.error.message);
      expect((await first.formula.run(input('tenant-a', ''))).settled).toMatchObject({ ok: true, raw: 1 });
      cache.release(first.formula);
      const second = cache.acquire(input('tenant-b', 'module.exports = async () => ({ raw: 2 });'));
      if (!second.ok) throw new Error(second.error.message);
      expect(first.formula.disposed).toBe(true);
      expect(first.formula.isolate.isDisposed).toBe(true);
      expect(second.formula.isolate.isDisposed).toBe(false);
    } finally {
      cache.disposeAll();
    }
  });

  it('disposes the isolate of code that does not compile, whose module code throws, or that is only checked', () => {
    for (const code of ['module.exports = async () => {', 'throw new Error("at load")']) {
      const isolate = FormulaIsolate.create(settings);
      if (!isolate) throw new Error('no isolate');
      expect(isolate.define(code, 1_000).ok).toBe(false);
      expect(isolate.isolate.isDisposed).toBe(true);
    }
    // What checkCode does with valid code (worker.ts): define, then dispose.
    const checked = FormulaIsolate.create(settings);
    if (!checked) throw new Error('no isolate');
    const loaded = checked.define('module.exports = async () => ({ raw: 1 });', 1_000);
    if (!loaded.ok) throw new Error(loaded.message);
    loaded.formula.dispose();
    expect(checked.isolate.isDisposed).toBe(true);
  });

  it('disposes the isolate of a formula whose running code its timeout stopped', async () => {
    const cache = new FormulaCache(settings, 10);
    try {
      const looping = cache.acquire(input('tenant-a', 'module.exports = async () => { for (;;) {} };'));
      if (!looping.ok) throw new Error(looping.error.message);
      const run = await looping.formula.run({ ...input('tenant-a', ''), timeoutMs: 50 });
      expect(run.settled).toMatchObject({ ok: false, error: { code: 'REACTOR_TIMEOUT' } });
      expect(looping.formula.disposed).toBe(true);
      // Abandoned instead until the eighteenth session: about 3 MB of RSS per timeout, kept until the worker ended.
      expect(looping.formula.isolate.isDisposed).toBe(true);

      // 50 ms left of a 30 s limit: stopped at 50 ms, and the error names the 30 s.
      const late = cache.acquire(input('tenant-b', 'module.exports = async () => { for (;;) {} };'));
      if (!late.ok) throw new Error(late.error.message);
      const lateRun = await late.formula.run({ ...input('tenant-b', ''), timeoutMs: 50, fullTimeoutMs: 30_000 });
      expect(lateRun.settled).toMatchObject({ ok: false, error: { message: 'Reactor timed out after 30000 ms' } });
    } finally {
      cache.disposeAll();
    }
  });

  it('remembers code that failed by its own fault, and nothing that failed for want of time or of a sandbox', () => {
    const cache = new FormulaCache(settings, 10);
    try {
      const slow =
        'const end = Date.now() + 60; while (Date.now() < end) {}\nmodule.exports = async () => ({ raw: 1 });';
      const short = cache.acquire({ ...input('tenant-a', slow), timeoutMs: 20 });
      expect(short).toMatchObject({
        ok: false,
        error: { code: 'REACTOR_TIMEOUT', status: 504, message: 'Reactor timed out after 20 ms' },
      });
      // 20 ms left of a 30 s limit (a run that waited in the pool): the error names the limit.
      const late = cache.acquire({ ...input('tenant-a', slow), timeoutMs: 20, fullTimeoutMs: 30_000 });
      expect(late).toMatchObject({ ok: false, error: { message: 'Reactor timed out after 30000 ms' } });
      expect(cache.size).toBe(0);
      expect(cache.acquire({ ...input('tenant-a', slow), timeoutMs: 5_000 }).ok).toBe(true);

      // Stopped at the whole load budget (1 s): the code's fault, remembered (the same answer, not a second load).
      const endless = cache.acquire(input('tenant-a', 'for (;;) {}'));
      expect(endless).toMatchObject({
        ok: false,
        error: { code: 'INVALID_REACTOR_CODE', status: 422, message: expect.stringMatching(/within 1000 ms/) },
      });
      if (endless.ok) throw new Error('loaded');
      const again = cache.acquire(input('tenant-a', 'for (;;) {}'));
      if (again.ok) throw new Error('loaded');
      expect(again.error).toBe(endless.error);
    } finally {
      cache.disposeAll();
    }

    // An isolate cannot be made (here: a memory limit isolated-vm refuses): the gateway's fault, a 503, not remembered.
    const broken = new FormulaCache({ ...settings, memoryLimitMb: Number.NaN }, 10);
    try {
      const answer = broken.acquire(input('tenant-a', 'module.exports = async () => ({ raw: 1 });'));
      expect(answer).toMatchObject({ ok: false, error: { code: 'SERVICE_UNAVAILABLE', status: 503 } });
      expect(broken.size).toBe(0);
    } finally {
      broken.disposeAll();
    }
  });
});
