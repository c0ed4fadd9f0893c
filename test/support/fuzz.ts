/**
 * fast-check's seed and number of runs for a generated test: a fixed seed by default, so CI is repeatable;
 * `FUZZ_SEED=random` (or a number) and `FUZZ_RUNS=n` explore further by hand.
 */
export function fuzzSettings(defaultRuns: number): { seed: number | undefined; runs: number } {
  return {
    seed: process.env.FUZZ_SEED === 'random' ? undefined : Number(process.env.FUZZ_SEED ?? 20261206),
    runs: Number(process.env.FUZZ_RUNS ?? defaultRuns),
  };
}
