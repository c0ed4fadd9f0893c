import { createHmac } from 'node:crypto';
import type { Logger } from '../logger.ts';
import { createEgressPolicy, EgressDeniedError } from '../runtime/sandbox/egress.ts';
import { hostFetch } from '../runtime/sandbox/fetch.ts';
import type { ReactorRequestRow } from './tables.ts';

export interface WebhookSender {
  deliver(row: ReactorRequestRow): void;
  /** Waits for deliveries in progress (shutdown, tests). */
  drain(): Promise<void>;
}

/** The body a `callbackUrl` receives: the same fields as `reactorResult`. */
export function webhookBody(row: ReactorRequestRow): string {
  return JSON.stringify({
    id: row.id,
    reactorId: row.reactor_id,
    status: row.status,
    raw: row.raw ?? null,
    tokens: row.tokens ?? null,
    error: row.error ?? null,
    createdAt: row.created_at,
    startedAt: row.started_at,
    completedAt: row.completed_at,
  });
}

/** `BT-SIGNATURE`: hex HMAC-SHA256 of `<timestamp>.<body>` with the tenant's webhook secret. */
export function webhookSignature(secret: Buffer, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/**
 * Delivers async results to `callbackUrl` (deprecated in the seeds, still handy): a POST signed per tenant, retried
 * with exponential backoff on network errors and 5xx/429, under the same egress policy as formula `fetch`, so a
 * callback cannot reach the gateway's own network.
 */
export function createWebhookSender(deps: {
  secretFor(tenantId: string): Buffer;
  egressAllow: string[];
  log: Logger;
  attempts?: number;
  baseDelayMs?: number;
}): WebhookSender {
  const policy = createEgressPolicy(deps.egressAllow);
  const attempts = deps.attempts ?? 5;
  const baseDelayMs = deps.baseDelayMs ?? 1_000;
  const inProgress = new Set<Promise<void>>();

  async function send(row: ReactorRequestRow): Promise<void> {
    const body = webhookBody(row);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = webhookSignature(deps.secretFor(row.tenant_id), timestamp, body);
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const response = await hostFetch(
          {
            url: row.callback_url!,
            method: 'POST',
            headers: [
              ['content-type', 'application/json'],
              ['bt-signature', signature],
              ['bt-timestamp', timestamp],
            ],
            body: { text: body },
            redirect: 'error',
          },
          { policy, timeoutMs: 10_000, maxResponseBytes: 64 * 1024, signal: AbortSignal.timeout(15_000) },
        );
        if (response.status < 500 && response.status !== 429) return;
      } catch (error) {
        if (error instanceof EgressDeniedError) {
          deps.log.warn({ requestId: row.id }, 'callbackUrl refused by the egress policy');
          return;
        }
      }
      if (attempt < attempts) await new Promise((resolve) => setTimeout(resolve, baseDelayMs * 2 ** (attempt - 1)));
    }
    deps.log.warn({ requestId: row.id }, 'callbackUrl delivery failed after all attempts');
  }

  return {
    deliver(row) {
      const delivery = send(row).finally(() => inProgress.delete(delivery));
      inProgress.add(delivery);
    },
    async drain() {
      await Promise.allSettled([...inProgress]);
    },
  };
}
