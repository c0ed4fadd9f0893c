// `node --import tsx bench/gc-summary.ts <log> [seconds]`
//
// Summarises a gateway's `--trace-gc-nvp` output: for its busiest isolate (the main thread's), over the last
// `seconds` (default 3) of the log, the scavenges' pause per second of load, and how much each second allocated,
// how much survived a scavenge and how much was promoted to the old generation. Promotion is what the sixth
// session's WeakMap finding showed (BENCHMARKS.md): requests that die young promote next to nothing.
//
//   BENCH_NODE_ARGS=--trace-gc-nvp BENCH_PROCESS_LOG=/tmp/gw.log \
//     node --no-node-snapshot --import tsx bench/profile.ts postgres c50 react
//   node --import tsx bench/gc-summary.ts /tmp/gw.log
import { readFileSync } from 'node:fs';

const [file, secondsArg = '3'] = process.argv.slice(2);
if (!file) throw new Error('usage: bench/gc-summary.ts <trace-gc-nvp log> [seconds]');

type Event = { at: number; fields: Map<string, string> };
const byIsolate = new Map<string, Event[]>();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const head = /^\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms: (pause=.*)$/.exec(line);
  if (!head) continue;
  const fields = new Map([...head[3]!.matchAll(/(\S+?)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
  const events = byIsolate.get(head[1]!) ?? [];
  events.push({ at: Number(head[2]), fields });
  byIsolate.set(head[1]!, events);
}
const busiest = [...byIsolate.entries()].sort((a, b) => b[1].length - a[1].length)[0];
if (!busiest) throw new Error(`no --trace-gc-nvp lines in ${file}`);
const [isolate, all] = busiest;
const end = all[all.length - 1]!.at;
const events = all.filter((event) => event.at >= end - Number(secondsArg) * 1000);
const span = (end - events[0]!.at) / 1000 || 1;
const scavenges = events.filter((event) => event.fields.get('gc') === 's');
const others = events.filter((event) => event.fields.get('gc') !== 's');
const sum = (list: Event[], key: string) =>
  list.reduce((total, event) => total + Number(event.fields.get(key) ?? 0), 0);
const mbPerSecond = (key: string) => (sum(scavenges, key) / span / 1e6).toFixed(2);
console.log(
  `isolate ${isolate}, last ${span.toFixed(1)} s: ${scavenges.length} scavenges, pause ${(sum(scavenges, 'pause') / span).toFixed(1)} ms/s; ` +
    `allocated ${mbPerSecond('allocated')} MB/s, survived ${mbPerSecond('new_space_survived')} MB/s, ` +
    `promoted ${mbPerSecond('promoted')} MB/s; ${others.length} other collections, pause ${(sum(others, 'pause') / span).toFixed(1)} ms/s`,
);
