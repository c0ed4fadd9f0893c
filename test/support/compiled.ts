import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { TEST_ENCRYPTION_KEY } from './gateway.ts';

/** The compiled service (`npm start` runs scripts/build.mjs's output with plain Node), as tests start it. */

const run = promisify(execFile);
export const ROOT = path.resolve(import.meta.dirname, '..', '..');

/**
 * The service built for the tests of the calling `describe` (before them, removed after), into a directory of its own
 * inside the repository, so that its imports of packages resolve to node_modules as they do from dist/.
 */
export function compiledService() {
  let out = '';
  beforeAll(async () => {
    out = await mkdtemp(path.join(ROOT, '.build-test-'));
    await build(out);
  }, 60_000);
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });
  return {
    /** Where it was built (what dist/ is to `npm start`). */
    get dir() {
      return out;
    },
    /** Starts it as `npm start` does (`serve`), with `env` only. */
    serve: (env: NodeJS.ProcessEnv): ChildProcess =>
      spawn(process.execPath, ['--no-node-snapshot', path.join(out, 'src/main.js'), 'serve'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
  };
}

export function build(out: string) {
  return run(process.execPath, [path.join(ROOT, 'scripts/build.mjs'), out], { cwd: ROOT });
}

/** A compiled gateway's environment: an embedded database in `dataDir` (none inherited), on 127.0.0.1. */
export function gatewayEnv(dataDir: string, port = 0): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATA_DIR: dataDir,
    DATABASE_URL: '',
    PORT: String(port),
    HOST: '127.0.0.1',
    ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    RUNTIME_THREADS: '1',
    LOG_LEVEL: 'info',
  };
}

/** How a child process ended. */
export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** A GraphQL request to a gateway at `url`, with an API key. */
export async function postGraphQL(url: string, query: string, variables: Record<string, unknown>, key: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'bt-api-key': key },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: any; errors?: unknown[] };
}

export function listeningUrl(child: ChildProcess, output: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line in 45 s:\n${output.join('')}`)), 45_000);
    const onData = (chunk: Buffer) => {
      output.push(chunk.toString());
      const match = /"url":"(http:[^"]+)".*reactor-gateway listening/.exec(output.join(''));
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the built gateway exited with ${code}:\n${output.join('')}`));
    });
  });
}
