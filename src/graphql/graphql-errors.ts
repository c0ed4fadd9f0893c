import type http from 'node:http';
import { GraphQLError } from 'graphql';
import { isDatabaseUnavailable } from '../db/unavailable.ts';
import { DomainError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { GraphQLContext } from './context.ts';

/** UNAUTHENTICATED when no valid key came with the request, FORBIDDEN when the key lacks what the field needs. */
export function authorizationError(context: GraphQLContext, reason: string): GraphQLError {
  if (context.principal === null && !context.isAdmin) {
    return new GraphQLError('A valid API key is required (BT-API-KEY header or Authorization: Bearer).', {
      extensions: { code: 'UNAUTHENTICATED', status: 401 },
    });
  }
  return new GraphQLError(`Forbidden: ${describeReason(reason)}`, { extensions: { code: 'FORBIDDEN', status: 403 } });
}

/**
 * RATE_LIMITED (429) for an application over its rate limit, with the seconds to wait in `retryAfter`. Over HTTP it
 * is thrown before anything runs, so it is the request's only error, and the answer is HTTP 429 with `Retry-After`
 * (Yoga reads `extensions.http` and leaves it out of the body); a graphql-ws subscribe gets it without that part.
 */
export function rateLimitedError(retryAfterSeconds: number, transport: 'http' | 'ws'): GraphQLError {
  const http = { status: 429, headers: { 'Retry-After': String(retryAfterSeconds) } };
  return new GraphQLError(`Rate limit exceeded for this application; retry after ${retryAfterSeconds} s.`, {
    extensions: {
      code: 'RATE_LIMITED',
      status: 429,
      retryAfter: retryAfterSeconds,
      ...(transport === 'http' ? { http } : {}),
    },
  });
}

function describeReason(reason: string): string {
  // Pothos says e.g. `Not authorized to resolve Query.reactors`; name the missing permission instead when we can.
  return reason || 'the API key lacks the permission for this operation.';
}

/** A domain error thrown outside a union result (queries, subscriptions) becomes a GraphQL error with its code. */
export function toGraphQLError(error: DomainError): GraphQLError {
  return new GraphQLError(error.message, {
    originalError: error,
    extensions: { code: error.code, status: error.status, detail: error.detail, errors: error.errors },
  });
}

/**
 * Yoga's error mask: expected errors keep their code and message, everything else becomes "Unexpected error."
 * (logged with the request id by the caller), so no stack, SQL or secret reaches a client.
 */
export function maskError(error: unknown, onUnexpected: (error: unknown) => void): GraphQLError {
  const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  if (original instanceof DomainError) {
    const path = error instanceof GraphQLError ? error.path : undefined;
    return new GraphQLError(original.message, {
      path,
      extensions: { code: original.code, status: original.status, detail: original.detail, errors: original.errors },
    });
  }
  if (error instanceof GraphQLError && error.extensions?.code) {
    // Errors we built on purpose (auth, rate limit) and Yoga's parse and validation errors are safe as they are.
    return error;
  }
  if (
    error instanceof GraphQLError &&
    error.path === undefined &&
    (error.originalError === undefined || error.originalError instanceof GraphQLError)
  ) {
    // A request error graphql-js raises before execution starts: a variable missing, null where it may not be, or of
    // a value that does not fit its type (`"$id" got invalid value "x"; Value is not a valid UUID`, wrapping the
    // scalar's or enum's own GraphQLError), or an operation it cannot pick. It is the client's mistake and says only
    // what the client sent. A field error (with a path) whose cause is a GraphQLError, such as a scalar refusing to
    // serialize a resolver's value, is the server's, and stays masked.
    return new GraphQLError(error.message, {
      nodes: error.nodes,
      extensions: { code: 'BAD_REQUEST', status: 400, http: { spec: true, status: 400 } },
    });
  }
  if (error instanceof GraphQLError && !error.originalError) {
    // graphql-js's own field errors (a null for a non-null field): they name a field, not a secret.
    return error;
  }
  if (isWriteForDeletedTenant(original)) {
    // Another instance deleted the key's tenant (deleteTenant) and this one still trusts the key from its cache
    // (at most 5 s): the key is gone, which is what the client must hear, not a server failure.
    return new GraphQLError('The tenant of this key was deleted.', {
      path: error instanceof GraphQLError ? error.path : undefined,
      extensions: { code: 'UNAUTHENTICATED', status: 401, http: { status: 401 } },
    });
  }
  onUnexpected(original);
  if (isDatabaseUnavailable(original)) {
    // Not a bug to hide but an outage to report: the client may try again shortly.
    return new GraphQLError('The database is unavailable; try again shortly.', {
      path: error instanceof GraphQLError ? error.path : undefined,
      extensions: { code: 'SERVICE_UNAVAILABLE', status: 503, http: { status: 503 } },
    });
  }
  return new GraphQLError('Unexpected error.', {
    path: error instanceof GraphQLError ? error.path : undefined,
    extensions: { code: 'INTERNAL_SERVER_ERROR', status: 500 },
  });
}

/**
 * maskError logging what it hides: Yoga's `maskedErrors` (./yoga.ts) and graphql-ws subscriptions (src/server.ts).
 * During a database outage every request that needs the database fails alike; one line per `outageWindowMs` says
 * so, with the count of those not logged since the last, instead of a line (and a stack) for each of thousands.
 */
export function loggingMask(log: Logger, outageWindowMs = 10_000): (error: unknown) => GraphQLError {
  let quietUntil = 0;
  let unlogged = 0;
  const report = (original: unknown) => {
    if (!isDatabaseUnavailable(original)) {
      log.error({ err: original }, 'unexpected error while executing GraphQL');
      return;
    }
    const now = Date.now();
    if (now < quietUntil) {
      unlogged++;
      return;
    }
    log.error(
      { err: original, unloggedSinceLastReport: unlogged },
      `the database is unavailable: requests that need it get SERVICE_UNAVAILABLE (one line per ${outageWindowMs / 1000} s)`,
    );
    quietUntil = now + outageWindowMs;
    unlogged = 0;
  };
  return (error) => maskError(error, report);
}

/** A row written for a tenant that no longer exists: the foreign key to `tenants` refused it (SQLSTATE 23503). */
function isWriteForDeletedTenant(error: unknown): boolean {
  const { code, constraint } = (error ?? {}) as { code?: unknown; constraint?: unknown };
  return code === '23503' && typeof constraint === 'string' && constraint.endsWith('_tenant_id_fkey');
}

/** An HTTP answer made outside Yoga, shaped as Yoga's errors are: `{ errors: [{ message, extensions }] }`. */
export function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ errors: [{ message, extensions: { code, status } }] }));
}
