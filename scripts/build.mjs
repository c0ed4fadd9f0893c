// `npm run build [-- <out dir>]` (run by `npm start` first): compiles the service into dist/, a mirror of src/ and
// migrations/, so production runs plain JavaScript. Node 20 cannot run TypeScript itself; through tsx every process
// and every sandbox thread paid a loader thread on start-up: 1 s more to start and 2 s more CPU per gateway here.
//
// Each .ts file goes through TypeScript's own transpiler (types stripped, relative `.ts` imports rewritten to `.js`,
// nothing else changed; `npm run typecheck` does the type check). Other files (the sandbox prelude, read at run
// time) are copied. The tree keeps its shape, so paths relative to `import.meta.url` resolve the same in dist/.
// Only files newer than their output are compiled again, and outputs whose source is gone are deleted: a migration
// removed from migrations/ must not keep running from dist/.
//
// Plain JavaScript, not TypeScript, so that it runs without a loader and costs nothing when dist/ is up to date.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const outDir = path.resolve(root, process.argv[2] ?? 'dist');
const TREES = ['src', 'migrations'];

/** Every file of the trees, as paths relative to the root, with the path its output gets. */
function plan() {
  const entries = [];
  for (const tree of TREES) {
    for (const relative of readdirSync(path.join(root, tree), { recursive: true })) {
      const source = path.join(tree, String(relative));
      if (!statSync(path.join(root, source)).isFile()) continue;
      const compiled = source.endsWith('.ts') && !source.endsWith('.d.ts');
      entries.push({ source, output: compiled ? source.replace(/\.ts$/, '.js') : source, compiled });
    }
  }
  return entries;
}

/** A change to this script or to tsconfig.json makes every output stale. */
const toolsChangedAt = Math.max(
  statSync(import.meta.filename).mtimeMs,
  statSync(path.join(root, 'tsconfig.json')).mtimeMs,
);

function isCurrent(entry) {
  const output = path.join(outDir, entry.output);
  if (!existsSync(output)) return false;
  return statSync(output).mtimeMs >= Math.max(statSync(path.join(root, entry.source)).mtimeMs, toolsChangedAt);
}

/** The compiler options of tsconfig.json, with what emitting ES modules for Node needs on top. */
function compilerOptions(ts) {
  const read = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const { options } = ts.convertCompilerOptionsFromJson(read.config.compilerOptions, root);
  return {
    ...options,
    noEmit: false,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    rewriteRelativeImportExtensions: true,
    sourceMap: false,
    declaration: false,
  };
}

async function build() {
  const entries = plan();
  const stale = entries.filter((entry) => !isCurrent(entry));
  if (stale.some((entry) => entry.compiled)) {
    const { default: ts } = await import('typescript');
    const options = compilerOptions(ts);
    for (const entry of stale.filter((e) => e.compiled)) {
      const source = readFileSync(path.join(root, entry.source), 'utf8');
      const result = ts.transpileModule(source, {
        compilerOptions: options,
        fileName: entry.source,
        reportDiagnostics: true,
      });
      if (result.diagnostics?.length) {
        const messages = result.diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
        throw new Error(`${entry.source}: ${messages.join('; ')}`);
      }
      write(entry.output, result.outputText);
    }
  }
  for (const entry of stale.filter((e) => !e.compiled)) {
    write(entry.output, readFileSync(path.join(root, entry.source)));
  }
  const expected = new Set(entries.map((entry) => path.join(outDir, entry.output)));
  let removed = 0;
  for (const tree of TREES) {
    const dir = path.join(outDir, tree);
    if (!existsSync(dir)) continue;
    for (const relative of readdirSync(dir, { recursive: true })) {
      const file = path.join(dir, String(relative));
      if (statSync(file).isFile() && !expected.has(file)) {
        rmSync(file);
        removed++;
      }
    }
  }
  if (stale.length || removed) {
    console.error(`build: ${stale.length} of ${entries.length} files written, ${removed} removed (${outDir})`);
  }
}

function write(relative, contents) {
  const file = path.join(outDir, relative);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, contents);
}

build().catch((error) => {
  console.error(`build failed: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
});
