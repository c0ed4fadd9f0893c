// Runs after `npm install` / `npm ci`, once patch-package has applied patches/isolated-vm+*.patch to isolated-vm's
// C++ source. npm built (or downloaded) isolated-vm's binary before that, from the unpatched source, so this rebuilds
// it unless the binary already has the patch. The patch bounds the copy of a formula's unhandled rejection out of
// its isolate: unpatched, a rejection whose `stack` getter never returns freezes a worker thread for good (README,
// "The sandbox's patch to isolated-vm"). The service refuses to start on an unpatched build (src/runtime/sandbox/patched-isolated-vm.ts).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const packageDir = path.dirname(require.resolve('isolated-vm/package.json'));

/** The patch's marker as a fresh process loads the binary: a number when patched, else undefined. */
function patchedLimit() {
  const out = execFileSync(
    process.execPath,
    ['--no-node-snapshot', '-e', 'process.stdout.write(String(require("isolated-vm").rejectionReadLimitMs))'],
    { cwd: packageDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return Number(out);
}

/** npm hands lifecycle scripts its own node-gyp; outside npm, the one bundled with npm next to this node. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  const found = candidates.find((candidate) => candidate && existsSync(candidate));
  if (!found) throw new Error('node-gyp not found: run this from npm (npm ci), which provides it');
  return found;
}

function main() {
  if (Number.isInteger(patchedLimit())) return;
  console.log('isolated-vm: building from its patched source (about 35 s on 2 cores)...');
  const gyp = nodeGyp();
  const run = (args) => execFileSync(process.execPath, [gyp, ...args], { cwd: packageDir, stdio: 'inherit' });
  run(['rebuild', '--release', '-j', 'max']);
  run(['clean']);
  if (!Number.isInteger(patchedLimit())) {
    throw new Error('isolated-vm was rebuilt but its binary still lacks the patch; is patches/ applied?');
  }
  console.log('isolated-vm: patched build ready');
}

try {
  main();
} catch (error) {
  console.error(`isolated-vm: ${error instanceof Error ? error.message : String(error)}`);
  console.error(
    'The sandbox needs isolated-vm built from its patched source: a C++ compiler, make and python3 (node-gyp).',
  );
  process.exit(1);
}
