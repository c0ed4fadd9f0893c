/**
 * Polls `probe` until it returns something other than undefined, and returns that; throws naming `what` after
 * `timeoutMs`. For state that another part of the gateway (a job runner, a webhook sender) reaches in its own time.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
