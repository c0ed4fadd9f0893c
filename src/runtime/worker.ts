import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BroadcastChannel, threadId, workerData } from 'node:worker_threads';
import { DomainError, type ErrorShape } from '../errors.ts';
import { validateArgs } from '../invocations/request-parameters.ts';
import { openSealedArgs, TokenDecryptionError } from '../tokens/sealing.ts';
import { createEgressPolicy } from './sandbox/egress.ts';
import { FormulaCache } from './sandbox/formula-cache.ts';
import { FormulaIsolate, type IsolateSettings } from './sandbox/formula-isolate.ts';
import { errorOf, runtimeError } from './sandbox/outcome.ts';
import { SyncCallMarker } from './stuck-threads.ts';
import { startTask } from './task-slots.ts';
import type {
  BatchAnswer,
  CheckResult,
  LateAnswers,
  RunInput,
  RunOutcome,
  SingleTask,
  WorkerSetup,
  WorkerTask,
} from './types.ts';
import { AdaptivePoll, WorkerWakeCells } from './wake-poll.ts';

// Piscina worker entry. Imports nothing from db, auth or graphql: this side only ever sees one call's data (and, for
// its sealed tokens, that tenant's data key: src/tokens/sealing.ts).
const { runtime: options, slots, answerChannel, wakeCells, stuckCells } = workerData as WorkerSetup;
const slotCells = new Int32Array(slots.buffer);
const syncCalls = new SyncCallMarker(stuckCells, threadId);
const settings: IsolateSettings = {
  memoryLimitMb: options.memoryLimitMb,
  maxOutputBytes: options.maxOutputBytes,
  policy: createEgressPolicy(options.egressAllow),
  fetchTimeoutMs: options.fetchTimeoutMs,
  maxResponseBytes: options.maxResponseBytes,
  syncCalls,
};
const cache = new FormulaCache(settings, options.maxCachedFormulas);
const wake = new WorkerWakeCells(wakeCells);
/** Tasks this worker has started and not answered: a poll would hold them up, so it polls only when there are none. */
let tasksRunning = 0;
const afterAnswerPoll = new AdaptivePoll(wake, options.spinMicros);
const CHECK_TIMEOUT_MS = 500;
const CHECK_MEMORY_MB = 64;

type PreparedInput = { ok: true; input: RunInput } | { ok: false; error: ErrorShape };

/** The input with the args the formula gets: sealed tokens opened and put in, then validated and cast. */
function prepare(input: RunInput): PreparedInput {
  try {
    const args = input.sealedArgs ? openSealedArgs(input.args ?? {}, input.sealedArgs) : input.args;
    return {
      ok: true,
      input: { ...input, args: input.requestParameters ? validateArgs(input.requestParameters, args) : args },
    };
  } catch (error) {
    if (error instanceof DomainError) return { ok: false, error: error.toShape() };
    // A token that does not open is a storage or key fault, never the formula's or the client's: a 500 that says so.
    if (error instanceof TokenDecryptionError)
      return { ok: false, error: errorOf('REACTOR_RUNTIME_ERROR', 500, error.message) };
    return { ok: false, error: runtimeError('The reactor sandbox failed while preparing the args') };
  }
}

async function run(task: Extract<SingleTask, { kind: 'run' }>, prepared?: PreparedInput): Promise<RunOutcome> {
  const started = performance.now();
  const ready = prepared ?? prepare(task.input);
  if (!ready.ok) return { ok: false, error: ready.error, logs: [], elapsedMs: elapsedSince(started) };
  const { input } = ready;
  const acquired = cache.acquire(input);
  if (!acquired.ok) return { ok: false, error: acquired.error, logs: [], elapsedMs: elapsedSince(started) };
  try {
    const { settled, logs } = await acquired.formula.run(input);
    return settled.ok
      ? { ok: true, raw: settled.raw, tokenize: settled.tokenize, logs, elapsedMs: elapsedSince(started) }
      : { ok: false, error: settled.error, logs, elapsedMs: elapsedSince(started) };
  } catch {
    return {
      ok: false,
      error: runtimeError('The reactor sandbox failed while running the formula'),
      logs: [],
      elapsedMs: elapsedSince(started),
    };
  } finally {
    cache.release(acquired.formula);
  }
}

/** Milliseconds since `started`, to the microsecond. (A function, not a closure per run: see request-parameters.ts.) */
function elapsedSince(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

function check(code: string): CheckResult {
  const loaded = FormulaIsolate.load(
    code,
    { ...settings, memoryLimitMb: Math.min(CHECK_MEMORY_MB, settings.memoryLimitMb) },
    CHECK_TIMEOUT_MS,
  );
  if (!loaded.ok) return loaded;
  loaded.formula.dispose();
  return { ok: true };
}

/**
 * Before the pool terminates this worker: dispose every isolate and run a full GC, so the weak callbacks of
 * isolated-vm handles run now. Left for the final GC of worker teardown they run after isolated-vm's environment
 * for this thread is gone and abort the whole process (`IsolateEnvironment::GetCurrent()` assertion in
 * ClassHandle::WeakCallback under node::IsolateData::~IsolateData, seen in gdb after recycling isolates).
 */
async function quiesce(): Promise<number> {
  cache.disposeAll();
  // V8 flags are process-wide: while --expose-gc is on, every new context (an isolate's too) gets a global gc.
  // Turn it off again at once; the prelude also deletes any gc global before formula code runs.
  setFlagsFromString('--expose-gc');
  let gc: () => void;
  try {
    gc = runInNewContext('gc') as () => void;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  // Second-pass weak callbacks run as tasks after a GC, and may release more handles: let them run, collect again.
  for (let pass = 0; pass < 3; pass++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return threadId;
}

/**
 * The answers of a batch whose runs did not all finish at once (a formula waiting on fetch or a timer), on their way
 * back over the pool's answer channel: each goes as soon as it is ready, so a slow formula never holds up a fast one,
 * and answers ready in the same turn of the loop share one message. The channel is opened only for such a batch and
 * closed with it: while open it also receives (and drops) what other workers post, as every BroadcastChannel does.
 */
class LateAnswerQueue {
  private readonly channel = new BroadcastChannel(answerChannel);
  private pending: BatchAnswer[] = [];
  private scheduled: NodeJS.Immediate | null = null;

  constructor(private readonly batch: number) {}

  add(answers: BatchAnswer[]): void {
    this.pending.push(...answers);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    if (this.pending.length === 0) return;
    this.channel.postMessage({ batch: this.batch, answers: this.pending } satisfies LateAnswers);
    this.pending = [];
  }

  /** Posted messages are delivered after a close. */
  close(): void {
    this.flush();
    this.channel.close();
  }
}

/**
 * Runs a batch. Answers come back in the result when every run finished without waiting on the host, which saves a
 * message and a wake-up of the pool's thread per batch. A batch still running after the synchronous runs are done
 * (one turn of the loop) sends what is ready at once, and each later answer as it comes, on the answer channel.
 */
async function runBatch(task: Extract<WorkerTask, { kind: 'batch' }>): Promise<BatchAnswer[]> {
  // Every run's args first, then the runs: opening tokens one after another, rather than between formula runs that
  // evict OpenSSL's state from the CPU caches, costs a fraction per token (cold, one costs 30-70 us here).
  const inputs = task.tasks.map((one) => (one.kind === 'run' ? prepare(one.input) : undefined));
  const ready: BatchAnswer[] = [];
  let late: LateAnswerQueue | null = null;
  const stillRunning = setImmediate(() => {
    late = new LateAnswerQueue(task.batch);
    late.add(ready.splice(0));
  });
  await Promise.all(
    task.tasks.map(async (one, index) => {
      const answer = { index, outcome: await handleOne(one, inputs[index]) };
      if (late) late.add([answer]);
      else ready.push(answer);
    }),
  );
  clearImmediate(stillRunning);
  (late as LateAnswerQueue | null)?.close();
  return ready;
}

export default async function handle(task: WorkerTask): Promise<RunOutcome | CheckResult | BatchAnswer[]> {
  tasksRunning++;
  afterAnswerPoll.taskArrived();
  const dispatchesSeen = wake.dispatches();
  try {
    return await (task.kind === 'batch' ? runBatch(task) : handleOne(task));
  } finally {
    tasksRunning--;
    // piscina posts the answer in a microtask once this returns; an immediate runs after it.
    setImmediate(afterAnswer, dispatchesSeen);
  }
}

/** The answer is posted: tell a pool polling for it, then poll briefly for the next dispatch if idle. */
function afterAnswer(dispatchesSeen: number): void {
  wake.answered();
  if (tasksRunning === 0) afterAnswerPoll.poll(dispatchesSeen);
}

async function handleOne(task: SingleTask, prepared?: PreparedInput): Promise<RunOutcome | CheckResult> {
  if (task.slot !== undefined && !startTask(slots, slotCells, task.slot, threadId)) {
    // The pool's backstop gave up on this task while it was still queued here and has already answered for it.
    return { ok: false, message: 'cancelled', reason: 'unavailable' };
  }
  if (task.kind === 'quiesce') return { ok: false, message: String(await quiesce()), reason: 'unavailable' };
  // A run's synchronous part (compile, then the formula up to its first wait) starts now, before any other task's.
  syncCalls.slot = task.slot ?? -1;
  return task.kind === 'check' ? check(task.code) : run(task, prepared);
}
