import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { EgressDeniedError, type EgressPolicy } from './egress.ts';

export interface FetchRequest {
  url: string;
  method: string;
  headers: [string, string][];
  body: { text: string } | { base64: string } | null;
  redirect: 'follow' | 'manual' | 'error';
}

/**
 * A response body as it crosses into the isolate (strings only): `text` when the bytes are valid UTF-8, so the
 * isolate gets them back exactly by encoding it again and `text()` costs nothing; `base64` for any other bytes.
 */
export type FetchBody = { text: string } | { base64: string };

export interface FetchResult {
  status: number;
  statusText: string;
  headers: [string, string][];
  url: string;
  redirected: boolean;
  body: FetchBody;
}

export interface FetchLimits {
  policy: EgressPolicy;
  timeoutMs: number;
  maxResponseBytes: number;
  signal: AbortSignal;
  /** How host names are resolved: `dns.lookup` (tests slow it down). */
  resolve?: typeof dnsLookup;
}

const MAX_REDIRECTS = 5;
// Fatal: invalid UTF-8 must not be replaced by U+FFFD, or binary bodies would not come back exactly. The BOM is
// kept: it is part of the bytes.
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function bodyOf(bytes: Buffer): FetchBody {
  try {
    return { text: STRICT_UTF8.decode(bytes) };
  } catch {
    return { base64: bytes.toString('base64') };
  }
}

/** A fetch failure described by this module, in words safe to show formula code. */
export class FetchError extends Error {}

// What a network failure's code means, in fixed words. Node's own messages are not passed on: OpenSSL's start with
// the host thread's id, a pointer into the gateway's memory (a formula could read it, weakening ASLR).
const NETWORK_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused',
  ECONNRESET: 'the connection was reset',
  ECONNABORTED: 'the connection was aborted',
  EPIPE: 'the connection was closed',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved now',
  EPROTO: 'the TLS handshake failed',
  ERR_INVALID_URL: 'the URL is invalid',
};

/** A failure from Node's http, dns or tls, as a FetchError naming its code and never repeating its message. */
function networkFailure(error: unknown): FetchError {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return new FetchError('fetch failed');
  const meaning =
    NETWORK_FAILURES[code] ??
    (/CERT|_SSL_|_TLS_/.test(code)
      ? 'the TLS handshake failed'
      : code.startsWith('HPE_')
        ? 'the response is not valid HTTP'
        : /^ERR_(INVALID|HTTP|UNESCAPED)/.test(code)
          ? 'the request is invalid'
          : 'a network error');
  return new FetchError(`fetch failed: ${meaning} (${code})`);
}

// The connection goes to the address validated here, never to a second resolution, so DNS rebinding cannot swap
// in a private address between the check and the connect.
function guardedLookup(policy: EgressPolicy, resolve: typeof dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { all: true, family: options.family }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 4);
      const denied = addresses.find((a) => !policy.allowsAddress(a.address));
      if (denied || addresses.length === 0) {
        return callback(
          new EgressDeniedError(`fetch to ${hostname} refused: it resolves to a private or reserved address`),
          '',
          4,
        );
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}

function checkTarget(url: URL, policy: EgressPolicy): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new EgressDeniedError(`fetch supports http and https only, not ${url.protocol}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && !policy.allowsHost(host) && !policy.allowsAddress(host)) {
    throw new EgressDeniedError(`fetch to ${host} refused: private or reserved address`);
  }
}

function once(
  request: FetchRequest,
  url: URL,
  limits: FetchLimits,
): Promise<Omit<FetchResult, 'redirected'> & { location?: string }> {
  return new Promise((resolve, settleFailed) => {
    const client = url.protocol === 'https:' ? https : http;
    const hostOk = limits.policy.allowsHost(url.hostname);
    // A name lookup cannot be cancelled: it holds one of libuv's few threads, shared by the whole process, until the
    // resolver answers (seconds, with a silent nameserver). So a request aborted or timed out while resolving fails
    // only once its lookup is over: its run's place among the calls in flight (host-bridge.ts) is held until then,
    // and a run that aborts fetch after fetch cannot pile up lookups beyond that limit.
    let lookingUp: Promise<void> | null = null;
    const names = guardedLookup(limits.policy, limits.resolve ?? dnsLookup);
    const lookup: LookupFunction = (hostname, options, callback) => {
      let done = () => {};
      lookingUp = new Promise((settled) => (done = settled));
      const settled = ((...args: Parameters<typeof callback>) => {
        done();
        callback(...args);
      }) as typeof callback;
      if (hostOk) (limits.resolve ?? dnsLookup)(hostname, options, settled);
      else names(hostname, options, settled);
    };
    const reject = (error: unknown) => {
      if (lookingUp) void lookingUp.then(() => settleFailed(error));
      else settleFailed(error);
    };
    const body =
      request.body === null
        ? undefined
        : 'text' in request.body
          ? Buffer.from(request.body.text)
          : Buffer.from(request.body.base64, 'base64');
    const req = client.request(url, {
      method: request.method,
      headers: Object.fromEntries(request.headers),
      lookup,
      signal: limits.signal,
      timeout: limits.timeoutMs,
      agent: false,
    });
    req.on('timeout', () => req.destroy(new FetchError(`fetch timed out after ${limits.timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooBig = false;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limits.maxResponseBytes) {
          if (!tooBig) reject(new FetchError(`fetch response exceeded ${limits.maxResponseBytes} bytes`));
          tooBig = true;
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        if (tooBig) return;
        const headers: [string, string][] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
          headers.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers,
          url: url.href,
          body: bodyOf(Buffer.concat(chunks)),
          location: typeof res.headers.location === 'string' ? res.headers.location : undefined,
        });
      });
    });
    req.end(body);
  });
}

/**
 * Performs a formula's fetch under the egress policy, the timeout and the response size cap. The timeout covers
 * the whole fetch, redirects and body included: a socket's idle timeout alone would let a server that sends a byte
 * now and then hold the call until its own deadline.
 */
export async function hostFetch(request: FetchRequest, limits: FetchLimits): Promise<FetchResult> {
  const deadline = AbortSignal.timeout(Math.ceil(limits.timeoutMs));
  try {
    return await follow(request, { ...limits, signal: AbortSignal.any([limits.signal, deadline]) });
  } catch (error) {
    if (deadline.aborted && !limits.signal.aborted)
      throw new FetchError(`fetch timed out after ${Math.ceil(limits.timeoutMs)} ms`);
    if (error instanceof FetchError || error instanceof EgressDeniedError) throw error;
    throw networkFailure(error);
  }
}

async function follow(request: FetchRequest, limits: FetchLimits): Promise<FetchResult> {
  let url = new URL(request.url);
  let current = request;
  for (let hop = 0; ; hop++) {
    checkTarget(url, limits.policy);
    const { location, ...result } = await once(current, url, limits);
    const isRedirect = result.status >= 300 && result.status < 400 && location !== undefined;
    if (!isRedirect || request.redirect === 'manual') return { ...result, redirected: hop > 0 };
    if (request.redirect === 'error') throw new FetchError(`fetch to ${url.href} was redirected`);
    if (hop >= MAX_REDIRECTS) throw new FetchError(`fetch exceeded ${MAX_REDIRECTS} redirects`);
    url = new URL(location, url);
    if (result.status === 303 || ((result.status === 301 || result.status === 302) && current.method === 'POST')) {
      current = { ...current, method: 'GET', body: null };
    }
  }
}
