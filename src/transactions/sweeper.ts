import type { Logger } from '../logger.ts';
import type { SweepResult } from './service.ts';

/**
 * Runs `sweep` (roll back expired transactions, purge expired tokens) every `intervalMs`, one sweep at a time.
 * Returns the closer: it stops the timer and waits for a sweep in flight, so the database is never closed under it.
 */
export function startSweeper(sweep: () => Promise<SweepResult>, intervalMs: number, log: Logger): () => Promise<void> {
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = sweep()
      .then((result) => {
        if (result.expiredTransactions > 0 || result.purgedTokens > 0)
          log.info(result, 'swept expired transactions and tokens');
      })
      .catch((error: unknown) => log.error({ err: error }, 'sweeping expired transactions and tokens failed'))
      .finally(() => {
        running = null;
      });
  }, intervalMs);
  // The sweeper alone must not keep a process alive.
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
