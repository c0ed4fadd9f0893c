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
    const o = await rt.run({ tenantId: 't', formulaId: 'f', code, codeHash: 'h', args: {}, configuration: {}, bt: null, timeoutMs: 1000 });
    if (!o.ok) throw new Error(o.error.message);
  }
}));
await rt.close();
console.log('closed');
`;

describe('shutdown', () => {
  it('closes without aborting the process after isolates were recycled', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rg-shutdown-'));
    const file = join(dir, 'close-after-recycle.mts');
    writeFileSync(file, script);
    const child = spawnSync(process.execPath, ['--no-node-snapshot', '--import', 'tsx', file], {
      encoding: 'utf8',
      timeout: 90_000,
    });
    rmSync(dir, { recursive: true, force: true });
    expect(child.stderr).not.toMatch(/Assertion|terminate called/);
    if (child.status !== 0) console.error(child.stderr);
    expect(child.status).toBe(0);
    expect(child.stdout.trim()).toBe('closed');
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
