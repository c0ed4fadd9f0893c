import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { invoke, rawOf, startRuntime } from './helpers.ts';

const pool = fileURLToPath(new URL('../../src/runtime/pool.ts', import.meta.url));

// Recycling isolates after MAX_USES (10,000 calls) and then closing used to abort the process 6 times out of 6:
// isolated-vm handles still waiting for their weak callbacks when a worker was torn down.
const script = `
const { createFormulaRuntime } = await import(${JSON.stringify(pool)});
const rt = createFormulaRuntime({ threads: 2, memoryLimitMb: 64 });
const code = 'module.exports = async () => ({ raw: 1 })';
let sent = 0;
await Promise.all(Array.from({ length: 64 }, async () => {
  while (sent++ < 25000) {
    const o = await rt.run({ tenantId: 't', formulaId: 'f', code, codeHash: 'h', args: {}, configuration: {}, bt: null, timeoutMs: 10000 });
    if (!o.ok) throw new Error(o.error.message);
  }
}));
await rt.close();
console.log('closed');
`;

// Every way a formula's running code can be stopped by its timeout (or its memory limit), twenty times over in new
// isolates, then close. Isolates stopped this way were once only abandoned, because disposing one was thought to
// abort the process at worker exit; abandoned, each kept about 3 MB (RSS grew by about 400 MB over these 140
// calls). Now they are disposed: the RSS they leave behind is bounded, and closing still does not abort.
const afterTimeouts = `
const { createFormulaRuntime } = await import(${JSON.stringify(pool)});
const rt = createFormulaRuntime({ threads: 2, memoryLimitMb: 64 });
const stoppers = [
  'module.exports = async () => { for (;;) {} }',
  'module.exports = async () => { for (;;) await null }',
  'module.exports = async () => { await new Promise((r) => setTimeout(r, 1)); for (;;) {} }',
  'module.exports = async () => { await new Promise((r) => setTimeout(r, 5)); for (;;) await Promise.resolve() }',
  'module.exports = async () => { const a = []; for (;;) a.push({ x: Math.random() }) }',
  'module.exports = () => new Promise(() => {})',
  'module.exports = () => new Promise(() => { const again = () => setTimeout(again, 1); again() })',
];
const rssMb = () => process.memoryUsage().rss / 1048576;
let afterFirstRound = 0;
for (let round = 0; round < 20; round++) {
  await Promise.all(stoppers.map(async (code, n) => {
    const o = await rt.run({ tenantId: 't' + n, formulaId: 'f' + n, code: code + '//' + round, codeHash: n + '.' + round, args: {}, configuration: {}, bt: null, timeoutMs: 50 });
    if (o.ok || !['REACTOR_TIMEOUT', 'REACTOR_RUNTIME_ERROR'].includes(o.error.code)) throw new Error(JSON.stringify(o));
  }));
  if (round === 0) afterFirstRound = rssMb();
}
const ok = await rt.run({ tenantId: 't', formulaId: 'ok', code: 'module.exports = async () => ({ raw: 1 })', codeHash: 'ok', args: {}, configuration: {}, bt: null, timeoutMs: 1000 });
if (!ok.ok) throw new Error(ok.error.message);
const grownMb = Math.round(rssMb() - afterFirstRound);
await rt.close();
console.log(JSON.stringify({ closed: true, grownMb }));
`;

// Nothing but the runs keeps this process alive: a formula awaiting its own timer (piscina has unref'd the worker
// once the task returned; the answer comes later on the answer channel), and a run held in the tenant gate behind
// its tenant's stuck loop (no worker at all). Both once ended the script with exit code 13 before they answered.
const awaitedRuns = `
const { createFormulaRuntime } = await import(${JSON.stringify(pool)});
const rt = createFormulaRuntime({ threads: 1, memoryLimitMb: 64 });
const base = { tenantId: 't', configuration: {}, bt: null, args: {} };
const slow = 'module.exports = async () => { await new Promise((r) => setTimeout(r, 300)); return { raw: "slow" } }';
const slowAnswer = await rt.run({ ...base, formulaId: 'slow', code: slow, codeHash: 's', timeoutMs: 5000 });
const loop = rt.run({ ...base, formulaId: 'loop', code: 'module.exports = async () => { for (;;) {} }', codeHash: 'l', timeoutMs: 1000 });
await new Promise((r) => setTimeout(r, 300));
const quick = 'module.exports = async () => ({ raw: "held" })';
const heldAnswer = await rt.run({ ...base, formulaId: 'quick', code: quick, codeHash: 'q', timeoutMs: 5000 });
const loopAnswer = await loop;
console.log(JSON.stringify([slowAnswer.raw, heldAnswer.raw, loopAnswer.ok || loopAnswer.error.code]));
await rt.close();
`;

function runChild(name: string, source: string) {
  const dir = mkdtempSync(join(tmpdir(), 'rg-shutdown-'));
  const file = join(dir, name);
  writeFileSync(file, source);
  const child = spawnSync(process.execPath, ['--no-node-snapshot', '--import', 'tsx', file], {
    encoding: 'utf8',
    timeout: 90_000,
  });
  rmSync(dir, { recursive: true, force: true });
  expect(child.stderr).not.toMatch(/Assertion|terminate called/);
  if (child.status !== 0) console.error(child.stderr);
  expect(child.status).toBe(0);
  return child.stdout.trim();
}

describe('shutdown', () => {
  it('closes without aborting the process after isolates were recycled', () => {
    expect(runChild('close-after-recycle.mts', script)).toBe('closed');
  }, 100_000);

  it('disposes isolates stopped by their timeouts, and closes without aborting the process after them', () => {
    const answer = JSON.parse(runChild('close-after-timeouts.mts', afterTimeouts)) as { grownMb: number };
    // After the first round: disposed, they left 3-10 MB here; abandoned, 401-411 MB.
    expect(answer.grownMb).toBeLessThan(200);
  }, 100_000);

  it('keeps a process that awaits runs alive until they answer, in flight or held in the tenant gate', () => {
    expect(JSON.parse(runChild('awaited-runs.mts', awaitedRuns))).toEqual(['slow', 'held', 'REACTOR_TIMEOUT']);
  }, 100_000);

  it('closing a runtime leaves no gc global in the isolates of another one', async () => {
    const first = startRuntime({ threads: 1 });
    const other = startRuntime({ threads: 1 });
    const code = 'module.exports = async () => ({ raw: typeof globalThis.gc })';
    expect(rawOf(await invoke(first, code))).toBe('undefined');
    await first.close();
    expect(rawOf(await invoke(other, code))).toBe('undefined');
    await other.close();
  });
});
