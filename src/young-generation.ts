import { setFlagsFromString } from 'node:v8';

/**
 * `npm start` sizes the main thread's young generation on the command line (`--max-semi-space-size`, see
 * package.json and the README's design notes): requests allocate a lot of short-lived objects there, and a larger
 * nursery means fewer scavenges and less promoted garbage. V8 flags are process-wide, though, and this one would
 * also override the heap limits isolated-vm gives each formula isolate, and the piscina workers' defaults. V8 reads
 * it once, when an isolate's heap is set up, so it is reset here, before anything else makes an isolate: the main
 * thread keeps the size it was started with and every later isolate gets its own default again.
 *
 * Imported first by src/main.ts, for its side effect.
 */
setFlagsFromString('--max-semi-space-size=0');
