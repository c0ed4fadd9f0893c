import { asyncThroughput } from './async-throughput.ts';
import { idleSubscriptions } from './idle-subscriptions.ts';
import { react } from './react.ts';
import { reactAsync } from './react-async.ts';
import { reactorsList } from './reactors-list.ts';
import { runtimeIsolation } from './runtime-isolation.ts';
import { runtimeOverhead } from './runtime-overhead.ts';
import { trivialQuery } from './trivial-query.ts';
import type { Figure } from './types.ts';

/**
 * Every figure the harness runs, in order. A new figure is a module in this folder exporting a `Figure`; add it
 * here. Figures whose feature does not exist yet say so from `available()` and are listed as skipped.
 */
export const figures: Figure[] = [
  // First: it measures the pool in a process of its own and needs no server, so nothing else of the run should be
  // loading the machine while it does. (It still reads slower in a run's second half: 95 us then 161 us.)
  runtimeOverhead,
  trivialQuery,
  react,
  runtimeIsolation,
  reactAsync,
  reactorsList,
  asyncThroughput,
  idleSubscriptions,
];
