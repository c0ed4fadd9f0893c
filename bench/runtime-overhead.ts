import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { createFormulaRuntime, type RunInput } from '../src/runtime/pool.ts';

export interface RuntimeOverhead {
  poolP50Us: number;
  poolP99Us: number;
  inProcessP50Us: number;
  compileFirstCallMs: number;
  firstCallsBackToBackMs: number;
  callsPerSecond: number;
}

const CODE =
  'module.exports = async function (req) { return { raw: { sum: req.args.a + req.args.b, echo: req.args.s } } };';

/** Back-to-back calls before the latency samples: past the JIT's tier-up, see where it is used. */
const WARMUP_CALLS = 3_000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * Per-call cost of the pool + isolate against calling the same function in-process (the "overhead" includes the
 * JSON round trip of args and result, which is part of what the sandbox costs).
 */
export async function benchRuntimeOverhead(opts: {
  quick: boolean;
  report?: (result: RuntimeOverhead) => void;
}): Promise<RuntimeOverhead> {
  const iterations = opts.quick ? 2_000 : 20_000;
  const threads = Math.max(1, availableParallelism());
  const runtime = createFormulaRuntime({ threads, memoryLimitMb: 128 });
  const input = (tenantId: string, code = CODE): RunInput => ({
    tenantId,
    formulaId: 'bench',
    code,
    codeHash: createHash('sha256').update(code).digest('hex'),
    args: { a: 1, b: 2, s: 'x'.repeat(64) },
    configuration: {},
    bt: null,
    timeoutMs: 5_000,
  });
  try {
    // Warm the workers (tsx compiling the worker) and the formula cache of every worker.
    await Promise.all(Array.from({ length: threads * 8 }, () => runtime.run(input('warm'))));

    // A fresh formula version: compile (and, without a spare isolate ready, isolate creation) on the first call.
    // Spaced 20 ms apart, as first calls of new formulas come in practice: a worker builds its next spare isolate
    // after the call that took the last one (2-3 ms). Back to back, each call can wait for that build instead:
    // reported too, without a target.
    const firstCalls = async (prefix: string, pauseMs: number) => {
      const samples: number[] = [];
      for (let i = 0; i < (opts.quick ? 5 : 20); i++) {
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
        const started = performance.now();
        const outcome = await runtime.run(input(`${prefix}-${i}`, `${CODE}\n// ${i}`));
        if (!outcome.ok) throw new Error(outcome.error.message);
        samples.push(performance.now() - started);
      }
      return samples.sort((a, b) => a - b);
    };
    const compileSamples = await firstCalls('compile', 20);
    const backToBackSamples = await firstCalls('burst', 0);

    const pool: number[] = [];
    const warm = input('latency');
    await Promise.all(Array.from({ length: threads * 4 }, () => runtime.run(warm)));
    // V8 tiers up the host's and the worker's call path after a count of calls, not after a time: per-block p50s
    // of 500 back-to-back calls read 132, 97, 80, 89, 73 us and then about 41 us from call 2,500 on. Without this
    // warm-up the quick run (2,000 calls) measured the tier-up, not the pool. Same warm-up in both modes.
    for (let i = 0; i < WARMUP_CALLS; i++) await runtime.run(warm);
    for (let i = 0; i < iterations; i++) {
      const started = performance.now();
      await runtime.run(warm);
      pool.push((performance.now() - started) * 1000);
    }
    pool.sort((a, b) => a - b);

    const module = { exports: null as unknown as (req: unknown) => Promise<unknown> };
    new Function('module', CODE)(module);
    const inProcess: number[] = [];
    for (let i = 0; i < WARMUP_CALLS; i++) await module.exports({ args: warm.args, configuration: {}, bt: null });
    for (let i = 0; i < iterations; i++) {
      const started = performance.now();
      await module.exports({ args: warm.args, configuration: {}, bt: null });
      inProcess.push((performance.now() - started) * 1000);
    }
    inProcess.sort((a, b) => a - b);

    const concurrency = 64;
    const total = opts.quick ? 5_000 : 50_000;
    let sent = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (sent < total) {
          sent++;
          await runtime.run(warm);
        }
      }),
    );
    const callsPerSecond = total / ((performance.now() - started) / 1000);

    const result: RuntimeOverhead = {
      poolP50Us: round(percentile(pool, 50)),
      poolP99Us: round(percentile(pool, 99)),
      inProcessP50Us: round(percentile(inProcess, 50), 2),
      compileFirstCallMs: round(percentile(compileSamples, 50), 2),
      firstCallsBackToBackMs: round(percentile(backToBackSamples, 50), 2),
      callsPerSecond: Math.round(callsPerSecond),
    };
    // Reported before close(): a crash while the pool shuts down must not lose the measurement.
    opts.report?.(result);
    return result;
  } finally {
    await runtime.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  await benchRuntimeOverhead({
    quick,
    report: (result) =>
      console.log(JSON.stringify({ cores: availableParallelism(), node: process.version, quick, ...result }, null, 2)),
  });
}
