/** The messages between the gateway and the runtime's own process (process-runtime.ts, runtime-process.ts). */
import { errorOf } from './sandbox/outcome.ts';
import type { CheckResult, RunInput, RunOutcome, RuntimeStats } from './types.ts';

export type Call = [id: number, kind: 'run', input: RunInput] | [id: number, kind: 'check', code: string];
export type Answer = [id: number, outcome: RunOutcome | CheckResult];

/** To the runtime process: the calls of one turn of the gateway's event loop, or the request to end. */
export type ToRuntime = { t: 'calls'; calls: Call[] } | { t: 'close' };

/** From the runtime process: it is listening, answers (with the pool's figures), or the figures alone. */
export type FromRuntime =
  | { t: 'ready' }
  | { t: 'answers'; answers: Answer[]; stats: RuntimeStats }
  | { t: 'stats'; stats: RuntimeStats };

const UNAVAILABLE = 'The formula runtime is unavailable; try again shortly.';

/** A run the runtime process could not answer (it stopped, or was not there): the gateway's fault, not the code's. */
export function unavailableRun(elapsedMs: number): RunOutcome {
  return {
    ok: false,
    error: errorOf('SERVICE_UNAVAILABLE', 503, UNAVAILABLE),
    logs: [],
    elapsedMs,
  };
}

export function unavailableCheck(): CheckResult {
  return { ok: false, message: UNAVAILABLE, reason: 'unavailable' };
}
