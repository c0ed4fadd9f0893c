/**
 * The formula runtime's own process (RUNTIME_ISOLATION=process), started by process-runtime.ts: the same pool of
 * worker threads and isolates as in the gateway's process (pool.ts), behind an IPC channel. It is started with an
 * empty environment and, compiled, under Node's permission model, so what code that escaped an isolate would find
 * here is this process: no ENCRYPTION_KEY, no database URL, no admin key, no files but the code's own.
 *
 * Its only argument is the runtime's options as JSON (nothing secret). It ends when the gateway asks, or when the
 * channel to the gateway closes (the gateway died), so it never outlives its gateway.
 */
import { createFormulaRuntime } from './pool.ts';
import { type Answer, type FromRuntime, type ToRuntime, unavailableCheck, unavailableRun } from './process-protocol.ts';
import type { CheckResult, RunOutcome, RuntimeOptions } from './types.ts';

const STATS_INTERVAL_MS = 1_000;

const options = JSON.parse(process.argv[2] ?? '{}') as RuntimeOptions;
const runtime = createFormulaRuntime(options);
// Only while the channel is open: after the gateway is gone, a send (the stats timer during the shutdown below) would
// raise ERR_IPC_CHANNEL_CLOSED as an unhandled 'error' and end the process with a stack trace instead of exit 0.
const send = (message: FromRuntime) => process.connected && process.send?.(message);

// Answers that come in one turn of the event loop go back in one message, as the calls came (process-runtime.ts).
let outbox: Answer[] = [];
let flushScheduled = false;

function answer(id: number, outcome: RunOutcome | CheckResult): void {
  outbox.push([id, outcome]);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

/** The answers not sent yet, as one message, or null. */
function takeAnswers(): FromRuntime | null {
  if (outbox.length === 0) return null;
  const answers = outbox;
  outbox = [];
  return { t: 'answers', answers, stats: runtime.stats() };
}

function flush(): void {
  flushScheduled = false;
  const message = takeAnswers();
  if (message) send(message);
}

process.on('message', (message: ToRuntime) => {
  if (message.t === 'close') {
    void shutdown();
    return;
  }
  for (const [id, kind, payload] of message.calls) {
    if (kind === 'run') {
      const started = performance.now();
      runtime.run(payload).then(
        (outcome) => answer(id, outcome),
        () => answer(id, unavailableRun(performance.now() - started)),
      );
    } else {
      runtime.checkCode(payload).then(
        (result) => answer(id, result),
        () => answer(id, unavailableCheck()),
      );
    }
  }
});

let closing: Promise<void> | undefined;
function shutdown(): Promise<void> {
  closing ??= (async () => {
    await runtime.close();
    // The last answers (runs the close cut short) are written before the process ends.
    const last = takeAnswers();
    if (last && process.connected) process.send?.(last, () => process.exit(0));
    else process.exit(0);
  })();
  return closing;
}

// The gateway is gone (it died, or closed the channel): nobody is left to answer.
process.on('disconnect', () => void shutdown());
// A Ctrl-C in a terminal reaches the whole process group: the gateway ends this process when it is done with it
// (its close, or the channel closing when it exits), not in the middle of its own graceful shutdown.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

// The metrics endpoint reads the pool's figures at each scrape; between answers they come this often.
setInterval(() => send({ t: 'stats', stats: runtime.stats() }), STATS_INTERVAL_MS).unref();

send({ t: 'ready' });
