import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { LogLine, RunInput } from '../types.ts';
import { BtCallError, btCall } from './bt-client.ts';
import type { EgressPolicy } from './egress.ts';
import { type FetchRequest, hostFetch } from './fetch.ts';

/**
 * Host I/O calls (fetch, req.bt) one formula call may have in flight; more wait for one of them to end, up to
 * MAX_WAITING_CALLS, and past that are refused. Each call in flight holds a socket and host memory the isolate's
 * memory limit does not count: unbounded, one run's `Promise.all` of thousands of fetches to a server that never
 * answers used up the process's file descriptors, and every other request failed with it.
 */
export const MAX_CALLS_IN_FLIGHT = 16;
export const MAX_WAITING_CALLS = 1_000;
/**
 * Timers one run may have pending on the host (setTimeout, AbortSignal.timeout; clearTimeout only stops the
 * callback, the host's timer runs out): each is host memory the isolate's limit does not count, and a loop of
 * AbortSignal.timeout grew the host by 120 MB in 1.5 s.
 */
export const MAX_PENDING_TIMERS = 10_000;
/**
 * What the fetch and req.bt calls one run has in flight or waiting may carry, in characters of their JSON (request
 * bodies, mostly): host memory the isolate's limit does not count. Unbounded, 1,016 calls of one 8 MB body each
 * grew the process to 3.25 GB and it aborted.
 */
export const MAX_CALL_PAYLOAD_CHARS = 32 * 1024 * 1024;
const MAX_LOG_LINES = 100;
const MAX_LOG_CHARS = 2048;
const HASHES = new Set(['sha1', 'sha256', 'sha384', 'sha512', 'md5']);
const URL_SETTABLE = new Set([
  'href',
  'protocol',
  'username',
  'password',
  'host',
  'hostname',
  'port',
  'pathname',
  'search',
  'hash',
]);

export interface BridgeSettings {
  policy: EgressPolicy;
  fetchTimeoutMs: number;
  maxResponseBytes: number;
}

/** Host-side state of one formula call: its logs, and what to cancel when it ends. */
export class Invocation {
  readonly logs: LogLine[] = [];
  private abortController: AbortController | null = null;
  readonly timers = new Map<NodeJS.Timeout, number>();
  /** Host I/O calls running, and those waiting for one to end (MAX_CALLS_IN_FLIGHT). */
  callsInFlight = 0;
  /** What those calls carry (MAX_CALL_PAYLOAD_CHARS). */
  payloadChars = 0;
  /** What cancels a call the formula gave an AbortSignal, by call id, while it runs or waits ('call.abort'). */
  readonly cancellable = new Map<number, AbortController>();
  readonly waitingCalls: (() => void)[] = [];
  finished = false;
  /**
   * The latest call delivering a host answer into the isolate, settled (never rejected) once it returns. The run's
   * answer comes from inside such a call; a rejection the formula left unhandled there is logged when it returns.
   */
  delivering: Promise<void> | null = null;
  constructor(
    readonly id: number,
    readonly bt: RunInput['bt'],
    readonly deadline: number,
    readonly timeoutMs: number,
  ) {}
  // Created on first use: an AbortController costs more than a whole synchronous formula call.
  get signal(): AbortSignal {
    this.abortController ??= new AbortController();
    return this.abortController.signal;
  }
  abort(): void {
    this.abortController?.abort();
  }
  remainingMs(): number {
    return Math.max(0, this.deadline - performance.now());
  }
  /** A line of the call's captured console output, within the same caps as the formula's own. */
  log(level: LogLine['level'], message: string): void {
    if (this.finished || this.logs.length >= MAX_LOG_LINES) return;
    this.logs.push({ level, message: message.slice(0, MAX_LOG_CHARS) });
  }
}

function urlParts(u: URL) {
  const { href, origin, protocol, username, password, host, hostname, port, pathname, search, hash } = u;
  return { href, origin, protocol, username, password, host, hostname, port, pathname, search, hash };
}

function syncOp(op: string, payload: Record<string, unknown>, invocations: Map<number, Invocation>): unknown {
  switch (op) {
    case 'log': {
      const [id, level, message] = payload as unknown as [number, string, string];
      invocations.get(id)?.log(level === 'warn' || level === 'error' ? level : 'log', String(message));
      return null;
    }
    case 'call.abort': {
      const [id, callId] = payload as unknown as [number, number];
      invocations.get(id)?.cancellable.get(callId)?.abort();
      return null;
    }
    case 'url.parse':
      return urlParts(new URL(String(payload.input), payload.base === null ? undefined : String(payload.base)));
    case 'url.set': {
      const u = new URL(String(payload.href));
      const field = String(payload.field);
      if (!URL_SETTABLE.has(field)) throw new Error(`URL.${field} cannot be set`);
      (u as unknown as Record<string, string>)[field] = String(payload.value);
      return urlParts(u);
    }
    case 'crypto.random':
      return randomBytes(Math.min(65536, Math.max(0, Number(payload.size) | 0))).toString('base64');
    case 'crypto.uuid':
      return randomUUID();
    case 'crypto.hash':
    case 'crypto.hmac': {
      const algorithm = String(payload.algorithm);
      if (!HASHES.has(algorithm)) throw new Error(`Digest method not supported: ${algorithm}`);
      const data = Buffer.from(String(payload.data), 'base64');
      const hash =
        op === 'crypto.hash'
          ? createHash(algorithm)
          : createHmac(algorithm, Buffer.from(String(payload.key ?? ''), 'base64'));
      return hash.update(data).digest('base64');
    }
    default:
      throw new Error(`Unknown operation ${op}`);
  }
}

function refusal(op: string, why: string) {
  return { ok: false, message: `${op === 'fetch' ? 'fetch' : 'req.bt call'} refused: ${why}` };
}

/**
 * Builds the two callbacks the isolate gets. Both take and return strings only and never throw: a host exception
 * copied into the isolate would carry a host stack.
 */
export function createBridge(
  settings: BridgeSettings,
  invocations: Map<number, Invocation>,
  deliver: (invocation: Invocation | undefined, callId: number, answerJson: string) => void,
) {
  const sync = (op: unknown, json: unknown): string => {
    try {
      if (typeof op !== 'string' || typeof json !== 'string') throw new Error('Invalid host call');
      const value = syncOp(op, JSON.parse(json) ?? {}, invocations);
      return JSON.stringify({ ok: true, value });
    } catch (error) {
      return JSON.stringify({ ok: false, message: error instanceof Error ? error.message : 'Host call failed' });
    }
  };

  const dispatch = (invocationId: unknown, callId: unknown, op: unknown, json: unknown): void => {
    if (typeof callId !== 'number') return;
    const invocation = typeof invocationId === 'number' ? invocations.get(invocationId) : undefined;
    if (!invocation || invocation.finished || typeof op !== 'string' || typeof json !== 'string') {
      deliver(invocation, callId, '{"dead":true}');
      return;
    }
    const settle = (answer: unknown) =>
      deliver(invocation, callId, invocation.finished ? '{"dead":true}' : JSON.stringify(answer));
    const size = json.length;
    // Before the payload is parsed: a refused call costs no parse of its body.
    if (op !== 'sleep' && invocation.payloadChars + size > MAX_CALL_PAYLOAD_CHARS) {
      settle(refusal(op, 'the fetch and req.bt calls of this run in flight or waiting would carry more than 32 MB'));
      return;
    }
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(json) ?? {};
    } catch {
      settle({ ok: false, message: 'Invalid host call' });
      return;
    }
    if (op === 'sleep') {
      // Timers never outlive the call: a delay past the deadline simply never fires.
      const ms = Math.max(0, Number(payload.ms) || 0);
      if (ms > invocation.remainingMs()) return;
      if (invocation.timers.size >= MAX_PENDING_TIMERS) {
        settle({
          ok: false,
          message: `A run may have at most ${MAX_PENDING_TIMERS} timers pending; this one never fires`,
        });
        return;
      }
      const timer = setTimeout(() => {
        invocation.timers.delete(timer);
        settle({ ok: true, value: null });
      }, ms);
      invocation.timers.set(timer, callId);
      return;
    }
    let cancel: AbortController | undefined;
    if (op === 'fetch' && payload.abortable === true) {
      cancel = new AbortController();
      invocation.cancellable.set(callId, cancel);
    }
    const start = () => runIo(invocation, callId, op, payload, settle, cancel, size);
    if (invocation.callsInFlight < MAX_CALLS_IN_FLIGHT) {
      invocation.payloadChars += size;
      start();
    } else if (invocation.waitingCalls.length < MAX_WAITING_CALLS) {
      invocation.payloadChars += size;
      invocation.waitingCalls.push(start);
    } else {
      invocation.cancellable.delete(callId);
      settle(
        refusal(
          op,
          `${MAX_CALLS_IN_FLIGHT} fetch or req.bt calls of this run are in flight and ${MAX_WAITING_CALLS} more are waiting`,
        ),
      );
    }
  };

  /** Runs one host I/O call; when it ends, the next waiting call of the invocation starts. */
  function runIo(
    invocation: Invocation,
    callId: number,
    op: string,
    payload: Record<string, unknown>,
    settle: (answer: unknown) => void,
    cancel: AbortController | undefined,
    payloadChars: number,
  ) {
    invocation.callsInFlight++;
    const ended = () => {
      invocation.callsInFlight--;
      invocation.payloadChars -= payloadChars;
      if (cancel) invocation.cancellable.delete(callId);
      if (!invocation.finished) invocation.waitingCalls.shift()?.();
    };
    const work =
      op === 'fetch'
        ? hostFetch(payload as unknown as FetchRequest, {
            policy: settings.policy,
            // As long as the run has left (Node's fetch has no timeout of its own), within the operator's cap.
            timeoutMs: Math.max(1, Math.min(settings.fetchTimeoutMs, invocation.remainingMs())),
            maxResponseBytes: settings.maxResponseBytes,
            signal: cancel ? AbortSignal.any([invocation.signal, cancel.signal]) : invocation.signal,
          })
        : op.startsWith('bt.')
          ? invocation.bt
            ? btCall(invocation.bt, op, payload, invocation.signal)
            : Promise.reject(new Error('req.bt is not configured for this reactor'))
          : Promise.reject(new Error(`Unknown operation ${op}`));
    work.then(
      (value) => {
        ended();
        settle({ ok: true, value });
      },
      (error: unknown) => {
        ended();
        if (error instanceof BtCallError && error.code) {
          settle({ ok: false, message: error.message, code: error.code, status: error.status, errors: error.errors });
          return;
        }
        const message = error instanceof Error ? error.message : 'Host call failed';
        settle({
          ok: false,
          message: op === 'fetch' && !message.startsWith('fetch') ? `fetch failed: ${message}` : message,
        });
      },
    );
  }

  return { sync, dispatch };
}

/** Ends a call on the host: pending timers and requests are cancelled; their isolate-side promises never settle. */
export function endInvocation(invocation: Invocation): void {
  invocation.finished = true;
  invocation.abort();
  for (const timer of invocation.timers.keys()) clearTimeout(timer);
  invocation.timers.clear();
  invocation.waitingCalls.length = 0;
  invocation.cancellable.clear();
}
