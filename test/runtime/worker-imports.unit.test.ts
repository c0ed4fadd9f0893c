import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The sandbox's worker side imports nothing from the database, auth or GraphQL layers (DESIGN.md section 5): a
 * thread that runs tenant code must not even have those modules loaded. This walks the static imports from the
 * worker entry, as written in the source, and fails on any module of those layers or their drivers.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FORBIDDEN_DIRECTORIES = ['src/db/', 'src/auth/', 'src/graphql/'];
const FORBIDDEN_PACKAGES = ['pg', 'kysely', '@electric-sql/pglite', 'graphql', 'graphql-yoga', '@pothos/core'];
// Static imports and re-exports, side-effect imports included, over several lines too. (No dynamic import() in src/runtime.)
const IMPORT = /^\s*(?:import|export)\s(?:[^'"]*?from\s+)?['"]([^'"]+)['"]/gm;

function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop() as string;
    if (files.has(file)) continue;
    files.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      if (!specifier) continue;
      if (specifier.startsWith('.')) pending.push(resolve(dirname(file), specifier));
      else if (!specifier.startsWith('node:')) packages.add(specifier);
    }
  }
  return { files, packages };
}

describe('the worker side of the sandbox', () => {
  it('reaches no module of the database, auth or GraphQL layers', () => {
    const { files, packages } = importGraph(resolve(ROOT, 'src/runtime/worker.ts'));
    const reached = [...files].map((file) => relative(ROOT, file));
    // The walk must have found the worker's real dependencies, or it proves nothing.
    expect(reached).toEqual(
      expect.arrayContaining(['src/runtime/sandbox/formula-isolate.ts', 'src/tokens/sealing.ts', 'src/errors.ts']),
    );
    expect(packages).toContain('isolated-vm');
    expect(reached.filter((file) => FORBIDDEN_DIRECTORIES.some((directory) => file.startsWith(directory)))).toEqual([]);
    expect([...packages].filter((name) => FORBIDDEN_PACKAGES.includes(name))).toEqual([]);
  });

  it("the runtime process's entry (RUNTIME_ISOLATION=process) neither, nor the configuration", () => {
    const { files, packages } = importGraph(resolve(ROOT, 'src/runtime/runtime-process.ts'));
    const reached = [...files].map((file) => relative(ROOT, file));
    expect(reached).toEqual(expect.arrayContaining(['src/runtime/pool.ts', 'src/runtime/process-protocol.ts']));
    expect(packages).toContain('piscina');
    // config.ts reads the environment, which that process is started without.
    const forbidden = [...FORBIDDEN_DIRECTORIES, 'src/config.ts', 'src/logger.ts'];
    expect(reached.filter((file) => forbidden.some((prefix) => file.startsWith(prefix)))).toEqual([]);
    expect([...packages].filter((name) => FORBIDDEN_PACKAGES.includes(name))).toEqual([]);
  });
});
