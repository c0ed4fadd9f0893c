import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A server the harness started in a child process, so load generator and server never share an event loop. */
export interface ServerProcess {
  name: string;
  /** The GraphQL endpoint, always on 127.0.0.1. */
  url: string;
  pid: number;
  stop(): Promise<void>;
}

// BENCH_NODE_ARGS adds flags Node refuses in NODE_OPTIONS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile
// the servers a figure starts.
const NODE_ARGS = ['--no-node-snapshot', ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
const ROOT = path.resolve(import.meta.dirname, '..', '..');

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node --no-node-snapshot [--import tsx] <script> ...args` (tsx for a `.ts` script) and waits until
 * `readyPath` answers 200.
 */
export async function startProcess(options: {
  name: string;
  script: string;
  args?: string[];
  env?: Record<string, string>;
  port: number;
  readyPath: string;
  graphqlPath?: string;
  timeoutMs?: number;
  /** Node flags for this process only, after BENCH_NODE_ARGS (A/B runs of a flag). */
  nodeArgs?: string[];
}): Promise<ServerProcess> {
  // TypeScript (the harness's own servers, another checkout's sources) through tsx; dist/'s JavaScript as it is.
  const loader = options.script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const argv = [
    ...NODE_ARGS,
    ...loader,
    ...(options.nodeArgs ?? []),
    path.join(ROOT, options.script),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: { ...process.env, ...options.env, PORT: String(options.port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
    // BENCH_PROCESS_LOG=<file>: everything the process prints, e.g. with BENCH_NODE_ARGS=--trace-gc-nvp.
    if (process.env.BENCH_PROCESS_LOG) appendFileSync(process.env.BENCH_PROCESS_LOG, chunk);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const base = `http://127.0.0.1:${options.port}`;
  await waitUntilReady(child, `${base}${options.readyPath}`, options.timeoutMs ?? 90_000, () => output);
  return {
    name: options.name,
    url: `${base}${options.graphqlPath ?? '/graphql'}`,
    pid: child.pid!,
    stop: () => stopChild(child),
  };
}

async function waitUntilReady(child: ChildProcess, url: string, timeoutMs: number, output: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}):\n${output()}`);
    const ok = await fetch(url).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await stopChild(child);
  throw new Error(`server not ready after ${timeoutMs} ms:\n${output()}`);
}

/** SIGTERM (the server drains and closes its pool and database), SIGKILL after 10 s. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** A temporary directory removed by the returned function. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * CPU seconds (user + system, all threads) a process has used so far, from /proc (Linux). On a shared, noisy
 * machine, CPU time per request is steadier than throughput: it does not count the time the process waited for a
 * core. With `thread`, that thread's alone (a process's main thread has the process's id). Undefined where /proc
 * is not there.
 */
export async function cpuSeconds(pid: number, thread?: number): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises');
  const file = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
  const stat = await readFile(file, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  // Fields after the command name (which may hold spaces, hence the last ')'): utime is 14th, stime 15th overall.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / CLOCK_TICKS;
}

/** USER_HZ: 100 on every Linux build Node supports. */
const CLOCK_TICKS = 100;
