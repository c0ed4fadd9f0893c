import ivm from 'isolated-vm';

/**
 * Refuses to run formulas on an isolated-vm binary built without patches/isolated-vm+5.0.4.patch (`npm ci` applies
 * it and rebuilds, scripts/build-isolated-vm.mjs). After every call into an isolate, isolated-vm copies the first
 * promise the formula left rejected with no handler to the host, reading the reason's `message` and `stack` and
 * calling its `toString`: formula code, run after the call's time limit has ended. Unpatched, a reason whose
 * getter never returns froze the worker thread for good (no `terminate()` stops it), and as many such runs as
 * there are threads stalled every tenant. The patch gives that copy a time limit of its own and marks the build.
 */
export function assertPatchedIsolatedVm(): void {
  const limitMs = (ivm as unknown as { rejectionReadLimitMs?: unknown }).rejectionReadLimitMs;
  if (typeof limitMs === 'number') return;
  throw new Error(
    'isolated-vm is not built from its patched source (patches/isolated-vm+5.0.4.patch): formula code could freeze ' +
      'the sandbox. Run `npm ci`, or `npm run postinstall` to patch and rebuild it (needs a C++ compiler, make, python3).',
  );
}
