import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { BenchContext, Figure, Row } from './types.ts';

/**
 * Pool + isolate overhead against in-process, measured by bench/runtime-overhead.ts (the runtime engineer's, run
 * as it is; it exports `benchRuntimeOverhead({ quick })` and prints that result as JSON when run as a script).
 * Its result shape is theirs; this adapter turns rows or a flat object of numbers into table rows and marks the
 * targets it recognises (p50 overhead < 100 µs, compile < 5 ms).
 */
const SCRIPT = path.resolve(import.meta.dirname, '..', 'runtime-overhead.ts');

type Measured = Record<string, unknown>;

export const runtimeOverhead: Figure = {
  name: 'runtime overhead (pool + isolate)',
  available: async () => existsSync(SCRIPT) || 'bench/runtime-overhead.ts does not exist yet',
  async run(context: BenchContext): Promise<Row[]> {
    // In a child process: it loads isolated-vm, whose native assertions abort the whole process when they fire
    // (seen once here), and a figure must not take the harness and its servers down with it.
    const output = await runScript(context.quick);
    const json = output.slice(output.indexOf('{'));
    const measured = JSON.parse(json) as Record<string, unknown>;
    delete measured.cores;
    delete measured.node;
    delete measured.quick;
    return toRows(measured);
  },
};

/** `node --no-node-snapshot --import tsx bench/runtime-overhead.ts [--quick]`: the script prints its result as JSON. */
function runScript(quick: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const args = ['--no-node-snapshot', '--import', 'tsx', SCRIPT, ...(quick ? ['--quick'] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    const timeout = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timeout);
      if (code === 0) resolve(stdout);
      else reject(new Error(`bench/runtime-overhead.ts exited ${signal ?? code}: ${stderr.trim().split('\n').pop()}`));
    });
  });
}

function toRows(measured: unknown): Row[] {
  const figure = 'runtime overhead';
  if (Array.isArray(measured)) return measured.flatMap((item) => toRows(item));
  if (measured === null || typeof measured !== 'object') return [];
  const record = measured as Measured;
  if (typeof record.metric === 'string' && typeof record.value === 'number') {
    return [withTarget({ figure, unit: String(record.unit ?? ''), ...record } as Row)];
  }
  const rows: Row[] = [];
  // The pool's own cost: a call through pool + isolate minus the same call in-process (target < 100 µs p50).
  if (typeof record.poolP50Us === 'number' && typeof record.inProcessP50Us === 'number') {
    const overhead = record.poolP50Us - record.inProcessP50Us;
    rows.push({
      figure,
      metric: 'overhead p50 (pool - in-process)',
      value: overhead,
      unit: 'µs',
      target: '< 100 µs',
      ok: overhead < 100,
    });
  }
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === 'number') rows.push(withTarget({ figure, metric: key, value, unit: unitOf(key) }));
    else if (value && typeof value === 'object') {
      for (const row of toRows(value)) rows.push({ ...row, metric: `${key} ${row.metric}` });
    }
  }
  return rows;
}

function unitOf(key: string): string {
  if (/us$|micros/i.test(key)) return 'µs';
  if (/ms$/i.test(key)) return 'ms';
  if (/per.?s(ec(ond)?)?$|rps|ops/i.test(key)) return '/s';
  return '';
}

/** Targets from the brief, recognised by metric name so the adapter survives renames of anything else. */
function withTarget(row: Row): Row {
  const name = row.metric.toLowerCase();
  if (row.target !== undefined || !Number.isFinite(row.value)) return row;
  const micros = row.unit === 'ms' ? row.value * 1000 : row.unit === 'µs' || row.unit === 'us' ? row.value : Number.NaN;
  if (name.includes('compile') && Number.isFinite(micros)) return { ...row, target: '< 5 ms', ok: micros < 5000 };
  return row;
}
