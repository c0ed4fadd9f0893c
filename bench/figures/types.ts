import type { BenchDatabase } from '../lib/gateway.ts';
import type { InProcessGateway } from '../lib/in-process.ts';
import type { ServerProcess } from '../lib/processes.ts';

/** One line of the results table (and of bench/results/latest.json). */
export interface Row {
  figure: string;
  metric: string;
  value: number;
  unit: string;
  /** The target as text ("≥ 0.8"), and whether this run met it. */
  target?: string;
  ok?: boolean;
  note?: string;
}

/** What every figure gets: the run's settings, the database and the gateway the harness started. */
export interface BenchContext {
  quick: boolean;
  /** Seconds per autocannon run and rounds per contender. */
  durationSeconds: number;
  rounds: number;
  connections: number;
  database: BenchDatabase;
  /** A gateway started with `src/main.ts serve`, bootstrapped with BENCH_KEYS, fast path on. */
  gateway: ServerProcess;
  /** Starts another process and stops it when the run ends. */
  track(server: ServerProcess): ServerProcess;
  log(message: string): void;
}

/**
 * A figure is a module exporting a `Figure`; bench/figures/index.ts lists them. `available` says whether the
 * feature it measures exists yet (so a half-built tree still benchmarks what it has).
 */
export interface Figure {
  name: string;
  available(context: BenchContext): Promise<boolean | string>;
  /**
   * Optional: start the processes the figure needs while the database is created and the main gateway starts
   * (starting them one after another would add up the waits). Called only for selected figures.
   */
  prepare?(context: PrepareContext): Promise<void>;
  /**
   * Optional: write the data the figure needs before any gateway starts, through the gateway's own code in the
   * harness's process (PGlite: into the template every instance is copied from, so no instance has to be stopped
   * for a bulk insert). Called only for selected figures; a failure should surface in `run`, failing that figure.
   */
  seed?(context: SeedContext): Promise<void>;
  run(context: BenchContext): Promise<Row[]>;
}

/** `database` is still being created and seeded when `prepare` is called. */
export type PrepareContext = Pick<BenchContext, 'quick' | 'track' | 'log'> & { database: Promise<BenchDatabase> };

export type SeedContext = Pick<BenchContext, 'quick' | 'log'> & { gateway: InProcessGateway };

/**
 * How a figure comparing contenders side by side spaces its rounds. Full runs: twelve short windows with the order
 * changing each round, and the median of the per-round ratios. This machine's speed drifts by up to 2x within
 * minutes (the trivial query went from 9,240 to 6,384 req/s within one run; its CPU per request from 88 to 159 µs
 * within one figure), and in a few long windows that drift fell between the contenders: three 10 s rounds of the
 * trivial figure read 0.85, 0.97, 0.59. `--quick` keeps the harness's own settings.
 */
export function windowedRounds(context: BenchContext): { rounds: number; windowSeconds: number } {
  return context.quick
    ? { rounds: context.rounds, windowSeconds: context.durationSeconds }
    : { rounds: 12, windowSeconds: 2 };
}

export function checked(row: Omit<Row, 'ok'>, meets: (value: number) => boolean): Row {
  return { ...row, ok: Number.isFinite(row.value) ? meets(row.value) : false };
}
