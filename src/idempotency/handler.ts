import { createHash, randomUUID } from 'node:crypto';
import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { getOperationAST, parse } from 'graphql';
import type { Kysely } from 'kysely';
import type { Principal } from '../auth/service.ts';
import type { Database } from '../db/tables.ts';
import { isDatabaseUnavailable } from '../db/unavailable.ts';
import { sendError } from '../graphql/graphql-errors.ts';
import { apiKeyFrom } from '../graphql/yoga.ts';
import type { Logger } from '../logger.ts';
import type { Vault } from '../tokens/vault.ts';
import * as store from './store.ts';
import type { IdempotentRequestRow } from './tables.ts';

/**
 * Idempotent mutations: a POST carrying `Idempotency-Key` (or Basis Theory's `BT-IDEMPOTENCY-KEY`) whose operation
 * is a mutation runs once per key and application; a retry with the same key and body gets the first response again
 * (with `Idempotent-Replayed: true`), so a client that lost a response to a timeout can send the mutation again
 * without creating a second token or running a reactor twice. As the IETF draft has it: the same key with another
 * body is 422, and while the first request still runs, 409.
 *
 * Only the response is kept (sealed with the tenant's key), for `retentionMs`. A response with a 5xx status, or a
 * 429 (the rate limit refused it before anything ran), is not kept: the key is given back, and a retry runs the
 * mutation. Queries, subscriptions, requests without a valid
 * API key and GET requests go through as if the header were absent. Such requests skip the HTTP fast path.
 *
 * The body may be any of the POST forms Yoga reads (JSON, `application/graphql`, a form; multipart is refused before
 * this, src/server.ts). A mutation sent with the
 * operator's key (ADMIN_API_KEY) is refused with 400: it belongs to no application or tenant to remember it under,
 * and serving it as if the header were absent would let a retried `createTenant` create a second tenant.
 */
export interface IdempotencyOptions {
  db: Kysely<Database>;
  vault: Vault;
  log: Logger;
  authenticate(key: string | null): Promise<Principal | null>;
  isAdminKey(key: string | null): boolean;
  /** The application's rate limit (0: go on; else seconds to wait), for answers the GraphQL endpoint does not give. */
  admit(principal: Principal): number;
  /** The GraphQL endpoint as a fetch handler (Yoga's). */
  fetch(request: Request, serverContext: { requestId: string }): Promise<Response> | Response;
  maxBodyBytes: number;
  retentionMs: number;
  /**
   * How long after its gateway stopped renewing it (the gateway died) a first request's key may be taken over by a
   * retry. Renewed every third of it while the request runs, so a retry never runs beside a first request still
   * going, however long that takes.
   */
  leaseMs: number;
}

export type Idempotency = ReturnType<typeof createIdempotency>;

export const IDEMPOTENCY_HEADERS = ['idempotency-key', 'bt-idempotency-key'] as const;
const MAX_KEY_LENGTH = 255;

/** The header's value when the request asks for idempotency (a POST with the header), else null. */
export function idempotencyKeyOf(req: http.IncomingMessage): string | null {
  if (req.method !== 'POST') return null;
  for (const name of IDEMPOTENCY_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') return value;
  }
  return null;
}

export function createIdempotency(options: IdempotencyOptions) {
  const { db, vault, log } = options;

  async function handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    serverContext: { requestId: string },
    key: string,
  ): Promise<void> {
    if (key.length === 0 || key.length > MAX_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
      return sendError(
        res,
        400,
        'BAD_REQUEST',
        `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} visible ASCII characters.`,
      );
    }
    const body = await readBody(req, options.maxBodyBytes);
    if (body === null) return sendError(res, 413, 'BAD_REQUEST', 'The request body is too large.');
    const request = new Request(`http://gateway${req.url ?? '/graphql'}`, {
      method: 'POST',
      headers: headersOf(req),
      body: body.toString('utf8'),
    });
    const mutation = isMutation(body, request.headers.get('content-type'));
    const apiKey = apiKeyFrom(request.headers);
    if (mutation && options.isAdminKey(apiKey)) {
      return sendError(
        res,
        400,
        'BAD_REQUEST',
        "Idempotency-Key cannot be used with the operator's key (ADMIN_API_KEY): its mutations are not remembered. " +
          'Send the request without it.',
      );
    }
    const principal = mutation ? await options.authenticate(apiKey) : null;
    // Not a mutation, or no valid key (the endpoint answers that): nothing to remember.
    if (!principal) return send(res, await options.fetch(request, serverContext));

    const fingerprint = fingerprintOf(body, request.headers, principal);
    const claim = {
      applicationId: principal.applicationId,
      tenantId: principal.tenantId,
      key,
      sealedFingerprint: vault.encrypt(
        principal.tenantId,
        store.idempotentFingerprintBoundId(principal.applicationId, key),
        JSON.stringify(fingerprint),
      ),
      token: randomUUID(),
      leaseMs: options.leaseMs,
      retentionMs: options.retentionMs,
    };
    if (!(await store.claim(db, claim))) {
      // Answered here, not by the endpoint, whose rate limit would otherwise never see replays and refusals.
      const retryAfter = options.admit(principal);
      if (retryAfter > 0) {
        res.setHeader('retry-after', String(retryAfter));
        return sendError(
          res,
          429,
          'RATE_LIMITED',
          `Rate limit exceeded for this application; retry after ${retryAfter} s.`,
        );
      }
      return answerRetry(res, claim, fingerprint);
    }
    // Renewed while the request runs, however long (a mutation may hold several `react` fields, run one after
    // another): a lease sized for one lapsed under such a request, and its retry ran everything a second time beside
    // it. Only a gateway that died stops renewing, and then a retry takes the key over.
    let leaseUntil = Date.now() + claim.leaseMs;
    const renewal = setInterval(
      () => {
        const renewing = Date.now();
        store.renewLease(db, claim).then(
          () => {
            leaseUntil = renewing + claim.leaseMs;
          },
          (error: unknown) => log.warn({ err: error }, 'renewing an idempotency lease failed'),
        );
      },
      Math.max(1, Math.floor(claim.leaseMs / 3)),
    );
    renewal.unref();
    let response: Response;
    let text: string;
    try {
      response = await options.fetch(request, serverContext);
      text = await response.text();
    } catch (error) {
      clearInterval(renewal);
      await store.release(db, claim).catch(() => {});
      throw error;
    }
    try {
      // A 5xx, or a 429 (the rate limit refused it before anything ran): not kept, so a retry runs.
      if (response.status >= 500 || response.status === 429) {
        await whileUnavailable(
          () => store.release(db, claim),
          () => leaseUntil,
        );
      } else {
        const sealed = vault.encrypt(claim.tenantId, store.idempotentResponseBoundId(claim.applicationId, key), text);
        const contentType = response.headers.get('content-type');
        const stored = { httpStatus: response.status, contentType, sealed };
        await whileUnavailable(
          () => store.complete(db, claim, stored),
          () => leaseUntil,
        );
      }
    } catch (error) {
      // The mutation ran and here is its answer: the caller gets it rather than a 500 that invites the retry which
      // would run it again. The key stays claimed until its lease runs out, so a retry meanwhile is answered 409.
      log.error({ err: error, idempotencyKey: key }, 'storing an idempotent response failed; answered without it');
    } finally {
      clearInterval(renewal);
    }
    res.writeHead(response.status, responseHeaders(response));
    res.end(text);
  }

  /**
   * A write tried again while the database is unreachable, as long as the claim's lease lasts (renewals need the
   * database too, so it may not be renewed meanwhile): a dropped connection at the end of a mutation that ran must
   * not cost its stored response. Past the lease a retry may hold the key, and the claim's writes no longer match.
   */
  async function whileUnavailable(write: () => Promise<void>, leaseUntil: () => number): Promise<void> {
    for (let waitMs = 100; ; waitMs = Math.min(waitMs * 2, 2_000)) {
      try {
        return await write();
      } catch (error) {
        if (!isDatabaseUnavailable(error) || Date.now() + waitMs > leaseUntil()) throw error;
        await sleep(waitMs);
      }
    }
  }

  async function answerRetry(res: http.ServerResponse, claim: store.Claim, fingerprint: Fingerprint): Promise<void> {
    const row = await store.find(db, claim.applicationId, claim.key);
    if (!row) {
      // Purged between the claim and this read (it had just expired): a retry will claim it.
      return sendError(res, 409, 'CONFLICT', 'The Idempotency-Key changed hands meanwhile; send the request again.');
    }
    const first = storedFingerprint(row);
    if (first.request !== fingerprint.request) {
      return sendError(
        res,
        422,
        'IDEMPOTENCY_KEY_REUSED',
        'This Idempotency-Key was used for another request: use a new key for a new request.',
      );
    }
    // The stored response was what the key could see then: a key whose access has changed since (a permission or a
    // token container taken away) would otherwise go on reading it, detokenized data included, for the retention.
    if (first.access !== null && first.access !== fingerprint.access) {
      return sendError(
        res,
        403,
        'FORBIDDEN',
        "This key's permissions or token containers changed after the first request with this Idempotency-Key, " +
          'so its response is not replayed: send the request with a new key.',
      );
    }
    if (row.status === 'RUNNING' || !row.response) {
      res.setHeader('retry-after', '1');
      return sendError(
        res,
        409,
        'CONFLICT',
        'A request with this Idempotency-Key is still running; send it again once it has answered.',
      );
    }
    const text = vault.decrypt(
      row.tenant_id,
      store.idempotentResponseBoundId(row.application_id, row.idempotency_key),
      row.response,
    );
    res.writeHead(row.http_status ?? 200, {
      'content-type': row.content_type ?? 'application/json; charset=utf-8',
      'idempotent-replayed': 'true',
    });
    res.end(text);
  }

  /** A row's fingerprint: sealed, or (written before migration 0017) a plain hash with no access recorded. */
  function storedFingerprint(row: IdempotentRequestRow): { request: string | null; access: string | null } {
    if (!row.sealed_fingerprint) return { request: row.request_hash, access: null };
    const boundId = store.idempotentFingerprintBoundId(row.application_id, row.idempotency_key);
    return JSON.parse(vault.decrypt(row.tenant_id, boundId, row.sealed_fingerprint)) as Fingerprint;
  }

  return {
    /** Answers the request; false when it does not ask for idempotency (the caller serves it as usual). */
    serve(req: http.IncomingMessage, res: http.ServerResponse, serverContext: { requestId: string }): boolean {
      const key = idempotencyKeyOf(req);
      if (key === null) return false;
      handle(req, res, serverContext, key).catch((error: unknown) => {
        log.error({ err: error }, 'an idempotent request failed');
        if (res.headersSent) res.destroy();
        // Before anything ran (claiming the key, reading a stored response): as the endpoint answers an outage.
        else if (isDatabaseUnavailable(error))
          sendError(res, 503, 'SERVICE_UNAVAILABLE', 'The database is unavailable; try again shortly.');
        else sendError(res, 500, 'INTERNAL_SERVER_ERROR', 'Unexpected error.');
      });
      return true;
    },

    purgeExpired: () => store.purgeExpired(db),
  };
}

/**
 * What a retry must match to be answered with the first response: the same request (`requestHash`), sent with the
 * same access (the key's permissions and token containers). Stored sealed, since the hash of a body holding a card
 * number whose bin and last four are known gives the number back by trying the million others.
 */
interface Fingerprint {
  request: string;
  access: string;
}

function fingerprintOf(body: Buffer, headers: Headers, principal: Principal): Fingerprint {
  return {
    request: requestHash(body, headers),
    access: JSON.stringify([[...principal.permissions].sort(), principal.tokenContainers]),
  };
}

/**
 * What makes two requests the same: the body, and the one header that changes what a mutation does (the transaction
 * its writes join), so a retry naming another transaction is refused rather than answered with the first's result.
 */
function requestHash(body: Buffer, headers: Headers): string {
  return createHash('sha256')
    .update(body)
    .update(`\n${headers.get('bt-transaction-id') ?? ''}`)
    .digest('hex');
}

/**
 * Whether the body is one GraphQL request whose operation is a mutation (anything else is served as usual), in any of
 * the POST forms Yoga reads: JSON, the document itself (`application/graphql`), or a form's `query` and
 * `operationName`. A body Yoga would refuse is no mutation here either.
 */
function isMutation(body: Buffer, contentType: string | null): boolean {
  try {
    const params = postedParams(body.toString('utf8'), (contentType ?? '').split(';')[0]!.trim().toLowerCase());
    if (typeof params.query !== 'string') return false;
    const name = typeof params.operationName === 'string' ? params.operationName : undefined;
    return getOperationAST(parse(params.query), name)?.operation === 'mutation';
  } catch {
    return false;
  }
}

function postedParams(text: string, mediaType: string): { query?: unknown; operationName?: unknown } {
  if (mediaType === 'application/graphql') return { query: text };
  if (mediaType === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(text);
    return { query: form.get('query') ?? undefined, operationName: form.get('operationName') ?? undefined };
  }
  return JSON.parse(text) as { query?: unknown; operationName?: unknown };
}

function headersOf(req: http.IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  return headers;
}

function responseHeaders(response: Response): Record<string, string> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'content-length' && name !== 'transfer-encoding') headers[name] = value;
  });
  return headers;
}

/** Streams the endpoint's response as it comes: a subscription over server-sent events never ends by itself. */
async function send(res: http.ServerResponse, response: Response): Promise<void> {
  res.writeHead(response.status, responseHeaders(response));
  if (!response.body) return void res.end();
  // Yoga's body may be a ponyfill stream (not one `Readable.fromWeb` takes); both iterate. A client that goes away
  // ends the iteration, and with it the subscription.
  const chunks = (response.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const stop = () => void chunks.return?.();
  res.once('close', stop);
  try {
    for (let next = await chunks.next(); !next.done && !res.destroyed; next = await chunks.next())
      res.write(next.value);
  } finally {
    res.off('close', stop);
    res.end();
  }
}

/** The whole body, or null when it is larger than `max` bytes. */
async function readBody(req: http.IncomingMessage, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
