/**
 * RUNTIME_ISOLATION=process: the formula runtime (pool.ts's worker threads and isolates) in a process of its own,
 * the defense in depth DESIGN.md section 5 left for later. isolated-vm is the boundary either way; this is what
 * stands behind it if a formula ever gets out of its isolate:
 * - the runtime process is started with an empty environment: no ENCRYPTION_KEY, DATABASE_URL, ADMIN_API_KEY or
 *   METRICS_TOKEN, and nothing in /proc/<pid>/environ;
 * - compiled (`npm start`), it runs under Node's permission model: it may read its own code and the two packages it
 *   loads (piscina, isolated-vm) and nothing else (not the data directory and its key file, not /proc/self), write
 *   nothing, and start no process;
 * - it never holds the master key or a database connection: a run brings the sealed tokens it needs with that
 *   tenant's data key only (src/tokens/sealing.ts);
 * - a crash in native code (isolated-vm, V8) ends the runtime process, not the gateway: the runs in flight answer
 *   SERVICE_UNAVAILABLE and a new runtime process starts; and out of memory, the kernel ends it before the gateway.
 * Node's permission model does not cover the network, and `--allow-addons` (isolated-vm is one) is trusted code:
 * native code can do anything. So the guarantee is about what escaped JavaScript can reach, not a native exploit.
 *
 * The cost is one more crossing each way, between processes (BENCHMARKS.md, twenty-fifth session). Calls made in
 * one turn of the event loop go as one message, and answers come back the same way.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import { type Call, type FromRuntime, type ToRuntime, unavailableCheck, unavailableRun } from './process-protocol.ts';
import type { CheckResult, FormulaRuntime, RunInput, RunOutcome, RuntimeOptions, RuntimeStats } from './types.ts';

/** How long past its own limit a call may go unanswered before the runtime process counts as stuck. */
const ANSWER_GRACE_MS = 10_000;
/** checkCode's own backstop in the pool is 5 s. */
const CHECK_BUDGET_MS = 15_000;
const BACKSTOP_INTERVAL_MS = 1_000;
const CLOSE_WAIT_MS = 5_000;
/** A runtime process that ended before it was ready is started again after this, doubling up to the maximum. */
const RESTART_DELAY_MS = { first: 200, max: 5_000 };

const NO_THREADS: RuntimeStats = { threads: 0, queued: 0, stuckThreads: 0 };

export interface ProcessRuntime extends FormulaRuntime {
  /** The runtime process's pid while one runs (tests read its environment and command line). */
  readonly pid: number | undefined;
}

type Log = Pick<Logger, 'warn' | 'error'>;

interface Pending {
  kind: 'run' | 'check';
  started: number;
  deadline: number;
  resolve: (outcome: RunOutcome | CheckResult) => void;
}

/** How the runtime process is started: exported for the test that checks what its permissions deny. */
export function runtimeProcessLaunch(): { entry: string; execArgv: string[]; cwd: string } {
  const here = import.meta.dirname;
  // Compiled into dist/ (`npm start`): plain Node. From the sources (tests, tsx): through tsx, which starts
  // esbuild as a process and writes a cache, so there the permission model cannot be on.
  const compiled = import.meta.url.endsWith('.js');
  const entry = path.join(here, `runtime-process${compiled ? '.js' : '.ts'}`);
  const treeRoot = path.resolve(here, '..', '..');
  const projectRoot = compiled ? path.dirname(treeRoot) : treeRoot;
  if (!compiled) return { entry, execArgv: ['--no-node-snapshot', '--import', 'tsx'], cwd: projectRoot };
  const require = createRequire(import.meta.url);
  // The two packages' own directories, not all of node_modules (pg, the logger, ... hold nothing it needs).
  const packageDirs = ['piscina', 'isolated-vm'].map((name) => path.join(nodeModulesOf(require.resolve(name)), name));
  return {
    entry,
    execArgv: [
      '--no-node-snapshot',
      '--experimental-permission',
      '--allow-worker',
      '--allow-addons',
      `--allow-fs-read=${treeRoot}`,
      ...packageDirs.map((dir) => `--allow-fs-read=${dir}`),
      // Node reads the nearest package.json for the module type.
      `--allow-fs-read=${path.join(projectRoot, 'package.json')}`,
      // Each thread would print that the permission model is experimental and that workers and addons weaken it:
      // known, and said above.
      '--disable-warning=ExperimentalWarning',
      '--disable-warning=SecurityWarning',
    ],
    cwd: projectRoot,
  };
}

/**
 * Formulas hold most of the memory (up to RUNTIME_MEMORY_LIMIT_MB per isolate, many isolates): if the machine runs
 * out, the kernel should end the runtime process, which is replaced, rather than the gateway. Raising a process's
 * own child's score needs no privilege; where there is no /proc (not Linux) nothing changes.
 */
const OOM_SCORE_ADJ = 500;
function preferForOomKill(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(OOM_SCORE_ADJ));
  } catch {}
}

function nodeModulesOf(file: string): string {
  const marker = `${path.sep}node_modules${path.sep}`;
  const at = file.lastIndexOf(marker);
  return at < 0 ? path.dirname(file) : file.slice(0, at + marker.length - 1);
}

export function createProcessRuntime(options: RuntimeOptions, log: Log): ProcessRuntime {
  const launch = runtimeProcessLaunch();
  const pending = new Map<number, Pending>();
  let child: ChildProcess | null = null;
  let ready = false;
  let closed = false;
  let outbox: Call[] = [];
  let flushScheduled = false;
  let nextId = 0;
  let stats = NO_THREADS;
  let restartDelay = RESTART_DELAY_MS.first;
  let restartTimer: NodeJS.Timeout | undefined;

  function start(): void {
    const started = fork(launch.entry, [JSON.stringify(options)], {
      execArgv: launch.execArgv,
      cwd: launch.cwd,
      env: {},
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child = started;
    ready = false;
    preferForOomKill(started.pid);
    started.on('message', (message: FromRuntime) => {
      if (message.t === 'ready') {
        ready = true;
        restartDelay = RESTART_DELAY_MS.first;
        flush();
      } else {
        stats = message.stats;
        if (message.t === 'answers') for (const [id, outcome] of message.answers) settle(id, outcome);
      }
    });
    started.on('error', (error) => log.error({ err: error }, 'formula runtime process error'));
    started.on('exit', (code, signal) => {
      if (child !== started) return;
      const wasReady = ready;
      child = null;
      ready = false;
      stats = NO_THREADS;
      outbox = [];
      for (const id of [...pending.keys()]) settle(id, null);
      if (closed) return;
      log.error({ code, signal, wasReady }, 'formula runtime process ended; starting another');
      if (wasReady) {
        start();
        return;
      }
      // It could not even start (a broken install, a Node without these flags): do not spin on it.
      restartTimer = setTimeout(start, restartDelay);
      restartTimer.unref();
      restartDelay = Math.min(restartDelay * 2, RESTART_DELAY_MS.max);
    });
  }

  /** null: no answer will come (the process ended, or is stuck); the call is answered SERVICE_UNAVAILABLE. */
  function settle(id: number, outcome: RunOutcome | CheckResult | null): void {
    const call = pending.get(id);
    if (!call) return;
    pending.delete(id);
    if (outcome) call.resolve(outcome);
    else call.resolve(call.kind === 'run' ? unavailableRun(performance.now() - call.started) : unavailableCheck());
  }

  function flush(): void {
    flushScheduled = false;
    if (!ready || !child || outbox.length === 0) return;
    const calls = outbox;
    outbox = [];
    child.send({ t: 'calls', calls } satisfies ToRuntime);
  }

  function call<T extends RunOutcome | CheckResult>(entry: Call, budgetMs: number): Promise<T> {
    const id = entry[0];
    const started = performance.now();
    return new Promise<T>((resolve) => {
      const kind = entry[1];
      pending.set(id, { kind, started, deadline: started + budgetMs, resolve: resolve as Pending['resolve'] });
      if (closed || !child) {
        // Closing, or waiting out a failed start: answering now beats a queue nobody may read.
        settle(id, null);
        return;
      }
      outbox.push(entry);
      if (!ready) return;
      // Alone: it goes now. With company: the turn's calls go together.
      if (pending.size === 1) flush();
      else if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    });
  }

  // A call the runtime process has not answered long after its own limit: the process is stuck (its pool's own
  // backstops have failed). Its calls are answered, and it is replaced.
  const backstop = setInterval(() => {
    const now = performance.now();
    let stuck = false;
    for (const [id, entry] of pending) {
      if (entry.deadline > now) continue;
      settle(id, null);
      stuck = true;
    }
    if (stuck && child) {
      log.error({ pid: child.pid }, 'formula runtime process stopped answering; ending it');
      child.kill('SIGKILL');
    }
  }, BACKSTOP_INTERVAL_MS);
  backstop.unref();

  start();

  return {
    get pid() {
      return child?.pid;
    },
    run(input: RunInput): Promise<RunOutcome> {
      return call<RunOutcome>([nextId++, 'run', input], input.timeoutMs + ANSWER_GRACE_MS);
    },
    checkCode(code: string): Promise<CheckResult> {
      return call<CheckResult>([nextId++, 'check', code], CHECK_BUDGET_MS);
    },
    stats: () => stats,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(backstop);
      clearTimeout(restartTimer);
      const running = child;
      if (!running) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      if (running.connected) running.send({ t: 'close' } satisfies ToRuntime);
      const timer = setTimeout(() => running.kill('SIGKILL'), CLOSE_WAIT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
