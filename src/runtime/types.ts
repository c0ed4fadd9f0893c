import type { ErrorShape } from '../errors.ts';
import type { RequestParameter } from '../formulas/rules.ts';
import type { SealedArgs } from '../tokens/sealing.ts';
import type { StuckCells } from './stuck-threads.ts';
import type { SharedSlots } from './task-slots.ts';

export interface RuntimeOptions {
  threads: number;
  /** Isolate heap limit in MB (it also counts ArrayBuffers); default 128. */
  memoryLimitMb: number;
  maxCachedFormulas?: number;
  /** CIDRs or hostnames allowed despite the private-range policy. */
  egressAllow?: string[];
  /**
   * The longest a formula's fetch may wait, redirects and body included. A fetch never outlasts its run, so by
   * default it may wait as long as the run has left: 210 s is the longest run `reactAsync` allows.
   */
  fetchTimeoutMs?: number;
  maxResponseBytes?: number;
  /** Formula result cap; default 5 MB. */
  maxOutputBytes?: number;
  /**
   * How long a thread polls for a message it expects within microseconds instead of sleeping (wake-poll.ts);
   * default 200, 0 turns polling off.
   */
  spinMicros?: number;
}

export interface RunInput {
  tenantId: string;
  formulaId: string;
  code: string;
  codeHash: string;
  args: unknown;
  /** Tokens for the worker to open and put into `args` before anything else (src/tokens/sealing.ts). */
  sealedArgs?: SealedArgs | null;
  /**
   * The formula's request parameters: the worker validates and casts the args against them, after the tokens are
   * in (src/invocations/request-parameters.ts), and answers BAD_REQUEST without running the formula if they do not
   * fit. Absent: the args go to the formula as they are.
   */
  requestParameters?: RequestParameter[];
  configuration: Record<string, unknown>;
  bt: { endpoint: string; apiKey: string } | null;
  timeoutMs: number;
  /**
   * The run's whole time limit, for what its errors say, when `timeoutMs` is only what is left of it after waiting
   * in the pool (tracked-run.ts `withTimeLeft`): a client whose limit was 30 s is told 30 s, not the 1 ms left.
   */
  fullTimeoutMs?: number;
}

export type LogLine = { level: 'log' | 'warn' | 'error'; message: string };

export type RunOutcome =
  | { ok: true; raw: unknown; tokenize: unknown; logs: LogLine[]; elapsedMs: number }
  | { ok: false; error: ErrorShape; logs: LogLine[]; elapsedMs: number };

/**
 * Why code could not be loaded: `invalid` is the code's fault (it does not compile, its module code throws or runs
 * out of time or memory, it exports no function); `unavailable` is the gateway's (no sandbox could be set up, or no
 * worker answered in time), so the same code may well load on a later try.
 */
export type LoadFailure = 'invalid' | 'unavailable';

export type CheckResult = { ok: true } | { ok: false; message: string; reason: LoadFailure };

export interface FormulaRuntime {
  /** Never rejects for anything formula code does. */
  run(input: RunInput): Promise<RunOutcome>;
  /** Compiles the code and runs its top-level module code in a throwaway isolate. */
  checkCode(code: string): Promise<CheckResult>;
  /** How busy the pool is now (read by the metrics endpoint at each scrape). */
  stats(): RuntimeStats;
  close(): Promise<void>;
}

export interface RuntimeStats {
  /** Worker threads alive, spares started for stuck threads included. */
  threads: number;
  /** Tasks waiting for a worker. */
  queued: number;
  /** Threads held by a formula's long synchronous call (a loop the isolate's timeout will end). */
  stuckThreads: number;
}

/** Options as the worker sees them: every default filled in. */
export type WorkerOptions = Required<Omit<RuntimeOptions, 'threads'>>;

/** What each worker gets at start (piscina workerData). */
export interface WorkerSetup {
  runtime: WorkerOptions;
  /** Which worker runs which task (task-slots.ts). */
  slots: SharedSlots;
  /** The BroadcastChannel name the pool listens on for late batch answers. */
  answerChannel: string;
  /** The cells both sides poll (wake-poll.ts). */
  wakeCells: SharedArrayBuffer;
  /** Where the worker marks its synchronous formula calls (stuck-threads.ts). */
  stuckCells: StuckCells;
}

/** slot: where the worker marks that it started the task (task-slots.ts); absent only when all slots are in use. */
export type SingleTask = ({ kind: 'run'; input: RunInput } | { kind: 'check'; code: string } | { kind: 'quiesce' }) & {
  slot?: number;
};

export type WorkerTask =
  | SingleTask
  /**
   * Several runs in one message. The worker answers them in its result when they all finish without waiting on the
   * host (the common case); otherwise each answer goes out on the pool's answer channel, tagged with `batch`, as
   * soon as it is ready (pool.ts, worker.ts).
   */
  | { kind: 'batch'; batch: number; tasks: SingleTask[]; slot?: undefined };

export interface BatchAnswer {
  index: number;
  outcome: RunOutcome | CheckResult;
}

/** What a worker posts on the answer channel for a batch whose runs did not all finish at once. */
export interface LateAnswers {
  batch: number;
  answers: BatchAnswer[];
}

export const DEFAULTS = {
  memoryLimitMb: 128,
  maxCachedFormulas: 100,
  fetchTimeoutMs: 210_000,
  maxResponseBytes: 5 * 1024 * 1024,
  maxOutputBytes: 5 * 1024 * 1024,
  spinMicros: 200,
} as const;

export function workerOptions(options: RuntimeOptions): WorkerOptions {
  return {
    memoryLimitMb: options.memoryLimitMb || DEFAULTS.memoryLimitMb,
    maxCachedFormulas: options.maxCachedFormulas ?? DEFAULTS.maxCachedFormulas,
    egressAllow: options.egressAllow ?? [],
    fetchTimeoutMs: options.fetchTimeoutMs ?? DEFAULTS.fetchTimeoutMs,
    maxResponseBytes: options.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
    maxOutputBytes: options.maxOutputBytes ?? DEFAULTS.maxOutputBytes,
    spinMicros: options.spinMicros ?? DEFAULTS.spinMicros,
  };
}
