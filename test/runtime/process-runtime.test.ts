import { fork, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { FromRuntime, ToRuntime } from '../../src/runtime/process-protocol.ts';
import { createProcessRuntime, type ProcessRuntime, runtimeProcessLaunch } from '../../src/runtime/process-runtime.ts';
import { startServer } from '../../src/server.ts';
import { createFormula, createReactor, createReactorWithCode, createToken, REACT } from '../support/fixtures.ts';
import { startTestGateway } from '../support/gateway.ts';
import { isAlive } from '../support/processes.ts';
import { until } from '../support/until.ts';
import { errorOf, invoke, rawOf } from './helpers.ts';

// RUNTIME_ISOLATION=process: the same pool, in a process of its own (src/runtime/process-runtime.ts). What its
// permission model denies is checked on the compiled service, where it is on (test/foundation/build.test.ts).

const logged: unknown[] = [];
const log = { warn: (...line: unknown[]) => logged.push(line), error: (...line: unknown[]) => logged.push(line) };
const runtimes: ProcessRuntime[] = [];

function startProcessRuntime(): ProcessRuntime {
  const runtime = createProcessRuntime({ threads: 2, memoryLimitMb: 64 }, log as never);
  runtimes.push(runtime);
  return runtime;
}

afterAll(async () => {
  await Promise.all(runtimes.map((runtime) => runtime.close()));
});

const ECHO = 'module.exports = async (req) => ({ raw: { n: req.args.n, doubled: req.args.n * 2 } });';

describe('the formula runtime in a process of its own', () => {
  it('runs formulas, one at a time and many in one turn, and checks code', async () => {
    const runtime = startProcessRuntime();
    expect(rawOf(await invoke(runtime, ECHO, { args: { n: 1 } }))).toEqual({ n: 1, doubled: 2 });
    // Calls made in one turn of the event loop cross in one message; each still gets its own answer.
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, n) => invoke(runtime, ECHO, { args: { n }, tenantId: 'tenant-a' })),
    );
    expect(outcomes.map((outcome) => (rawOf(outcome) as { doubled: number }).doubled)).toEqual(
      Array.from({ length: 50 }, (_, n) => n * 2),
    );
    const thrown = await invoke(runtime, 'module.exports = async () => { throw new Error("no funds"); };');
    expect(errorOf(thrown)).toMatchObject({ code: 'REACTOR_RUNTIME_ERROR', message: 'no funds' });
    expect(await runtime.checkCode('module.exports = 1;')).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await runtime.checkCode(ECHO)).toEqual({ ok: true });
    // The pool's figures come back with the answers, for the metrics endpoint.
    expect(runtime.stats()).toMatchObject({ threads: 2, queued: 0, stuckThreads: 0 });
  });

  it("starts the process with none of the gateway's environment, and first in line for the OOM killer", async () => {
    const runtime = startProcessRuntime();
    await invoke(runtime, ECHO, { args: { n: 1 } });
    const environ = (await readFile(`/proc/${runtime.pid}/environ`, 'utf8')).split('\0').filter(Boolean);
    // Only what Node itself sets up for the IPC channel.
    expect(environ.map((entry) => entry.split('=')[0]).sort()).toEqual([
      'NODE_CHANNEL_FD',
      'NODE_CHANNEL_SERIALIZATION_MODE',
    ]);
    // This test process has them (vitest's, the suite's), so the check above could fail.
    expect(Object.keys(process.env).length).toBeGreaterThan(5);
    // Out of memory, the kernel ends it before the gateway (which replaces it).
    expect((await readFile(`/proc/${runtime.pid}/oom_score_adj`, 'utf8')).trim()).toBe('500');
  });

  it('answers SERVICE_UNAVAILABLE for the runs of a process that died, and starts another', async () => {
    const runtime = startProcessRuntime();
    await invoke(runtime, ECHO, { args: { n: 1 } });
    const first = runtime.pid!;
    const looping = invoke(runtime, 'module.exports = async () => { while (true) {} };', { timeoutMs: 20_000 });
    const waiting = invoke(runtime, ECHO, { args: { n: 2 } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(first, 'SIGKILL');
    expect(errorOf(await looping)).toMatchObject({ code: 'SERVICE_UNAVAILABLE', status: 503 });
    // The other run was answered before the kill or failed with it; either way it did not hang.
    const other = await waiting;
    if (!other.ok) expect(other.error.code).toBe('SERVICE_UNAVAILABLE');
    await until('another runtime process', () => (runtime.pid !== undefined && runtime.pid !== first) || undefined);
    expect(rawOf(await invoke(runtime, ECHO, { args: { n: 3 } }))).toEqual({ n: 3, doubled: 6 });
    expect(JSON.stringify(logged)).toContain('formula runtime process ended');
  });

  it('waits before starting again a process that died before it was ready, and answers calls meanwhile', async () => {
    const runtime = startProcessRuntime();
    const ends = () => logged.filter((line) => JSON.stringify(line).includes('"wasReady":false')).length;
    const before = ends();
    // Killed at once, twice: as a process that cannot start (a broken install) would end, again and again.
    for (let round = 1; round <= 2; round++) {
      const pid = runtime.pid!;
      process.kill(pid, 'SIGKILL');
      await until('the failed start to be seen', () => (ends() === before + round ? true : undefined));
      // While it waits to start another, a call is answered at once rather than queued for nobody.
      expect(runtime.pid).toBeUndefined();
      expect(errorOf(await invoke(runtime, ECHO, { args: { n: 1 } }))).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      await until('another runtime process', () => (runtime.pid !== undefined && runtime.pid !== pid) || undefined);
    }
    // A start that got as far as ready resets the wait, and runs go through again.
    expect(rawOf(await invoke(runtime, ECHO, { args: { n: 4 } }))).toEqual({ n: 4, doubled: 8 });
  });

  it("outlives a Ctrl-C to the process group, and a killed gateway's runtime process ends with it", async () => {
    const runtime = startProcessRuntime();
    await invoke(runtime, ECHO, { args: { n: 1 } });
    const pid = runtime.pid!;
    // The gateway's graceful shutdown (SIGINT, SIGTERM) still needs it; it ends on close (below).
    process.kill(pid, 'SIGINT');
    process.kill(pid, 'SIGTERM');
    expect(rawOf(await invoke(runtime, ECHO, { args: { n: 2 } }))).toEqual({ n: 2, doubled: 4 });
    expect(runtime.pid).toBe(pid);
    // A gateway that dies without closing it (SIGKILL) leaves an IPC channel with nobody on the other end.
    const script = `
      import { createProcessRuntime } from './src/runtime/process-runtime.ts';
      const runtime = createProcessRuntime({ threads: 1, memoryLimitMb: 64 }, console);
      await runtime.checkCode('module.exports = async () => ({})');
      console.log(runtime.pid);
      setInterval(() => {}, 1000);`;
    const gateway = spawn(
      process.execPath,
      ['--no-node-snapshot', '--import', 'tsx', '--input-type=module', '-e', script],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const orphan = Number(
      await new Promise<string>((resolve) => gateway.stdout.once('data', (data) => resolve(String(data)))),
    );
    expect(isAlive(orphan)).toBe(true);
    gateway.kill('SIGKILL');
    await until('the orphaned runtime process to end', () => (isAlive(orphan) ? undefined : true));
  });

  it('ends quietly, with exit code 0, when its gateway goes while a run is still in flight', async () => {
    const launch = runtimeProcessLaunch();
    const child = fork(launch.entry, [JSON.stringify({ threads: 1, memoryLimitMb: 64 })], {
      execArgv: launch.execArgv,
      cwd: launch.cwd,
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr?.on('data', (data) => {
      stderr += String(data);
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) =>
      child.on('message', (message: FromRuntime) => message.t === 'ready' && resolve()),
    );
    // A loop its 2.5 s limit ends: the shutdown waits for it, and the pool's figures are due every second meanwhile,
    // with nobody left to send them to.
    const code = 'module.exports = async () => { for (;;) {} };';
    const calls: ToRuntime = {
      t: 'calls',
      calls: [
        [
          1,
          'run',
          {
            tenantId: 'tenant-gone',
            formulaId: 'loop',
            code,
            codeHash: createHash('sha256').update(code).digest('hex'),
            args: {},
            configuration: {},
            bt: null,
            timeoutMs: 2_500,
          },
        ],
      ],
    };
    child.send(calls);
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.disconnect();
    expect(await exited).toBe(0);
    expect(stderr).not.toContain('ERR_IPC_CHANNEL_CLOSED');
  });

  it('ends its process on close, and answers later calls SERVICE_UNAVAILABLE', async () => {
    const runtime = startProcessRuntime();
    await invoke(runtime, ECHO, { args: { n: 1 } });
    const pid = runtime.pid!;
    expect(isAlive(pid)).toBe(true);
    await runtime.close();
    expect(isAlive(pid)).toBe(false);
    expect(errorOf(await invoke(runtime, ECHO, { args: { n: 1 } }))).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(await runtime.checkCode(ECHO)).toMatchObject({ ok: false, reason: 'unavailable' });
  });
});

describe('a gateway with RUNTIME_ISOLATION=process', () => {
  it('detokenizes, runs the formula there, tokenizes its output, and serves its req.bt calls', async () => {
    const gateway = await startTestGateway({ env: { RUNTIME_ISOLATION: 'process', EGRESS_ALLOW: '127.0.0.1/32' } });
    try {
      const tenant = await gateway.createTenant();
      const formulaId = await createFormula(gateway, tenant.managementKey, {
        code: `module.exports = async (req) => ({
          raw: { last4: req.args.card.number.slice(-4), key: req.configuration.KEY },
          tokenize: { copy: req.args.card.number },
        });`,
        configuration: [{ name: 'KEY', type: 'STRING' }],
      });
      const reactorId = await createReactor(gateway, tenant.managementKey, {
        formulaId,
        configuration: { KEY: 'psp-key' },
      });
      const card = { number: '4242424242424242', expiration_month: 12, expiration_year: 2030 };
      const tokenId = await createToken(gateway, tenant.privateKey, { type: 'CARD', data: card });
      const result = await gateway.gql<any>(
        REACT,
        { id: reactorId, args: { card: `{{ ${tokenId} }}` } },
        tenant.privateKey,
      );
      expect(result.data?.react).toMatchObject({ raw: { last4: '4242', key: 'psp-key' } });
      // It ran in the runtime process, not in threads of the gateway's own.
      const pid = (gateway.app.services.runtime as ProcessRuntime).pid;
      expect(pid).toBeGreaterThan(0);
      expect(pid).not.toBe(process.pid);
      const copyId = result.data.react.tokens.copy;
      expect(typeof copyId === 'string' ? copyId : copyId?.id).toMatch(/^[0-9a-f-]{36}$/);
      const copy = await gateway.gql<any>(
        'query($id: UUID!) { token(id: $id) { data } }',
        { id: typeof copyId === 'string' ? copyId : copyId.id },
        tenant.privateKey,
      );
      expect(copy.data?.token.data).toBe(card.number);

      // req.bt: the runtime process reaches the gateway over HTTP, as any client does.
      const server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
      try {
        const viewer = await gateway.gql<any>('{ viewer { application { id } } }', {}, tenant.privateKey);
        const btReactor = await createReactorWithCode(
          gateway,
          tenant.managementKey,
          'module.exports = async (req) => ({ raw: (await req.bt.tokens.retrieve(req.args.id)).data });',
          { applicationId: viewer.data?.viewer.application.id },
        );
        const read = await gateway.gql<any>(REACT, { id: btReactor, args: { id: tokenId } }, tenant.privateKey);
        expect(read.data?.react.raw).toEqual(card);
      } finally {
        await server.close();
      }
    } finally {
      await gateway.close();
    }
  });
});
