import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const MB = 2 ** 20;

/**
 * A process started as `npm start` starts the gateway (`--max-semi-space-size=32`), with or without importing
 * src/young-generation.ts first; it churns short-lived objects on its main thread and in a formula-sized isolate
 * (128 MB, the default RUNTIME_MEMORY_LIMIT_MB) and reports how large each young generation grew.
 */
function youngGenerations(reset: boolean): { mainNewSpace: number; isolateHeap: number } {
  const script = `
    ${reset ? "await import('./src/young-generation.ts');" : ''}
    const v8 = await import('node:v8');
    const ivm = (await import('isolated-vm')).default;
    const churn = 'let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ a: i, b: [i] }); if (keep.length > 50000) keep = []; }';
    new Function(churn)();
    const isolate = new ivm.Isolate({ memoryLimit: 128 });
    isolate.compileScriptSync(churn).runSync(isolate.createContextSync());
    const newSpace = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
    console.log(JSON.stringify({ mainNewSpace: newSpace.space_size, isolateHeap: isolate.getHeapStatisticsSync().total_heap_size }));
  `;
  const child = spawnSync(
    process.execPath,
    ['--no-node-snapshot', '--max-semi-space-size=32', '--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: root, encoding: 'utf8', timeout: 60_000 },
  );
  if (child.status !== 0) throw new Error(child.stderr);
  return JSON.parse(child.stdout);
}

describe('the main thread young generation (src/young-generation.ts)', () => {
  it('keeps the size the command line gives the main thread, and gives formula isolates their own limits back', () => {
    // V8 grows the new space by heuristics that also look at allocation throughput over time; on a loaded machine
    // one run in about fifty stayed at 32 MB, so up to three runs. None goes past 32 MB if the flag was reset.
    let withReset = youngGenerations(true);
    for (let run = 2; run <= 3 && withReset.mainNewSpace <= 32 * MB; run++) withReset = youngGenerations(true);
    // Node's default new space is 32 MB (two 16 MB semi-spaces); the command line asked for two of 32.
    expect(withReset.mainNewSpace).toBeGreaterThan(32 * MB);
    // isolated-vm sizes a 128 MB isolate's young generation at 2 MB: its whole heap stays small.
    expect(withReset.isolateHeap).toBeLessThan(24 * MB);
  }, 90_000);

  it('is needed: without it the flag overrides the isolate limits and a formula isolate grows a huge nursery', () => {
    const withoutReset = youngGenerations(false);
    expect(withoutReset.isolateHeap).toBeGreaterThan(40 * MB);
  }, 90_000);
});
