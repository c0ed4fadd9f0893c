import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FormulaRuntime } from '../../src/runtime/types.ts';
import { build, compiledService, exitOf, gatewayEnv, listeningUrl, postGraphQL, ROOT } from '../support/compiled.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';
import { ADMIN_KEY, TEST_ENCRYPTION_KEY } from '../support/gateway.ts';
import { isAlive } from '../support/processes.ts';
import { until } from '../support/until.ts';

const run = promisify(execFile);

/** `npm start` runs what scripts/build.mjs compiles into dist/: plain Node, no tsx. Built here into a directory of its own. */
describe('the compiled service (npm start)', () => {
  const service = compiledService();
  const serveCompiled = service.serve;

  it('prints the committed schema', async () => {
    const { stdout } = await run(process.execPath, [
      '--no-node-snapshot',
      path.join(service.dir, 'src/main.js'),
      'print-schema',
    ]);
    expect(stdout).toBe(await readFile(path.join(ROOT, 'schema.graphql'), 'utf8'));
  });

  it('lists its commands on --help, and refuses an unknown one with exit code 2', async () => {
    const main = path.join(service.dir, 'src/main.js');
    const { stdout } = await run(process.execPath, ['--no-node-snapshot', main, '--help']);
    for (const command of [
      'serve',
      'migrate',
      'print-schema',
      'rotate-encryption-key',
      'copy-to-postgres',
      'create-management-key',
    ])
      expect(stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    const refused = await run(process.execPath, ['--no-node-snapshot', main, 'sever']).catch((error) => error);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^unknown command: sever\nusage:/);
  });

  it('names the database it could not reach, without its password, and what to check', async () => {
    const port = await closedPort();
    const refused = await run(
      process.execPath,
      ['--no-node-snapshot', path.join(service.dir, 'src/main.js'), 'migrate'],
      {
        // No wait for a database that is not there yet (DATABASE_START_TIMEOUT_MS): the error at once.
        env: {
          ...process.env,
          DATABASE_URL: `postgres://gateway:s3cret@127.0.0.1:${port}/reactors`,
          DATABASE_START_TIMEOUT_MS: '0',
        },
      },
    ).catch((error) => error);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `Could not connect to the database at postgres://gateway:***@127.0.0.1:${port}/reactors (DATABASE_URL): ` +
        `connect ECONNREFUSED 127.0.0.1:${port}.`,
    );
    expect(refused.stderr).not.toContain('s3cret');
  });

  it('rebuilds only what changed, and removes what no longer has a source', async () => {
    const stale = path.join(service.dir, 'migrations/0000_removed.js');
    await writeFile(stale, 'export async function up() { throw new Error("a removed migration ran"); }\n');
    const config = path.join(service.dir, 'src/config.js');
    await utimes(config, new Date(0), new Date(0));
    const { stderr } = await build(service.dir);
    expect(stderr).toMatch(/build: 1 of \d+ files written, 1 removed/);
    expect(existsSync(stale)).toBe(false);
    expect((await build(service.dir)).stderr).toBe('');
  });

  describe('serve', () => {
    let database: TestDatabase | undefined;
    let dataDir: string;
    let child: ChildProcess | undefined;
    let url: string;
    const output: string[] = [];

    beforeAll(async () => {
      dataDir = await mkdtemp(path.join(tmpdir(), 'rg-build-test-'));
      database = usingPostgres ? await createTestDatabase() : undefined;
      child = serveCompiled({
        ...process.env,
        // A fresh database: PGlite in a new directory, or a Postgres database of this file's own.
        DATA_DIR: dataDir,
        // Empty: none inherited from the environment (the config reads an empty value as unset).
        DATABASE_URL: database?.url ?? '',
        PORT: '0',
        HOST: '127.0.0.1',
        ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
        ADMIN_API_KEY: ADMIN_KEY,
        RUNTIME_THREADS: '1',
        LOG_LEVEL: 'info',
        NODE_ENV: 'development',
      });
      url = await listeningUrl(child, output);
    }, 60_000);
    afterAll(async () => {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child!.once('exit', resolve));
      }
      await database?.drop();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('migrates a new database from dist/migrations and runs a formula in a sandbox thread of dist/', async () => {
      const gql = (query: string, variables: Record<string, unknown>, key: string) =>
        postGraphQL(url, query, variables, key);
      const tenant = await gql(
        'mutation { createTenant(input: { name: "Built" }) { ... on CreateTenantPayload { managementKey privateKey } } }',
        {},
        ADMIN_KEY,
      );
      const { managementKey, privateKey } = tenant.data?.createTenant ?? {};
      expect(managementKey).toEqual(expect.any(String));
      // The compile check of createReactorFormula and the run both need worker.js and the prelude's files.
      const code = `module.exports = async function (req) {
        console.log('from dist');
        return { raw: { doubled: req.args.n * 2, id: crypto.randomUUID().length } };
      };`;
      const formula = await gql(
        `mutation ($code: String!) { createReactorFormula(input: { name: "f", type: PRIVATE, code: $code }) {
          __typename ... on ReactorFormula { id } } }`,
        { code },
        managementKey,
      );
      const formulaId = formula.data?.createReactorFormula.id;
      expect(formula.data?.createReactorFormula.__typename).toBe('ReactorFormula');
      const reactor = await gql(
        `mutation ($formulaId: UUID!) { createReactor(input: { name: "r", formulaId: $formulaId }) { ... on Reactor { id } } }`,
        { formulaId },
        managementKey,
      );
      const result = await gql(
        `mutation ($id: UUID!) { react(id: $id, args: { n: 21 }) {
          __typename ... on ReactorResponse { raw logs { level message } } ... on Error { code message } } }`,
        { id: reactor.data?.createReactor.id },
        privateKey,
      );
      expect(result.data?.react).toEqual({
        __typename: 'ReactorResponse',
        raw: { doubled: 42, id: 36 },
        logs: [{ level: 'log', message: 'from dist' }],
      });
    });
  });

  describe('the runtime process, compiled (RUNTIME_ISOLATION=process)', () => {
    type Launch = { entry: string; execArgv: string[]; cwd: string };
    let compiled: {
      runtimeProcessLaunch(): Launch;
      createProcessRuntime(options: object, log: object): FormulaRuntime & { pid: number | undefined };
    };
    beforeAll(async () => {
      compiled = await import(path.join(service.dir, 'src/runtime/process-runtime.js'));
    });

    it('runs under the permission model, and a formula still runs there', async () => {
      // fetch too: the permission model leaves the network alone, and the formula's egress policy still applies.
      const server = http.createServer((_, response) => response.end('{"answer":42}'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const runtime = compiled.createProcessRuntime(
        { threads: 1, memoryLimitMb: 64, egressAllow: ['127.0.0.1/32'] },
        { warn() {}, error() {} },
      );
      try {
        const code = `module.exports = async (req) => {
          const fetched = await (await fetch(${JSON.stringify(serverUrl)})).json();
          return { raw: { doubled: req.args.n * 2, id: crypto.randomUUID().length, fetched } };
        };`;
        const outcome = await runtime.run({
          tenantId: 't',
          formulaId: 'f',
          code,
          codeHash: 'h',
          args: { n: 21 },
          configuration: {},
          bt: null,
          timeoutMs: 10_000,
        });
        expect(outcome).toMatchObject({ ok: true, raw: { doubled: 42, id: 36, fetched: { answer: 42 } } });
        const commandLine = (await readFile(`/proc/${runtime.pid}/cmdline`, 'utf8')).split('\0');
        expect(commandLine).toContain('--experimental-permission');
        expect(commandLine).toContain(path.join(service.dir, 'src/runtime/runtime-process.js'));
      } finally {
        await runtime.close();
        server.close();
      }
    });

    it('denies what code out of an isolate would want: files, the environment, processes', async () => {
      const launch = compiled.runtimeProcessLaunch();
      const secrets = await mkdtemp(path.join(tmpdir(), 'rg-secrets-'));
      const keyFile = path.join(secrets, 'encryption.key');
      await writeFile(keyFile, TEST_ENCRYPTION_KEY);
      // Node's flags for the runtime process, with a probe in place of its entry file.
      const probe = `
        const fs = require('node:fs');
        const attempt = (what) => { try { what(); return 'allowed'; } catch (error) { return error.code ?? String(error); } };
        console.log(JSON.stringify({
          keyFile: attempt(() => fs.readFileSync(${JSON.stringify(keyFile)})),
          environ: attempt(() => fs.readFileSync('/proc/self/environ')),
          passwd: attempt(() => fs.readFileSync('/etc/passwd')),
          write: attempt(() => fs.writeFileSync(${JSON.stringify(path.join(secrets, 'written'))}, 'x')),
          spawn: attempt(() => require('node:child_process').execFileSync('/bin/true')),
          ownCode: attempt(() => fs.readFileSync(${JSON.stringify(launch.entry)})),
          isolatedVm: attempt(() => require('isolated-vm')),
          otherPackage: attempt(() => require('pg')),
        }));`;
      try {
        const { stdout } = await run(process.execPath, [...launch.execArgv, '-e', probe], { cwd: launch.cwd, env: {} });
        expect(JSON.parse(stdout)).toEqual({
          keyFile: 'ERR_ACCESS_DENIED',
          environ: 'ERR_ACCESS_DENIED',
          passwd: 'ERR_ACCESS_DENIED',
          write: 'ERR_ACCESS_DENIED',
          spawn: 'ERR_ACCESS_DENIED',
          ownCode: 'allowed',
          isolatedVm: 'allowed',
          otherPackage: 'ERR_ACCESS_DENIED',
        });
        expect(existsSync(path.join(secrets, 'written'))).toBe(false);
      } finally {
        await rm(secrets, { recursive: true, force: true });
      }
    });
  });

  it('a SIGTERM during the start (creating the database) shuts down gracefully and unlocks the directory', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'rg-early-stop-'));
    const child = serveCompiled(gatewayEnv(dataDir));
    const output = outputOf(child);
    try {
      // A new embedded database takes seconds to create; the signal comes in the middle of it (its lock is taken).
      await until('the database to be opening', () =>
        existsSync(path.join(dataDir, 'pgdata.lock')) ? true : undefined,
      );
      expect(output.join('')).not.toContain('listening');
      child.kill('SIGTERM');
      expect(await exitOf(child)).toEqual({ code: 0, signal: null });
      expect(output.join('')).toContain('"msg":"stopped"');
      expect(existsSync(path.join(dataDir, 'pgdata.lock'))).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a SIGTERM while the start waits for Postgres ends the wait, and the gateway exits 0', async () => {
    const port = await closedPort();
    const child = serveCompiled({
      ...gatewayEnv('/nonexistent'),
      DATABASE_URL: `postgres://gateway@127.0.0.1:${port}/reactors`,
      // Longer than the shutdown's own limit (SHUTDOWN_TIMEOUT_MS): only an ended wait exits 0.
      DATABASE_START_TIMEOUT_MS: '60000',
    });
    const output = outputOf(child);
    try {
      await until('the start to wait for the database', () =>
        output.join('').includes('waiting for the database to accept connections') ? true : undefined,
      );
      child.kill('SIGTERM');
      expect(await exitOf(child)).toEqual({ code: 0, signal: null });
      expect(output.join('')).toContain('"msg":"stopped"');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('a first start that cannot listen creates no tenant: the next start prints the keys', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'rg-first-start-'));
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const busyPort = (taken.address() as net.AddressInfo).port;
    const serve = (port: number) => serveCompiled(gatewayEnv(dataDir, port));
    try {
      const failed = serve(busyPort);
      const failedOutput = outputOf(failed);
      expect(await new Promise((resolve) => failed.once('exit', resolve))).toBe(1);
      expect(failedOutput.join('')).toContain(`Port ${busyPort} on 127.0.0.1 is already in use`);
      expect(failedOutput.join('')).not.toContain('API key');

      const started = serve(0);
      const output: string[] = [];
      try {
        await listeningUrl(started, output);
        await until('the keys', () => (output.join('').includes('PRIVATE API key:') ? true : undefined), 10_000);
        expect(output.join('')).toContain('MANAGEMENT API key:');
      } finally {
        started.kill('SIGTERM');
        await new Promise((resolve) => started.once('exit', resolve));
      }
    } finally {
      taken.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('an embedded gateway killed with SIGKILL loses no token it acknowledged: the next start reads them all', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'rg-killed-'));
    const serve = () => serveCompiled(gatewayEnv(dataDir));
    const started: ChildProcess[] = [];
    try {
      const first = serve();
      started.push(first);
      const output: string[] = [];
      const url = await listeningUrl(first, output);
      const key = await until('the keys', () => /PRIVATE API key:\s+(key_\S+)/.exec(output.join(''))?.[1], 10_000);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const created = await postGraphQL(
          url,
          'mutation ($input: CreateTokenInput!) { createToken(input: $input) { ... on Token { id } } }',
          { input: { type: 'TOKEN', data: `secret ${i}` } },
          key,
        );
        ids.push(created.data?.createToken.id);
      }
      // No shutdown at all: the process ends between one acknowledged write and the next request.
      first.kill('SIGKILL');
      await new Promise((resolve) => first.once('exit', resolve));
      expect(existsSync(path.join(dataDir, 'pgdata.lock'))).toBe(true);

      // The next start takes the dead process's lock over, and the embedded database recovers.
      const second = serve();
      started.push(second);
      const again = await listeningUrl(second, []);
      const read = await Promise.all(
        ids.map((id) => postGraphQL(again, 'query ($id: UUID!) { token(id: $id) { data } }', { id }, key)),
      );
      expect(read.map((answer) => answer.data?.token?.data)).toEqual(ids.map((_id, i) => `secret ${i}`));
    } finally {
      for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  // A container runtime or a process manager stops `npm start` by signalling npm. npm passes the signal to the
  // shell running the start script; a shell that keeps running the gateway as its own child would die without
  // passing it on, and leave the gateway running without a parent. The start script execs Node, so the gateway
  // itself gets the signal and shuts down.
  it.each([
    ['a SIGTERM sent to npm', 'npm'],
    ['Ctrl-C (a SIGINT to npm and the gateway, which npm passes on: twice)', 'group'],
  ] as const)(
    'npm start: %s reaches the gateway, which shuts down and exits',
    async (_name, target) => {
      const launcher = await mkdtemp(path.join(ROOT, '.npm-start-test-'));
      const dataDir = await mkdtemp(path.join(tmpdir(), 'rg-npm-start-'));
      const { scripts } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
      // The start script as package.json has it, without its prestart (the build is `out`, reached as dist/).
      await writeFile(
        path.join(launcher, 'package.json'),
        JSON.stringify({ name: 'npm-start-test', private: true, scripts: { start: scripts.start } }),
      );
      await symlink(service.dir, path.join(launcher, 'dist'));
      const output: string[] = [];
      const npm = spawn('npm', ['start', '--silent'], {
        cwd: launcher,
        env: gatewayEnv(dataDir),
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group, as a terminal's foreground job has, for the Ctrl-C case.
        detached: true,
      });
      let descendants: number[] = [];
      try {
        await listeningUrl(npm, output);
        descendants = await descendantsOf(npm.pid!);
        expect(descendants.length).toBeGreaterThan(0);
        if (target === 'npm') npm.kill('SIGTERM');
        else process.kill(-npm.pid!, 'SIGINT');
        await new Promise((resolve) => npm.once('exit', resolve));
        await until('the gateway to exit', () => (descendants.some(isAlive) ? undefined : true), 10_000);
        expect(output.join('')).toContain('"msg":"stopped"');
      } finally {
        for (const pid of descendants.filter(isAlive)) process.kill(pid, 'SIGKILL');
        if (npm.exitCode === null) npm.kill('SIGKILL');
        await rm(launcher, { recursive: true, force: true });
        await rm(dataDir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Everything a child process writes to stdout and stderr, as it comes. */
function outputOf(child: ChildProcess): string[] {
  const output: string[] = [];
  child.stdout!.on('data', (chunk) => output.push(String(chunk)));
  child.stderr!.on('data', (chunk) => output.push(String(chunk)));
  return output;
}

/** Every process below `pid` (Linux: from /proc), children first. */
async function descendantsOf(pid: number): Promise<number[]> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(' ').filter(Boolean).map(Number);
  const below = await Promise.all(children.map(descendantsOf));
  return [...children, ...below.flat()];
}
