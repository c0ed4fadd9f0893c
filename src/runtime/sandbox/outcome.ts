import type { ErrorCode, ErrorShape, FieldErrors } from '../../errors.ts';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../../json-depth.ts';

// The isolate reports `kind`; the host alone decides code and status, so a formula cannot claim e.g. NOT_FOUND.
const KINDS: Record<string, { code: ErrorCode; status: number }> = {
  badRequest: { code: 'BAD_REQUEST', status: 400 },
  unauthenticated: { code: 'UNAUTHENTICATED', status: 401 },
  invalidPaymentMethod: { code: 'INVALID_PAYMENT_METHOD', status: 402 },
  forbidden: { code: 'FORBIDDEN', status: 403 },
  rateLimited: { code: 'RATE_LIMITED', status: 429 },
  serviceUnavailable: { code: 'SERVICE_UNAVAILABLE', status: 503 },
  runtime: { code: 'REACTOR_RUNTIME_ERROR', status: 500 },
  customHttpResponse: { code: 'REACTOR_RUNTIME_ERROR', status: 500 },
};

const MAX_TEXT = 4096;
const MAX_DETAIL = 64 * 1024;

export type Settled = { ok: true; raw: unknown; tokenize: unknown } | { ok: false; error: ErrorShape };

export function runtimeError(message: string, status = 500): ErrorShape {
  return { code: 'REACTOR_RUNTIME_ERROR', status, message, detail: null, errors: null };
}

export function errorOf(code: ErrorCode, status: number, message: string): ErrorShape {
  return { code, status, message, detail: null, errors: null };
}

/** A run stopped at its time limit; `limitMs` is the caller's whole limit (RunInput.fullTimeoutMs), not what was left. */
export function timeoutError(limitMs: number): ErrorShape {
  return errorOf('REACTOR_TIMEOUT', 504, `Reactor timed out after ${limitMs} ms`);
}

/** isolated-vm's error for a call stopped by its `timeout`; anything else may be a formula's own message. */
export const TIMED_OUT = 'Script execution timed out.';
/** What isolated-vm throws in place of a thrown (or rejected) value that is an object but not an Error. */
const NOT_AN_ERROR = /^An object was thrown from supplied code within isolated-vm/;

/** A value thrown out of the isolate as isolated-vm copied it: an Error (of the same name), or the primitive. */
export function describeReason(reason: unknown): string {
  if (!(reason instanceof Error)) return String(reason);
  if (NOT_AN_ERROR.test(reason.message)) return 'a value that is not an Error';
  return `${reason.name}: ${reason.message}`;
}

function text(value: unknown, max: number): string | null {
  return typeof value === 'string' ? value.slice(0, max) : null;
}

function fieldErrors(value: unknown): FieldErrors | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const out: FieldErrors = {};
  let n = 0;
  for (const [key, list] of Object.entries(value)) {
    if (++n > 100) break;
    if (!Array.isArray(list)) continue;
    out[key.slice(0, 200)] = list.slice(0, 100).map((m) => String(m).slice(0, MAX_TEXT));
  }
  return out;
}

/** Turns the isolate's JSON answer into a result or error, trusting none of it. */
export function decodeSettled(json: string, maxOutputBytes: number): Settled {
  if (Buffer.byteLength(json) > maxOutputBytes + 64) {
    return { ok: false, error: runtimeError(`Reactor result exceeds the ${maxOutputBytes} byte limit`) };
  }
  let answer: unknown;
  try {
    answer = JSON.parse(json);
  } catch {
    return { ok: false, error: runtimeError('Reactor result could not be read') };
  }
  const a = answer as { ok?: unknown; result?: { raw?: unknown; tokenize?: unknown }; error?: Record<string, unknown> };
  if (a.ok === true && a.result && typeof a.result === 'object') {
    const { raw = null, tokenize = null } = a.result;
    // Checked here, in the worker: a result too deep for a structured clone could not be posted to the pool.
    if (nestedDeeperThan(raw) || nestedDeeperThan(tokenize)) {
      return { ok: false, error: runtimeError(`Reactor result may nest at most ${MAX_JSON_DEPTH} levels deep`) };
    }
    return { ok: true, raw, tokenize };
  }
  const error = a.error ?? {};
  const kind = KINDS[String(error.kind)] ?? KINDS.runtime!;
  const message = text(error.message, MAX_TEXT) || 'Reactor failed';
  if (error.kind === 'customHttpResponse') {
    const status = typeof error.status === 'number' && error.status >= 100 && error.status <= 599 ? error.status : 500;
    return {
      ok: false,
      error: { code: kind.code, status, message, detail: text(error.detail, MAX_DETAIL), errors: null },
    };
  }
  return {
    ok: false,
    error: { code: kind.code, status: kind.status, message, detail: null, errors: fieldErrors(error.errors) },
  };
}
