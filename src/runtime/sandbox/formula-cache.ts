import type { RunInput } from '../types.ts';
import { FormulaIsolate, type IsolateSettings } from './formula-isolate.ts';

/** Isolates are recycled after this many calls, bounding what a long-lived formula can accumulate. */
const MAX_USES = 10_000;
const LOAD_TIMEOUT_MS = 1_000;

type Entry = { formula: FormulaIsolate } | { failed: string };

/**
 * Per-worker LRU of loaded formulas keyed by tenant, formula and code hash, so a tenant never gets another
 * tenant's isolate and a second call never recompiles. Code that fails to load is remembered too.
 */
export class FormulaCache {
  private readonly entries = new Map<string, Entry>();
  private readonly retired = new Set<FormulaIsolate>();

  constructor(
    private readonly settings: IsolateSettings,
    private readonly capacity: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  acquire(input: RunInput): { ok: true; formula: FormulaIsolate } | { ok: false; message: string } {
    const key = `${input.tenantId}\u0000${input.formulaId}\u0000${input.codeHash}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      if ('failed' in hit) {
        this.entries.set(key, hit);
        return { ok: false, message: hit.failed };
      }
      if (!hit.formula.disposed && hit.formula.uses < MAX_USES) {
        this.entries.set(key, hit);
        return { ok: true, formula: hit.formula };
      }
      this.retire(hit.formula);
    }
    const loaded = FormulaIsolate.load(
      input.code,
      this.settings,
      Math.min(LOAD_TIMEOUT_MS, Math.max(1, input.timeoutMs)),
    );
    this.entries.set(key, loaded.ok ? { formula: loaded.formula } : { failed: loaded.message });
    this.evict();
    return loaded;
  }

  /** Called after each run, so isolates evicted while busy are disposed once their calls finish. */
  release(formula: FormulaIsolate): void {
    if (this.retired.has(formula) && !formula.busy) {
      this.retired.delete(formula);
      formula.dispose();
    }
  }

  /** Worker threads cannot be terminated reliably while isolates are alive, so the pool empties caches first. */
  disposeAll(): void {
    for (const entry of this.entries.values()) if ('formula' in entry) entry.formula.dispose();
    for (const formula of this.retired) formula.dispose();
    this.entries.clear();
    this.retired.clear();
  }

  private retire(formula: FormulaIsolate): void {
    if (formula.busy) this.retired.add(formula);
    else formula.dispose();
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(key);
      if ('formula' in entry) this.retire(entry.formula);
    }
  }
}
