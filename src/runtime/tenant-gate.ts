/**
 * Keeps one tenant's stuck calls to its share of the pool's threads. The pool routes around threads stuck in a long
 * synchronous call and starts spare threads when all are stuck (stuck-threads.ts); without this a tenant sending
 * as many infinite loops as there are threads and spares together would stall every tenant until their timeout.
 * A tenant with `limit` calls stuck has its further runs wait here, in order, and they go to the workers as its
 * stuck calls end. Its runs are the only ones that wait.
 *
 * Looked at on every sweep of the pool's backstops (tracked-run.ts), before runs queued at stuck threads are moved:
 * the runs of a tenant over its limit then wait here instead of taking a spare thread.
 */
export interface HeldRun {
  /** performance.now() after which the run is answered as timed out instead of sent. */
  readonly deadline: number;
  send(): void;
  expire(): void;
}

export class TenantGate {
  private over = new Set<string>();
  private readonly held = new Map<string, HeldRun[]>();

  /** limit: how many stuck calls a tenant may have before its further runs wait. */
  constructor(private readonly limit: number) {}

  /** Whether this tenant's runs wait now (a Set lookup only while some tenant is over its limit). */
  holds(tenantId: string): boolean {
    return this.over.size > 0 && this.over.has(tenantId);
  }

  /** Whether any run waits here. */
  get holding(): boolean {
    return this.held.size > 0;
  }

  hold(tenantId: string, run: HeldRun): void {
    const queue = this.held.get(tenantId);
    if (queue) queue.push(run);
    else this.held.set(tenantId, [run]);
  }

  /**
   * stuckTenants: the tenant of each call stuck now. Sends the held runs of each tenant while it has fewer stuck
   * calls than the limit, one per free place; answers those past their deadline.
   */
  refresh(stuckTenants: string[], now = performance.now()): void {
    const stuck = new Map<string, number>();
    for (const tenantId of stuckTenants) stuck.set(tenantId, (stuck.get(tenantId) ?? 0) + 1);
    const over = new Set<string>();
    for (const [tenantId, count] of stuck) if (count >= this.limit) over.add(tenantId);
    for (const [tenantId, queue] of this.held) {
      let free = this.limit - (stuck.get(tenantId) ?? 0);
      const waiting: HeldRun[] = [];
      for (const run of queue) {
        if (run.deadline <= now) run.expire();
        else if (free > 0) {
          free--;
          run.send();
        } else waiting.push(run);
      }
      if (waiting.length > 0) {
        this.held.set(tenantId, waiting);
        // Runs sent after these would overtake them, and may be more of the same.
        over.add(tenantId);
      } else this.held.delete(tenantId);
    }
    this.over = over;
  }
}
