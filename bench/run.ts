// `npm run bench [-- --quick] [-- --only <start of a figure's name>]`: starts the gateway (and whatever each figure needs)
// in child processes on 127.0.0.1, runs the figures in bench/figures/, prints a table and writes
// bench/results/latest.json. With BENCH_DATABASE_URL set, runs everything again on a fresh Postgres database.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { figures } from './figures/index.ts';
import type { BenchContext, Row } from './figures/types.ts';
import {
  type BenchDatabase,
  buildGateway,
  createBenchDatabase,
  type DatabaseKind,
  startGateway,
} from './lib/gateway.ts';
import type { ServerProcess } from './lib/processes.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1]?.toLowerCase() : undefined;
const settings = quick
  ? { durationSeconds: 1, rounds: 3, connections: 50 }
  : { durationSeconds: 10, rounds: 3, connections: 50 };

interface RunResult {
  database: DatabaseKind;
  rows: Row[];
  skipped: { figure: string; reason: string }[];
}

async function runOn(kind: DatabaseKind): Promise<RunResult> {
  const started: ServerProcess[] = [];
  let database: BenchDatabase | undefined;
  const result: RunResult = { database: kind, rows: [], skipped: [] };
  try {
    const selected = figures.filter((figure) => !only || figure.name.toLowerCase().startsWith(only));
    const track = (server: ServerProcess) => {
      started.push(server);
      return server;
    };
    log(`[${kind}] creating the database and seeding it; starting what the figures need`);
    const startedAt = Date.now();
    // Failures surface where a gateway is started.
    buildGateway().catch(() => {});
    const creating = createBenchDatabase(kind, process.env.BENCH_DATABASE_URL, async (gateway) => {
      for (const figure of selected) await figure.seed?.({ quick, log, gateway });
    });
    // Figures prepare while the database is created (Mercurius needs none) and the main gateway starts; each
    // awaits the database where it needs it. A failed prepare surfaces in that figure's run().
    const preparing = Promise.allSettled(
      selected.map((figure) => figure.prepare?.({ quick, database: creating, track, log })),
    );
    try {
      database = await creating;
    } catch (error) {
      // Nothing a prepare starts after this point would be stopped: wait for them first.
      await preparing;
      throw error;
    }
    log(`[${kind}] database ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    const [gateway] = await Promise.all([startGateway(database, { name: 'gateway' }).then(track), preparing]);
    log(`[${kind}] servers ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    const context: BenchContext = { quick, ...settings, database, gateway, track, log };
    for (const figure of selected) {
      const available = await figure.available(context);
      if (available !== true) {
        result.skipped.push({ figure: figure.name, reason: available || 'not available' });
        log(`[${kind}] skipped ${figure.name}: ${available || 'not available'}`);
        continue;
      }
      log(`[${kind}] ${figure.name}`);
      const figureStartedAt = Date.now();
      try {
        result.rows.push(...(await figure.run(context)));
        log(`[${kind}] ${figure.name}: ${((Date.now() - figureStartedAt) / 1000).toFixed(1)} s`);
      } catch (error) {
        // One broken figure (another engineer's feature mid-change) must not cost the others their numbers.
        const reason = error instanceof Error ? error.message : String(error);
        result.skipped.push({ figure: figure.name, reason: `failed: ${reason}` });
        log(`[${kind}] ${figure.name} failed: ${reason}`);
      }
    }
  } finally {
    // Stop everything started here, newest first, even after a failure.
    for (const server of started.reverse()) await server.stop().catch(() => {});
    await database?.drop().catch((error: unknown) => log(`could not drop the ${kind} database: ${String(error)}`));
  }
  return result;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function format(value: number, unit: string): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (unit === 'x') return value.toFixed(2);
  if (unit === 'req/s' || unit === '/s') return Math.round(value).toLocaleString('en-US');
  return value >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function printTable(result: RunResult): void {
  const lines = result.rows.map((row) => [
    row.figure,
    row.metric,
    `${format(row.value, row.unit)} ${row.unit}`.trim(),
    row.target ?? '',
    row.ok === undefined ? '' : row.ok ? 'ok' : 'MISSED',
    row.note ?? '',
  ]);
  const header = ['figure', 'metric', 'value', 'target', '', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)));
  const render = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(`\n${result.database}:`);
  console.log(render(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const line of lines) console.log(render(line));
  for (const skip of result.skipped) console.log(`skipped: ${skip.figure}: ${skip.reason}`);
}

const machine = {
  cores: os.availableParallelism(),
  cpu: os.cpus()[0]?.model ?? 'unknown',
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  loadAverage: os.loadavg().map((load) => Number(load.toFixed(2))),
};
log(
  `machine: ${machine.cores} cores, Node ${machine.node}, load ${machine.loadAverage.join(' ')}${quick ? ', quick' : ''}`,
);

const kinds: DatabaseKind[] = process.env.BENCH_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];
const results: RunResult[] = [];
for (const kind of kinds) results.push(await runOn(kind));
for (const result of results) printTable(result);

const output = path.resolve(import.meta.dirname, 'results', 'latest.json');
await mkdir(path.dirname(output), { recursive: true });
await writeFile(
  output,
  `${JSON.stringify({ date: new Date().toISOString(), quick, settings, machine, results }, null, 2)}\n`,
);
console.log(`\nwritten ${path.relative(process.cwd(), output)}`);
