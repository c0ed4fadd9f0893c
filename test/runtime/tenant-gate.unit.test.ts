import { describe, expect, it } from 'vitest';
import { type HeldRun, TenantGate } from '../../src/runtime/tenant-gate.ts';

function heldRun(name: string, deadline: number, log: string[]): HeldRun {
  return { deadline, send: () => log.push(`sent ${name}`), expire: () => log.push(`expired ${name}`) };
}

describe('tenant gate', () => {
  it('holds the runs of a tenant with `limit` stuck calls only, and sends them in order as its calls end', () => {
    const gate = new TenantGate(2);
    const log: string[] = [];
    expect(gate.holds('a')).toBe(false);
    gate.refresh(['a', 'b']);
    expect(gate.holds('a')).toBe(false);
    gate.refresh(['a', 'a', 'b']);
    expect([gate.holds('a'), gate.holds('b')]).toEqual([true, false]);
    for (const name of ['1', '2', '3']) gate.hold('a', heldRun(name, 1_000, log));
    expect(gate.holding).toBe(true);

    gate.refresh(['a', 'a'], 10);
    expect(log).toEqual([]);
    // One of its calls ended: one place, so one run goes, and the tenant stays held while others wait.
    gate.refresh(['a'], 20);
    expect(log).toEqual(['sent 1']);
    expect(gate.holds('a')).toBe(true);
    // Both ended: the rest go, and the tenant's new runs no longer wait.
    gate.refresh([], 30);
    expect(log).toEqual(['sent 1', 'sent 2', 'sent 3']);
    expect([gate.holds('a'), gate.holding]).toEqual([false, false]);
  });

  it('answers a held run whose time ran out instead of sending it', () => {
    const gate = new TenantGate(1);
    const log: string[] = [];
    gate.refresh(['a']);
    gate.hold('a', heldRun('late', 50, log));
    gate.hold('a', heldRun('in time', 500, log));
    gate.refresh(['a'], 100);
    expect(log).toEqual(['expired late']);
    gate.refresh([], 200);
    expect(log).toEqual(['expired late', 'sent in time']);
  });
});
