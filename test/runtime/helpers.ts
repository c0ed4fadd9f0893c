import { createHash } from 'node:crypto';
import {
  createFormulaRuntime,
  type FormulaRuntime,
  type RunInput,
  type RunOutcome,
  type RuntimeOptions,
} from '../../src/runtime/pool.ts';
import { createProcessRuntime } from '../../src/runtime/process-runtime.ts';

/**
 * The pool in this process, or, with TEST_RUNTIME_ISOLATION=process, in a runtime process of its own
 * (src/runtime/process-runtime.ts): `TEST_RUNTIME_ISOLATION=process npx vitest run --project pglite test/runtime`
 * runs the sandbox's suites through it.
 */
export function startRuntime(options: Partial<RuntimeOptions> = {}): FormulaRuntime {
  const settings = { threads: 2, memoryLimitMb: 64, ...options };
  if (process.env.TEST_RUNTIME_ISOLATION === 'process') return createProcessRuntime(settings, console as never);
  return createFormulaRuntime(settings);
}

let tenantSeq = 0;
/** Each test gets its own tenant, so no two tests ever share an isolate. */
export function newTenant(): string {
  return `tenant-${process.pid}-${++tenantSeq}`;
}

export function invoke(runtime: FormulaRuntime, code: string, input: Partial<RunInput> = {}): Promise<RunOutcome> {
  return runtime.run({
    tenantId: input.tenantId ?? newTenant(),
    formulaId: input.formulaId ?? 'formula-1',
    code,
    codeHash: createHash('sha256').update(code).digest('hex'),
    args: input.args ?? {},
    configuration: input.configuration ?? {},
    bt: input.bt ?? null,
    timeoutMs: input.timeoutMs ?? 10_000,
  });
}

export function rawOf(outcome: RunOutcome): unknown {
  if (!outcome.ok) throw new Error(`expected success, got ${JSON.stringify(outcome.error)}`);
  return outcome.raw;
}

export function errorOf(outcome: RunOutcome) {
  if (outcome.ok) throw new Error(`expected failure, got ${JSON.stringify(outcome.raw)}`);
  return outcome.error;
}
