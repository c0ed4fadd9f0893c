import { readFileSync } from 'node:fs';

// Order matters only for top-level statements: each part may call functions declared in later parts at run time.
const PARTS = ['core', 'encoding', 'sdk', 'url', 'crypto', 'events', 'fetch', 'clone'];

/** The isolate-side runtime, evaluated once per isolate before formula code; one strict function body. */
export const PRELUDE_SOURCE = `(function () {\n'use strict';\n${PARTS.map((part) =>
  readFileSync(new URL(`./${part}.isolate.js`, import.meta.url), 'utf8'),
).join('\n')}\n})();`;
