import { readFileSync } from 'node:fs';
import type ivm from 'isolated-vm';

// Order matters only for top-level statements: each part may call functions declared in later parts at run time.
const PARTS = ['core', 'encoding', 'sdk', 'url', 'crypto', 'events', 'fetch', 'clone'];

/** The isolate-side runtime, evaluated once per isolate before formula code; one strict function body. */
export const PRELUDE_SOURCE = `(function () {\n'use strict';\n${PARTS.map((part) =>
  readFileSync(new URL(`./${part}.isolate.js`, import.meta.url), 'utf8'),
).join('\n')}\n})();`;

const PRELUDE_TIMEOUT_MS = 2_000;

/**
 * V8 code cache for the prelude, made by this worker's first isolate from our own source (never tenant code) and
 * consumed by every later one: compiling the prelude costs about 1.6 ms per isolate, consuming the cache about
 * 0.2 ms. It is made after the prelude has run once, so the functions compiled lazily by that run are in it too.
 * V8 checks it against the source and flags; if it is ever rejected the next isolate makes a new one.
 */
let preludeCache: ivm.ExternalCopy<ArrayBuffer> | undefined;

type CompiledScript = ivm.Script & ivm.CachedDataResult & { cachedDataRejected?: boolean };

export function runPrelude(isolate: ivm.Isolate, context: ivm.Context): void {
  const cachedData = preludeCache;
  const options = { filename: 'reactor-runtime.js' };
  // isolated-vm sets cachedData / cachedDataRejected on the returned script; its typings leave them out.
  const script: CompiledScript = isolate.compileScriptSync(
    PRELUDE_SOURCE,
    cachedData ? { ...options, cachedData } : options,
  );
  script.runSync(context, { timeout: PRELUDE_TIMEOUT_MS });
  script.release();
  if (cachedData && !script.cachedDataRejected) return;
  // Same isolate, same source: V8's compilation cache hands back the code it just ran, lazily compiled parts included.
  const again: CompiledScript = isolate.compileScriptSync(PRELUDE_SOURCE, { ...options, produceCachedData: true });
  again.release();
  preludeCache = again.cachedData;
}
