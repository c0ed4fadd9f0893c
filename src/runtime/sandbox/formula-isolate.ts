import ivm from 'isolated-vm';
import type { ErrorShape } from '../../errors.ts';
import type { LoadFailure, LogLine, RunInput } from '../types.ts';
import { type BridgeSettings, createBridge, endInvocation, Invocation } from './host-bridge.ts';
import {
  decodeSettled,
  describeReason,
  errorOf,
  runtimeError,
  type Settled,
  TIMED_OUT,
  timeoutError,
} from './outcome.ts';
import { runPrelude } from './prelude/index.ts';

export interface IsolateSettings extends BridgeSettings {
  memoryLimitMb: number;
  maxOutputBytes: number;
  /** Told when a synchronous call into formula code starts and ends (src/runtime/stuck-threads.ts). */
  syncCalls?: { enter(): void; leave(): void };
}

/**
 * `timedOut`: the module code did not finish within the time it was given, which is the code's fault only when that
 * was the whole load budget rather than what was left of one call's time (formula-cache.ts).
 */
export type LoadResult =
  | { ok: true; formula: FormulaIsolate }
  | { ok: false; message: string; reason: LoadFailure; timedOut?: boolean };

/** A call that runs longer than this on the worker thread moves the formula to the async path for good. */
const SYNC_BUDGET_MS = 20;
const SLOW_CALLS_BEFORE_ASYNC = 3;
const WATCHDOG_MS = 50;
const DELIVER_GRACE_MS = 50;

let invocationSeq = 0;

const MODULE_WRAPPER = '__rgDefine(function (module, exports, require) {';

/** V8's message when the isolate's allocator refuses an ArrayBuffer (isolated-vm counts them against the limit). */
const ARRAY_BUFFER_FAILED = /^Array buffer allocation failed/;

export const SANDBOX_UNAVAILABLE = {
  ok: false,
  message: 'The reactor sandbox could not be initialised',
  reason: 'unavailable',
} as const;

/**
 * One isolate holding one formula version of one tenant. Calls start on the worker thread (`applySync`, microtasks
 * drained inside the timeout) unless another call of this isolate is still in flight: a synchronous call into an
 * isolate that is waiting on this thread for a host callback would deadlock.
 */
export class FormulaIsolate {
  readonly isolate: ivm.Isolate;
  private readonly context: ivm.Context;
  private readonly invocations = new Map<number, Invocation>();
  private readonly pending = new Map<number, (settled: Settled) => void>();
  private start!: ivm.Reference<(id: number, requestJson: string) => void>;
  private deliverRef!: ivm.Reference<(callId: number, answerJson: string) => void>;
  private watchdog: NodeJS.Timeout | null = null;
  private preferAsync = false;
  private running = 0;
  private slowSyncCalls = 0;
  private defined = false;
  disposed = false;
  /**
   * A call failed for want of ArrayBuffer memory: V8 throws that inside the isolate as an ordinary RangeError, and
   * what the isolate holds may still be near its limit. Its cache entry takes a fresh isolate on the next call. (A
   * formula that catches the RangeError itself goes on as it likes, within its limit.)
   */
  exhausted = false;
  uses = 0;

  private constructor(private readonly settings: IsolateSettings) {
    this.isolate = new ivm.Isolate({
      memoryLimit: settings.memoryLimitMb,
      // V8 cannot continue after a catastrophic error; ending this worker lets piscina replace it.
      onCatastrophicError: () => process.exit(70),
    });
    this.context = this.isolate.createContextSync();
  }

  /**
   * A fresh isolate with the runtime installed and no formula yet (what `FormulaCache` keeps as its spare), or null
   * if the sandbox could not be set up. Creating the isolate is most of a first call's cost (about 1.5 ms of
   * 2.3 ms here), so a worker makes the next one before it is needed.
   */
  static create(settings: IsolateSettings): FormulaIsolate | null {
    let formula: FormulaIsolate;
    try {
      formula = new FormulaIsolate(settings);
    } catch {
      // No isolate to be had (the process is short of memory): also for a spare built in the background, where a
      // throw would end the worker.
      return null;
    }
    try {
      formula.install();
      return formula;
    } catch {
      formula.dispose();
      return null;
    }
  }

  static load(code: string, settings: IsolateSettings, loadTimeoutMs: number): LoadResult {
    const formula = FormulaIsolate.create(settings);
    return formula ? formula.define(code, loadTimeoutMs) : SANDBOX_UNAVAILABLE;
  }

  /**
   * Compiles the formula's code and runs its module code: from then on this isolate is that formula's, and only
   * that formula's. A failed definition disposes the isolate.
   */
  define(code: string, loadTimeoutMs: number): LoadResult {
    if (this.defined) throw new Error('An isolate holds one formula only');
    this.defined = true;
    this.settings.syncCalls?.enter();
    let compiled = false;
    try {
      // The wrapper has a line of its own, which lineOffset takes back: lines and columns in stacks and compile
      // errors are those of the formula's source.
      const script = this.isolate.compileScriptSync(`${MODULE_WRAPPER}\n${code}\n})`, {
        filename: 'reactor-formula.js',
        lineOffset: -1,
      });
      compiled = true;
      const answer = JSON.parse(String(script.runSync(this.context, { timeout: loadTimeoutMs }))) as {
        ok: boolean;
        message?: string;
      };
      script.release();
      this.settings.syncCalls?.leave();
      if (!answer.ok) {
        this.dispose();
        return { ok: false, message: String(answer.message), reason: 'invalid' };
      }
      return { ok: true, formula: this };
    } catch (error) {
      this.settings.syncCalls?.leave();
      const disposedByLimit = this.isolate.isDisposed;
      const message = error instanceof Error ? error.message : '';
      const timedOut = message === TIMED_OUT;
      this.dispose();
      if (timedOut) {
        const tooLong = `Reactor code top-level did not finish within ${loadTimeoutMs} ms`;
        return { ok: false, message: tooLong, reason: 'invalid', timedOut: true };
      }
      if (disposedByLimit) {
        return { ok: false, message: 'Reactor code exceeded the memory limit while loading', reason: 'invalid' };
      }
      if (compiled) {
        // __rgDefine catches what module code throws, so this is a promise it rejected with no handler.
        const unhandled = `Reactor code failed to load: Unhandled rejection: ${describeReason(error)}`.slice(0, 500);
        return { ok: false, message: unhandled, reason: 'invalid' };
      }
      const compileError = message.split('\n')[0]?.slice(0, 500);
      return { ok: false, message: `Reactor code does not compile: ${compileError}`, reason: 'invalid' };
    }
  }

  private install(): void {
    const bridge = createBridge(this.settings, this.invocations, (invocation, callId, answer) =>
      this.deliver(invocation, callId, answer),
    );
    const global = this.context.global;
    global.setSync('__rgHostSync', new ivm.Callback(bridge.sync));
    global.setSync('__rgHostDispatch', new ivm.Callback(bridge.dispatch));
    global.setSync('__rgHostSettle', new ivm.Callback((id: unknown, json: unknown) => this.settle(id, json)));
    global.setSync('__rgConfig', JSON.stringify({ maxOutputBytes: this.settings.maxOutputBytes }));
    runPrelude(this.isolate, this.context);
    this.start = global.getSync('__rgStart', { reference: true }) as ivm.Reference<
      (id: number, requestJson: string) => void
    >;
    this.deliverRef = global.getSync('__rgDeliver', { reference: true }) as ivm.Reference<
      (callId: number, answerJson: string) => void
    >;
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  async run(input: RunInput): Promise<{ settled: Settled; logs: LogLine[] }> {
    this.uses++;
    const id = ++invocationSeq;
    const timeoutMs = input.timeoutMs;
    const limitMs = input.fullTimeoutMs ?? timeoutMs;
    const invocation = new Invocation(id, input.bt, performance.now() + timeoutMs, timeoutMs);
    let requestJson: string;
    try {
      requestJson = JSON.stringify({
        args: input.args ?? null,
        configuration: input.configuration ?? {},
        bt: input.bt ? true : null,
      });
    } catch {
      return {
        settled: { ok: false, error: errorOf('BAD_REQUEST', 400, 'Reactor args are not JSON-serialisable') },
        logs: [],
      };
    }
    const done = new Promise<Settled>((resolve) => this.pending.set(id, resolve));
    this.invocations.set(id, invocation);
    try {
      if (this.disposed) throw new Error('disposed');
      if (!this.preferAsync && this.pending.size === 1) {
        const before = performance.now();
        this.settings.syncCalls?.enter();
        try {
          this.start.applySync(undefined, [id, requestJson], { timeout: timeoutMs });
        } finally {
          this.settings.syncCalls?.leave();
        }
        // Several slow calls in a row, so one preemption on a busy machine does not demote a cheap formula.
        // (isolate.cpuTime would be better but aborts the process when read from the host thread here.)
        this.slowSyncCalls = performance.now() - before > SYNC_BUDGET_MS ? this.slowSyncCalls + 1 : 0;
        if (this.slowSyncCalls >= SLOW_CALLS_BEFORE_ASYNC) this.preferAsync = true;
      } else {
        await this.track(this.start.apply(undefined, [id, requestJson], { timeout: timeoutMs }));
      }
    } catch (error) {
      const rejection = this.unhandledRejection(error);
      if (rejection === null) this.failAfterThrow(id, error, limitMs);
      else invocation.log('error', rejection);
    }
    // Only a call still waiting on the host needs a wall-clock timer; the common synchronous one is done here.
    let timer: NodeJS.Timeout | null = null;
    if (this.pending.has(id)) {
      timer = setTimeout(() => this.expire(id, limitMs), Math.max(0, invocation.remainingMs()));
      this.armWatchdog();
    }
    const settled = await done;
    if (timer) clearTimeout(timer);
    if (invocation.delivering) await this.lastDelivery(invocation);
    endInvocation(invocation);
    this.invocations.delete(id);
    return { settled, logs: invocation.logs };
  }

  private settle(id: unknown, json: unknown): void {
    if (typeof id !== 'number' || typeof json !== 'string') return;
    const resolve = this.pending.get(id);
    if (!resolve) return;
    this.pending.delete(id);
    const settled = decodeSettled(json, this.settings.maxOutputBytes);
    if (!settled.ok && ARRAY_BUFFER_FAILED.test(settled.error.message)) {
      this.exhausted = true;
      resolve({ ok: false, error: this.memoryError() });
      return;
    }
    resolve(settled);
  }

  private fail(id: number, error: ErrorShape): void {
    const resolve = this.pending.get(id);
    if (!resolve) return;
    this.pending.delete(id);
    resolve({ ok: false, error });
  }

  private memoryError(): ErrorShape {
    return runtimeError(`Reactor exceeded the memory limit of ${this.settings.memoryLimitMb} MB`);
  }

  /**
   * The log line for a call into the isolate that threw the reason of a promise rejected with no handler, else null.
   * isolated-vm throws it once the call's microtasks have all run, so the isolate is in order and the run goes on.
   * Other throws are isolated-vm's (timeout, disposal): __rgStart and __rgDeliver catch what formula code throws.
   */
  private unhandledRejection(error: unknown): string | null {
    if (this.disposed || this.isolate.isDisposed) return null;
    if (error instanceof Error && error.message === TIMED_OUT) return null;
    return `Unhandled rejection: ${describeReason(error)}`;
  }

  /** `limitMs`: the time limit to name in a timeout's message. */
  private failAfterThrow(id: number, error: unknown, limitMs: number): void {
    const message = error instanceof Error ? error.message : '';
    if (this.isolate.isDisposed && !this.disposed) this.fail(id, this.memoryError());
    else if (message === TIMED_OUT) this.fail(id, timeoutError(limitMs));
    else this.fail(id, runtimeError('The reactor sandbox failed while running the formula'));
    // Whatever was interrupted may have left the isolate half-way through something; never reuse it.
    this.dispose();
  }

  private expire(id: number, limitMs: number): void {
    if (!this.pending.has(id)) return;
    if (this.isolate.isDisposed && !this.disposed) this.fail(id, this.memoryError());
    else this.fail(id, timeoutError(limitMs));
    this.dispose();
  }

  private deliver(invocation: Invocation | undefined, callId: number, answerJson: string): void {
    if (this.disposed) return;
    const timeout =
      invocation && !invocation.finished ? Math.ceil(invocation.remainingMs()) + DELIVER_GRACE_MS : DELIVER_GRACE_MS;
    const delivered = this.track(this.deliverRef.apply(undefined, [callId, answerJson], { timeout })).then(
      () => {},
      (error: unknown) => {
        const rejection = invocation ? this.unhandledRejection(error) : null;
        if (rejection !== null) invocation?.log('error', rejection);
        // Otherwise stopped by its timeout or by disposal; the invocation's timer or the watchdog reports it.
      },
    );
    if (invocation) invocation.delivering = delivered;
  }

  /**
   * Waits, within the run's time left, for the call that delivered the run's answer to return, so that its
   * unhandled rejection (isolated-vm reports it after the call) is among the run's logs, as on the synchronous path.
   */
  private async lastDelivery(invocation: Invocation): Promise<void> {
    const remainingMs = invocation.remainingMs();
    if (this.disposed || remainingMs <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, remainingMs);
    });
    await Promise.race([invocation.delivering, outOfTime]);
    clearTimeout(timer);
  }

  // Running code is only ever stopped by its own timeout (isolated-vm's), never by disposing the isolate under it:
  // the isolate is disposed once every call into it has returned (releaseIsolate).
  private track<T>(task: Promise<T>): Promise<T> {
    this.running++;
    return task.finally(() => {
      this.running--;
      if (this.running === 0 && this.disposed) this.releaseIsolate();
    });
  }

  // An isolate that hits its memory limit while continuing after a host callback has no caller to throw to.
  private armWatchdog(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => {
      if (this.pending.size === 0) {
        clearInterval(this.watchdog!);
        this.watchdog = null;
      } else if (this.isolate.isDisposed && !this.disposed) {
        for (const id of [...this.pending.keys()]) this.fail(id, this.memoryError());
        this.dispose();
      }
    }, WATCHDOG_MS);
    this.watchdog.unref();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    const byLimit = this.isolate.isDisposed;
    for (const id of [...this.pending.keys()]) {
      this.fail(
        id,
        byLimit
          ? this.memoryError()
          : errorOf(
              'REACTOR_INTERRUPTED',
              500,
              'The reactor run was interrupted when its sandbox was recycled; it was not retried.',
            ),
      );
    }
    for (const invocation of this.invocations.values()) endInvocation(invocation);
    if (this.running === 0) this.releaseIsolate();
  }

  /**
   * Releases every handle, then disposes the isolate. Released handles alone never freed an isolate, even after
   * forced GCs of the worker: recycling an isolate every 10,000 calls (formula-cache.ts) leaked 3.5-5 MB each time,
   * 7.6 MB of RSS per 20,000 `react` calls with no end, and each timeout about as much (BENCHMARKS.md, seventeenth
   * and eighteenth sessions).
   */
  private releaseIsolate(): void {
    for (const handle of [this.start, this.deliverRef, this.context] as { release(): void }[]) {
      try {
        handle.release();
      } catch {
        // Already released.
      }
    }
    if (this.isolate.isDisposed) return;
    try {
      this.isolate.dispose();
    } catch {
      // Disposed meanwhile by its memory limit.
    }
  }
}
