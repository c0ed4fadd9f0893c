import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BenchContext, type Figure, type Row } from './types.ts';

/**
 * Pool + isolate overhead against in-process, measured by bench/runtime-overhead.ts (the runtime engineer's, run
 * here as it is). Its result shape is theirs; this adapter turns rows or a flat object of numbers into table rows
 * and marks the targets it recognises (p50 overhead < 100 µs, compile < 5 ms).
 */
const SCRIPT = path.resolve(import.meta.dirname, '..', 'runtime-overhead.ts');

type Measured = Record<string, unknown>;

export const runtimeOverhead: Figure = {
  name: 'runtime overhead (pool + isolate)',
  available: async () => existsSync(SCRIPT) || 'bench/runtime-overhead.ts does not exist yet',
  async run(context: BenchContext): Promise<Row[]> {
    const module = (await import(pathToFileURL(SCRIPT).href)) as {
      benchRuntimeOverhead?: (options: { quick: boolean }) => Promise<unknown>;
    };
    if (typeof module.benchRuntimeOverhead !== 'function') {
      return [{ figure: 'runtime overhead', metric: 'benchRuntimeOverhead is not exported', value: Number.NaN, unit: '' }];
    }
    return toRows(await module.benchRuntimeOverhead({ quick: context.quick }));
  },
};

function toRows(measured: unknown): Row[] {
  const figure = 'runtime overhead';
  if (Array.isArray(measured)) return measured.flatMap((item) => toRows(item));
  if (measured === null || typeof measured !== 'object') return [];
  const record = measured as Measured;
  if (typeof record.metric === 'string' && typeof record.value === 'number') {
    return [withTarget({ figure, unit: String(record.unit ?? ''), ...record } as Row)];
  }
  const rows: Row[] = [];
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
  if (/per.?s(ec)?$|rps|ops/i.test(key)) return '/s';
  return '';
}

/** Targets from the brief, recognised by metric name so the adapter survives renames of anything else. */
function withTarget(row: Row): Row {
  const name = row.metric.toLowerCase();
  if (row.target !== undefined || !Number.isFinite(row.value)) return row;
  const micros = row.unit === 'ms' ? row.value * 1000 : row.unit === 'µs' || row.unit === 'us' ? row.value : Number.NaN;
  if (name.includes('compile') && Number.isFinite(micros)) return { ...row, target: '< 5 ms', ok: micros < 5000 };
  if (name.includes('overhead') && name.includes('p50') && Number.isFinite(micros)) {
    return { ...row, target: '< 100 µs', ok: micros < 100 };
  }
  return row;
}
