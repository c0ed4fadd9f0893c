import type { Logger } from '../logger.ts';

/**
 * Runs `sweep` (roll back expired transactions, purge expired tokens and idempotent responses) every `intervalMs`, one
 * sweep at a time; it returns how many rows of each kind it changed.
 * Returns the closer: it stops the timer and waits for a sweep in flight, so the database is never closed under it.
 */
export function startSweeper(
  sweep: () => Promise<Record<string, number>>,
  intervalMs: number,
  log: Logger,
): () => Promise<void> {
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = sweep()
      .then((result) => {
        if (Object.values(result).some((count) => count > 0)) log.info(result, 'swept expired rows');
      })
      .catch((error: unknown) => log.error({ err: error }, 'sweeping expired rows failed'))
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
