import { type FS, Liquid } from 'liquidjs';
import { tokenFilters } from './filters.ts';

/**
 * Standard Liquid filters kept alongside the token filters: string shaping a caller plausibly needs on a
 * detokenized value. Everything else liquidjs ships is removed, notably the `*_exp` filters (they evaluate a
 * string as a Liquid expression at run time, which would bypass the shape checks in compile.ts) and date and
 * collection filters nobody needs on a token.
 */
const KEPT_STANDARD_FILTERS = new Set([
  'append',
  'prepend',
  'upcase',
  'downcase',
  'slice',
  'replace',
  'remove',
  'strip',
  'lstrip',
  'rstrip',
  'split',
  'first',
  'last',
  'join',
  'size',
  'default',
  'plus',
  'minus',
]);

/** The names a caller may use after `|`, for error messages and documentation. */
export const ALLOWED_FILTERS: readonly string[] = [...Object.keys(tokenFilters), ...KEPT_STANDARD_FILTERS].sort();

// Expressions never read files; this makes that a property of the engine rather than of the templates we accept.
const noFileSystem: FS = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async () => {
    throw new Error('Detokenization expressions cannot read files.');
  },
  readFileSync: () => {
    throw new Error('Detokenization expressions cannot read files.');
  },
  resolve: (_dir, file) => file,
};

function createEngine(): Liquid {
  const liquid = new Liquid({
    strictFilters: true,
    strictVariables: true,
    // Token data is JSON, but a lookup must never reach Object.prototype (`constructor`, `__proto__`).
    ownPropertyOnly: true,
    fs: noFileSystem,
    root: [],
    partials: [],
    layouts: [],
    relativeReference: false,
    dynamicPartials: false,
    cache: false,
    // Values are placed into JSON args, not HTML: nothing is escaped.
    outputEscape: undefined,
    // Bounds for the standard filters (split/join/replace on a large value); the args size limit bounds parsing.
    memoryLimit: 50_000_000,
  });
  // Only output expressions are allowed; compile.ts rejects `{% %}` before parsing, and with no tags registered
  // a tag that slipped through would still fail to parse rather than run (include, render, assign...).
  for (const name of Object.keys(liquid.tags)) delete liquid.tags[name];
  for (const name of Object.keys(liquid.filters)) {
    if (!KEPT_STANDARD_FILTERS.has(name)) liquid.unregisterFilter(name);
  }
  for (const [name, filter] of Object.entries(tokenFilters)) liquid.registerFilter(name, filter);
  return liquid;
}

/** One engine for the process: building one costs far more than a parse, and it holds no per-request state. */
export const liquid = createEngine();
