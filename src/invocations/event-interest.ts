import type { Notifier } from '../db/database.ts';
import type { Logger } from '../logger.ts';

const CHANNEL = 'reactor_event_interest';
/** Postgres refuses NOTIFY payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7000;
const MAX_TENANT_ID_LENGTH = 100;

export interface InterestOptions {
  /** How often an instance repeats the tenants it has event subscribers for. */
  refreshMs: number;
  /** How long the others trust an announcement: a few refreshes, so one lost notification changes nothing. */
  ttlMs: number;
}

export const DEFAULT_INTEREST: InterestOptions = { refreshMs: 5_000, ttlMs: 15_000 };

/**
 * Which tenants have `reactorEvents` subscribers on other instances, so an instance sends a tenant's reactor events
 * over NOTIFY only when someone elsewhere is listening. Sync `react` publishes two events per call; serialising
 * them, sending them and reading back this instance's own echo was a fifth of `react`'s throughput on Postgres
 * (BENCHMARKS.md), for events nobody receives in the common case.
 *
 * An instance announces a tenant when it gets its first subscriber for it, repeats all of its tenants every
 * `refreshMs`, and answers a new instance's hello with them; an announcement counts for `ttlMs`. So a new
 * subscriber receives other instances' events once its announcement has reached them (a NOTIFY round trip,
 * milliseconds), and an instance stops sending a tenant's events at most `ttlMs` after its last subscriber left.
 */
export class EventInterest {
  private readonly remote = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly notifier: Notifier,
    private readonly log: Logger,
    private readonly instanceId: string,
    /** The tenants this instance has event subscribers for now. */
    private readonly localTenants: () => string[],
    private readonly options: InterestOptions,
  ) {}

  async start(): Promise<void> {
    this.unlisten = await this.notifier.listen(CHANNEL, (payload) => this.onPayload(payload));
    this.timer = setInterval(() => this.announce(this.localTenants()), this.options.refreshMs);
    this.timer.unref();
    this.hello();
  }

  /** Asks the other instances for their tenants now (at start, and after notifications may have been lost). */
  hello(): void {
    this.send([JSON.stringify({ from: this.instanceId, hello: true })]);
  }

  /** A tenant got its first subscriber on this instance. */
  added(tenantId: string): void {
    this.announce([tenantId]);
  }

  /** Whether some other instance has a subscriber for the tenant's events. */
  wanted(tenantId: string): boolean {
    const until = this.remote.get(tenantId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.remote.delete(tenantId);
    return false;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.unlisten?.();
    this.unlisten = null;
  }

  private announce(tenants: string[]): void {
    if (tenants.length === 0) return;
    const payloads: string[] = [];
    let chunk: string[] = [];
    let size = 0;
    for (const tenant of tenants) {
      if (chunk.length > 0 && size + tenant.length + 3 > MAX_PAYLOAD_BYTES - 100) {
        payloads.push(JSON.stringify({ from: this.instanceId, tenants: chunk }));
        chunk = [];
        size = 0;
      }
      chunk.push(tenant);
      size += tenant.length + 3;
    }
    payloads.push(JSON.stringify({ from: this.instanceId, tenants: chunk }));
    this.send(payloads);
  }

  private send(payloads: string[]): void {
    this.notifier.notify(CHANNEL, payloads).catch((error: unknown) => {
      // The next refresh repeats it.
      this.log.error({ err: error }, 'announcing reactor event subscribers failed');
    });
  }

  private onPayload(payload: string): void {
    let message: { from?: unknown; hello?: unknown; tenants?: unknown };
    try {
      message = JSON.parse(payload);
    } catch {
      this.log.warn('ignored a malformed event-interest notification');
      return;
    }
    if (message.from === this.instanceId) return;
    if (message.hello === true) this.announce(this.localTenants());
    if (!Array.isArray(message.tenants)) return;
    const until = Date.now() + this.options.ttlMs;
    for (const tenant of message.tenants) {
      if (typeof tenant === 'string' && tenant.length <= MAX_TENANT_ID_LENGTH) this.remote.set(tenant, until);
    }
  }
}
