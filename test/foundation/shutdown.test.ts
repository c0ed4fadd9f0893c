import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compiledService, exitOf, gatewayEnv, listeningUrl, postGraphQL } from '../support/compiled.ts';
import { until } from '../support/until.ts';

/** What a SIGTERM does to the compiled service (`npm start`): requests in flight, async jobs, idle connections. */
describe('a SIGTERM to the compiled service', () => {
  const service = compiledService();
  const serveCompiled = service.serve;

  /** A gateway with a tenant and one reactor whose formula waits `args.ms` and returns 'done'. */
  async function gatewayWithWaitingReactor(child: ChildProcess) {
    const output: string[] = [];
    const url = await listeningUrl(child, output);
    const keyOf = (kind: string) =>
      until('the keys', () => new RegExp(`${kind} API key:\\s+(key_\\S+)`).exec(output.join(''))?.[1], 10_000);
    const [management, privateKey] = [await keyOf('MANAGEMENT'), await keyOf('PRIVATE')];
    const formula = await postGraphQL(
      url,
      `mutation ($input: CreateReactorFormulaInput!) { createReactorFormula(input: $input) { ... on ReactorFormula { id } } }`,
      {
        input: {
          name: 'waits',
          type: 'PRIVATE',
          configuration: [],
          requestParameters: [],
          code: "module.exports = async (req) => { await new Promise((r) => setTimeout(r, req.args.ms)); return { raw: 'done' }; };",
        },
      },
      management,
    );
    const reactor = await postGraphQL(
      url,
      'mutation ($input: CreateReactorInput!) { createReactor(input: $input) { ... on Reactor { id } } }',
      { input: { name: 'waits', formulaId: formula.data?.createReactorFormula.id, configuration: {} } },
      management,
    );
    return { url, output, privateKey, reactorId: reactor.data?.createReactor.id as string };
  }

  const react = (at: string, key: string, reactorId: string, ms: number) =>
    postGraphQL(
      at,
      'mutation ($id: UUID!, $args: JSON) { react(id: $id, args: $args) { ... on ReactorResponse { raw } } }',
      { id: reactorId, args: { ms } },
      key,
    );

  it('answers a react in flight before exiting, and exits 1 once SHUTDOWN_TIMEOUT_MS is over', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'rg-drain-'));
    const started: ChildProcess[] = [];
    try {
      const first = serveCompiled(gatewayEnv(dataDir));
      started.push(first);
      const { url, privateKey, reactorId } = await gatewayWithWaitingReactor(first);

      // Within the limit: the run in flight (well begun a second later) is answered, then the gateway stops.
      const answered = react(url, privateKey, reactorId, 3_000);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      first.kill('SIGTERM');
      expect((await answered).data?.react.raw).toBe('done');
      expect(await exitOf(first)).toEqual({ code: 0, signal: null });

      // Past it: the gateway exits anyway, and says why.
      const second = serveCompiled({ ...gatewayEnv(dataDir), SHUTDOWN_TIMEOUT_MS: '500' });
      started.push(second);
      const secondOutput: string[] = [];
      const again = await listeningUrl(second, secondOutput);
      const cut = react(again, privateKey, reactorId, 10_000).catch((error: unknown) => error);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      second.kill('SIGTERM');
      expect(await exitOf(second)).toEqual({ code: 1, signal: null });
      expect(secondOutput.join('')).toContain('shutdown took over SHUTDOWN_TIMEOUT_MS');
      expect(await cut).toBeInstanceOf(Error);
    } finally {
      for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('stops claiming async requests at once: one still queued runs after the next start, not cut off', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'rg-claims-'));
    const started: ChildProcess[] = [];
    // One job at a time, so that the second request waits in the queue behind the first.
    const env = { ...gatewayEnv(dataDir), JOB_CONCURRENCY: '1', JOB_RESERVED_SLOTS: '0', SHUTDOWN_TIMEOUT_MS: '6000' };
    const queueAsync = (at: string, key: string, reactorId: string, ms: number) =>
      postGraphQL(
        at,
        'mutation ($id: UUID!, $args: JSON) { reactAsync(id: $id, args: $args) { ... on AsyncReactorRequest { asyncReactorRequestId } } }',
        { id: reactorId, args: { ms } },
        key,
      ).then((answer) => answer.data?.reactAsync.asyncReactorRequestId as string);
    try {
      const first = serveCompiled(env);
      started.push(first);
      const { url, privateKey, reactorId } = await gatewayWithWaitingReactor(first);
      await queueAsync(url, privateKey, reactorId, 1_500);
      const queued = await queueAsync(url, privateKey, reactorId, 8_000);
      // A react in flight keeps the HTTP side draining past the first job's end, when the runner would have claimed
      // the queued one, and run it into the shutdown's limit.
      const answered = react(url, privateKey, reactorId, 4_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      first.kill('SIGTERM');
      expect((await answered).data?.react.raw).toBe('done');
      expect(await exitOf(first)).toEqual({ code: 0, signal: null });

      const second = serveCompiled(env);
      started.push(second);
      const again = await listeningUrl(second, []);
      const result = await until(
        'the queued request to finish',
        async () => {
          const read = await postGraphQL(
            again,
            'query ($r: UUID!, $q: UUID!) { reactorResult(reactorId: $r, requestId: $q) { status raw error { code } } }',
            { r: reactorId, q: queued },
            privateKey,
          );
          const row = read.data?.reactorResult;
          return row?.status === 'COMPLETED' || row?.status === 'FAILED' ? row : undefined;
        },
        30_000,
      );
      expect(result).toEqual({ status: 'COMPLETED', raw: 'done', error: null });
    } finally {
      for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
