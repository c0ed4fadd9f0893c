import { randomUUID } from 'node:crypto';
import { useEngine } from '@envelop/core';
import { execute, subscribe } from 'graphql';
import { createYoga } from 'graphql-yoga';
import type { Principal } from '../auth/service.ts';
import { type Logger, requestLog } from '../logger.ts';
import type { Services } from '../services.ts';
import type { GraphQLContext } from './context.ts';
import { maxRequestBodyBytes } from './fast-path.ts';
import { loggingMask, rateLimitedError } from './graphql-errors.ts';
import { useOperationCache } from './operation-cache.ts';
import { useQueryLimits } from './query-limits.ts';
import { useRequestCacheRelease, withContextCacheKey } from './request-cache-release.ts';
import { schema } from './schema.ts';
import type { HttpStreams } from './stream-keys.ts';

/** What the transport hands to context creation: an HTTP request, or graphql-ws connection params. */
interface TransportContext {
  request?: Request;
  connectionParams?: Record<string, unknown>;
  requestId?: string;
}

export function apiKeyFrom(headers: Headers | undefined, connectionParams?: Record<string, unknown>): string | null {
  const fromParams = connectionParams?.apiKey ?? connectionParams?.['BT-API-KEY'];
  if (typeof fromParams === 'string' && fromParams) return fromParams;
  const header = headers?.get('bt-api-key');
  if (header) return header;
  const authorization = headers?.get('authorization');
  const match = authorization ? /^Bearer\s+(.+)$/i.exec(authorization) : null;
  return match?.[1]?.trim() || null;
}

/**
 * The GraphQL context of a request. Synchronous when the key is absent or cached (almost every request): with a
 * plain value here, Yoga and envelop run an operation whose resolvers are synchronous (`{ __typename }`) without a
 * single promise, where a promise made each of their hooks (about ten) wait for a microtask (BENCHMARKS.md).
 */
export function createContext(
  services: Services,
  log: Logger,
  transport: TransportContext,
): GraphQLContext | Promise<GraphQLContext> {
  const key = apiKeyFrom(transport.request?.headers, transport.connectionParams);
  const isAdmin = services.auth.isAdminKey(key);
  const principal = isAdmin ? null : services.auth.authenticateNow(key);
  if (principal instanceof Promise)
    return principal.then((found) => contextOf(services, log, transport, found, isAdmin));
  return contextOf(services, log, transport, principal, isAdmin);
}

function contextOf(
  services: Services,
  log: Logger,
  transport: TransportContext,
  principal: Principal | null,
  isAdmin: boolean,
): GraphQLContext {
  const headers = transport.request?.headers;
  // Each HTTP request counts; a graphql-ws connection builds its context once and counts each subscribe instead
  // (src/server.ts).
  const retryAfter = principal && transport.request ? services.auth.admit(principal) : 0;
  if (retryAfter > 0) throw rateLimitedError(retryAfter, 'http');
  const requestId = transport.requestId ?? headers?.get('x-request-id') ?? randomUUID();
  const transactionIdHeader =
    headers?.get('bt-transaction-id') ??
    (typeof transport.connectionParams?.transactionId === 'string' ? transport.connectionParams.transactionId : null);
  return withContextCacheKey({
    principal,
    isAdmin,
    requestId,
    log: requestLog(log, { requestId, tenantId: principal?.tenantId, applicationId: principal?.applicationId }),
    services,
    transactionIdHeader,
  });
}

/** `streams` (src/graphql/stream-keys.ts) watches subscriptions over HTTP: their keys, and the shutdown. */
export function createGraphQLHandler(services: Services, log: Logger, streams: HttpStreams) {
  return createYoga<TransportContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    // No field takes a file. Served, a multipart body also slipped past the Idempotency-Key (src/idempotency/),
    // which reads the POST forms the API documents: a retried multipart mutation ran twice.
    multipart: false,
    graphiql: { title: 'reactor-gateway', subscriptionsProtocol: 'WS' },
    logging: false,
    // The same limit as the fast path (args up to maxArgsBytes plus room for the rest); Yoga answers 413 above it.
    maxRequestBodySize: maxRequestBodyBytes(services.config.limits.maxArgsBytes),
    context: (initial) => createContext(services, log, initial),
    // Ours instead (src/graphql/operation-cache.ts says why), last in `plugins` as Yoga's sits after them.
    parserAndValidationCache: false,
    maskedErrors: {
      maskError: loggingMask(log),
    },
    plugins: [
      // graphql-js executes, not Yoga's default @graphql-tools executor: the pinned one (the newest that runs on
      // Node 20) writes result fields in the order their resolvers finish, so `{ a b }` could answer `{ b, a }`.
      // The spec orders a response by the selection set; graphql-js does.
      useEngine({ execute, subscribe }),
      // Depth, alias, directive, cost and token limits (graphql-armor).
      ...useQueryLimits(),
      useOperationCache(),
      // A subscription over HTTP ends once its key is revoked or changed, or the gateway stops, as one over graphql-ws.
      streams.plugin,
      // Pothos' per-request caches would otherwise keep each request alive into the old generation.
      useRequestCacheRelease(),
    ],
  });
}

export type GraphQLHandler = ReturnType<typeof createGraphQLHandler>;
