// `node --import tsx bench/wake-pingpong.ts [none|worker|main|both] [busyMicrosBetween]`
//
// What a crossing between two threads costs on this machine, and how much of it is a sleeping vCPU waking up
// (BENCHMARKS.md, ninth session; src/runtime/wake-poll.ts). One worker echoes each message back; 20,000 round
// trips, p50 and p90. "worker": after answering, the worker polls a SharedArrayBuffer cell for up to 200 us for the
// next message before it returns to its event loop; "main": after posting, the main thread polls for the answer
// for up to 200 us; "both". The optional second argument busy-waits that many microseconds between round trips.
// Not part of `npm run bench`.
import { Worker } from 'node:worker_threads';

const POLL_MS = 0.2;
const SENT = 0;
const ANSWERED = 1;

function pollWhile(cells: Int32Array, index: number, seen: number): void {
  const end = performance.now() + POLL_MS;
  while (Atomics.load(cells, index) === seen && performance.now() < end);
}

// The echoing side, as plain JavaScript: a worker started from a .ts file would need tsx's loader in that thread.
const ECHO = `
const { parentPort, workerData } = require('node:worker_threads');
const cells = new Int32Array(workerData.buffer);
const poll = workerData.mode === 'worker' || workerData.mode === 'both';
parentPort.on('message', (message) => {
  parentPort.postMessage(message);
  Atomics.add(cells, ${ANSWERED}, 1);
  if (!poll) return;
  const seen = Atomics.load(cells, ${SENT});
  setImmediate(() => {
    const end = performance.now() + ${POLL_MS};
    while (Atomics.load(cells, ${SENT}) === seen && performance.now() < end);
  });
});
`;

const mode = process.argv[2] ?? 'none';
const busyMicros = Number(process.argv[3] ?? 0);
const buffer = new SharedArrayBuffer(8);
const cells = new Int32Array(buffer);
const worker = new Worker(ECHO, { eval: true, workerData: { buffer, mode } });
await new Promise((resolve) => worker.once('online', resolve));
let answered: () => void = () => {};
worker.on('message', () => answered());
const samples: number[] = [];
for (let i = 0; i < 20_000; i++) {
  const started = performance.now();
  const answer = new Promise<void>((resolve) => {
    answered = resolve;
  });
  const seen = Atomics.load(cells, ANSWERED);
  Atomics.add(cells, SENT, 1);
  worker.postMessage(i);
  if (mode === 'main' || mode === 'both') pollWhile(cells, ANSWERED, seen);
  await answer;
  samples.push((performance.now() - started) * 1000);
  const until = performance.now() + busyMicros / 1000;
  while (performance.now() < until);
}
samples.sort((a, b) => a - b);
const at = (p: number) => samples[Math.floor((samples.length * p) / 100)]?.toFixed(1);
console.log(`${mode}, ${busyMicros} us between: p50 ${at(50)} us, p90 ${at(90)} us`);
await worker.terminate();
