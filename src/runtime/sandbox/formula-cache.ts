import type { ErrorShape } from '../../errors.ts';
import type { RunInput } from '../types.ts';
import { FormulaIsolate, type IsolateSettings, type LoadResult, SANDBOX_UNAVAILABLE } from './formula-isolate.ts';
import { errorOf, timeoutError } from './outcome.ts';

/** Isolates are recycled after this many calls, bounding what a long-lived formula can accumulate. */
const MAX_USES = 10_000;
const LOAD_TIMEOUT_MS = 1_000;

type Entry = { formula: FormulaIsolate } | { failed: ErrorShape };

export type Acquired = { ok: true; formula: FormulaIsolate } | { ok: false; error: ErrorShape };

/**
 * Per-worker LRU of loaded formulas keyed by tenant, formula and code hash, so a tenant never gets another
 * tenant's isolate and a second call never recompiles. Code that fails to load by its own fault is remembered too.
 *
 * It also keeps one spare: an isolate with the runtime installed and no formula, made on a later turn of the
 * worker's event loop (the pool runs piscina with `atomics: 'disabled'`, so an idle worker's loop turns), so that
 * the first call of a new formula, or of one whose isolate was recycled, does not wait for an isolate to be built.
 * A spare has never run any code but our own runtime; once given a formula it is that formula's alone.
 */
export class FormulaCache {
  private readonly entries = new Map<string, Entry>();
  private readonly retired = new Set<FormulaIsolate>();
  private spare: FormulaIsolate | null = null;
  private refill: NodeJS.Immediate | null = null;
  private closed = false;

  constructor(
    private readonly settings: IsolateSettings,
    private readonly capacity: number,
  ) {
    this.scheduleSpare();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether a spare isolate is ready (for tests). */
  get hasSpare(): boolean {
    return this.spare !== null && !this.spare.disposed;
  }

  acquire(input: RunInput): Acquired {
    const key = `${input.tenantId}\u0000${input.formulaId}\u0000${input.codeHash}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      if ('failed' in hit) {
        this.entries.set(key, hit);
        return { ok: false, error: hit.failed };
      }
      if (!hit.formula.disposed && !hit.formula.exhausted && hit.formula.uses < MAX_USES) {
        this.entries.set(key, hit);
        return { ok: true, formula: hit.formula };
      }
      this.retire(hit.formula);
    }
    const isolate = this.takeSpare() ?? FormulaIsolate.create(this.settings);
    const budgetMs = Math.min(LOAD_TIMEOUT_MS, Math.max(1, input.timeoutMs));
    const loaded: LoadResult = isolate ? isolate.define(input.code, budgetMs) : SANDBOX_UNAVAILABLE;
    if (loaded.ok) {
      this.entries.set(key, { formula: loaded.formula });
      this.evict();
      return loaded;
    }
    // A sandbox that could not be set up says nothing about the code, and module code stopped by what was left of
    // this call's time (a short reactor timeout, or a run that waited behind others) says only that this call ran
    // out of time: neither is remembered, the next call tries again.
    if (loaded.reason === 'unavailable') {
      return { ok: false, error: errorOf('SERVICE_UNAVAILABLE', 503, loaded.message) };
    }
    if (loaded.timedOut && budgetMs < LOAD_TIMEOUT_MS) {
      return { ok: false, error: timeoutError(input.fullTimeoutMs ?? input.timeoutMs) };
    }
    const failed = errorOf('INVALID_REACTOR_CODE', 422, loaded.message);
    this.entries.set(key, { failed });
    this.evict();
    return { ok: false, error: failed };
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
    this.closed = true;
    if (this.refill) clearImmediate(this.refill);
    this.refill = null;
    this.spare?.dispose();
    this.spare = null;
    for (const entry of this.entries.values()) if ('formula' in entry) entry.formula.dispose();
    for (const formula of this.retired) formula.dispose();
    this.entries.clear();
    this.retired.clear();
  }

  private takeSpare(): FormulaIsolate | null {
    const spare = this.spare;
    this.spare = null;
    this.scheduleSpare();
    return spare && !spare.disposed ? spare : null;
  }

  /** The next spare is built on a later turn of the loop: after this call has answered, not before. */
  private scheduleSpare(): void {
    if (this.closed || this.spare || this.refill) return;
    this.refill = setImmediate(() => {
      this.refill = null;
      if (!this.closed && !this.spare) this.spare = FormulaIsolate.create(this.settings);
    });
    this.refill.unref();
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
