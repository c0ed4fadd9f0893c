import { randomUUID } from 'node:crypto';
import http from 'node:http';
import {
  type DocumentNode,
  type ExecutionArgs,
  GraphQLError,
  type GraphQLFormattedError,
  getOperationAST,
} from 'graphql';
import type { Disposable } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { App } from './app.ts';
import type { GraphQLContext } from './graphql/context.ts';
import { createGraphQLFastPath, maxRequestBodyBytes } from './graphql/fast-path.ts';
import { loggingMask, rateLimitedError, sendError } from './graphql/graphql-errors.ts';
import { createSocketKeys } from './graphql/ws-keys.ts';
import { subscribeMasked } from './graphql/ws-subscribe.ts';
import { apiKeyFrom } from './graphql/yoga.ts';

export interface RunningServer {
  server: http.Server;
  url: string;
  /** Stop accepting, let in-flight requests finish, close sockets. The app (pool, database) is closed by its owner. */
  close(): Promise<void>;
}

/** How long `GET /ready` waits for the database's answer. */
const READY_TIMEOUT_MS = 900;

/** node:http with Yoga for HTTP and graphql-ws (subprotocol graphql-transport-ws) on the same port and path. */
export async function startServer(
  app: App,
  options: {
    port: number;
    host: string /** false sends every request through Yoga's own handler (tests). */;
    fastPath?: boolean;
    /** How often open graphql-ws sockets' keys are checked again (src/graphql/ws-keys.ts; tests shorten it). */
    keyRecheckMs?: number;
  },
): Promise<RunningServer> {
  const { yoga, log } = app;
  // Plain JSON POSTs skip Yoga's per-request stream machinery (src/graphql/fast-path.ts); the rest is Yoga's.
  const fastPath =
    options.fastPath === false
      ? () => false
      : createGraphQLFastPath(yoga, { maxBodyBytes: maxRequestBodyBytes(app.config.limits.maxArgsBytes) });
  // Set once close() is called: responses from then on end their connection instead of keeping it alive.
  let closing = false;
  const server = http.createServer((req, res) => {
    if (closing) res.setHeader('connection', 'close');
    if (req.url === '/health') return void sendJson(res, 200, { status: 'ok' });
    if (req.url === '/ready') {
      // Within a probe's usual timeout (Kubernetes: 1 s): a database whose connections are all stuck is not ready.
      const late = new Promise<never>((_, reject) => setTimeout(reject, READY_TIMEOUT_MS).unref());
      Promise.race([app.database.ping(), late]).then(
        () => sendJson(res, 200, { status: 'ready' }),
        () => sendJson(res, 503, { status: 'database unreachable' }),
      );
      return;
    }
    if (req.headers['content-type']?.toLowerCase().startsWith('multipart/')) {
      // Yoga answers 415 with an empty body (src/graphql/yoga.ts turns multipart off); this says why.
      return sendError(
        res,
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        'multipart/form-data is not accepted (no field takes a file): send the request as application/json.',
      );
    }
    const serverContext = { requestId: randomUUID() };
    if (app.idempotency.serve(req, res, serverContext)) return;
    if (fastPath(req, res, serverContext)) return;
    void yoga(req, res, serverContext);
  });
  // Keep-alive sockets would hold `server.close()` open for their idle timeout.
  server.keepAliveTimeout = 5_000;

  type Enveloped = ReturnType<typeof yoga.getEnveloped>;
  /** The connection's root value: how `execute` below finds the connection's pipeline (graphql-ws passes only args). */
  type Roots = { execute: Enveloped['execute'] };
  type ConnectionSession = { enveloped: Enveloped; contextValue: unknown; roots: Roots };
  async function openSession(connectionParams: Record<string, unknown> | undefined): Promise<ConnectionSession> {
    const enveloped = yoga.getEnveloped({ connectionParams, requestId: randomUUID() });
    return { enveloped, contextValue: await enveloped.contextFactory(), roots: { execute: enveloped.execute } };
  }
  // The same mask as Yoga's `maskedErrors` (src/graphql/yoga.ts), for subscriptions, which bypass envelop's
  // subscribe (src/graphql/ws-subscribe.ts says why).
  const mask = loggingMask(log);

  // The HTTP body limit for a graphql-ws message too (ws allows 100 MiB by default); a larger one closes the socket
  // with 1009 "Message Too Big" before it is buffered whole.
  const wsServer = new WebSocketServer({
    server,
    path: '/graphql',
    maxPayload: maxRequestBodyBytes(app.config.limits.maxArgsBytes),
  });
  const maxOperations = app.config.limits.wsMaxOperations;
  const socketKeys = createSocketKeys((key) => app.services.auth.authenticate(key), log, options.keyRecheckMs);
  const graphqlWs: Disposable = useServer(
    {
      onConnect: async (ctx) => {
        const key = apiKeyFrom(undefined, ctx.connectionParams);
        const principal = await app.services.auth.authenticate(key);
        if (!principal) {
          // The protocol's "Unauthorized": a socket without a valid key gets nothing.
          ctx.extra.socket.close(4401, 'Unauthorized');
          return false;
        }
        socketKeys.add(ctx.extra.socket, key!, principal);
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
        // Each subscription holds memory until it ends: one socket may not hold an unbounded number of them. Checked
        // before anything is awaited, so a burst of subscribe messages counts one by one. (graphql-ws has registered
        // this one already, and forgets it when it ends, however it ends.)
        if (Object.keys(ctx.subscriptions).length > maxOperations) {
          return [
            new GraphQLError(
              `At most ${maxOperations} operations may run at once on one graphql-ws socket; end some, or open another.`,
              { extensions: { code: 'BAD_REQUEST', status: 400 } },
            ),
          ];
        }
        // A key that stopped being valid (its application deleted, its key regenerated) or whose permissions changed
        // ends the socket it opened (src/graphql/ws-keys.ts).
        if (!(await socketKeys.stillValid(ctx.extra.socket))) {
          return [new GraphQLError('Unauthorized', { extensions: { code: 'UNAUTHENTICATED', status: 401 } })];
        }
        // One envelop pipeline and one context per connection, shared by its operations: a connection has one key,
        // and an idle subscription then holds little more than its own iterator (BENCHMARKS.md, idle subscriptions).
        const connection = ctx.extra as typeof ctx.extra & { session?: Promise<ConnectionSession> };
        connection.session ??= openSession(ctx.connectionParams);
        const { enveloped, contextValue, roots } = await connection.session;
        const { principal } = contextValue as GraphQLContext;
        const retryAfter = principal ? app.services.auth.admit(principal) : 0;
        if (retryAfter > 0) return [rateLimitedError(retryAfter, 'ws')];
        const { schema, parse, validate } = enveloped;
        // The client's mistakes in the document are an `error` message for this operation, with the code Yoga gives
        // them over HTTP. Thrown, they would end the whole socket with graphql-ws's 4500 "Internal server error".
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [withCode(error, 'GRAPHQL_PARSE_FAILED')];
          throw error;
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        if (!getOperationAST(document, payload.operationName)) {
          return [
            new GraphQLError('Could not determine what operation to execute.', {
              extensions: { code: 'OPERATION_RESOLUTION_FAILURE' },
            }),
          ];
        }
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue,
          rootValue: roots,
        };
        return args;
      },
      execute: (args) => (args.rootValue as Roots).execute(args),
      subscribe: (args) => subscribeMasked(args, mask),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map(withoutHttp) } : undefined,
      onError: (_ctx, _id, _payload, errors) => errors.map(withoutHttp),
    },
    wsServer,
  );
  // graphql-ws prints each socket's 'error' with console.error, stack and all, outside our logs. Such errors are
  // mostly a client's broken frames (too large, a bad opcode or UTF-8), which ws has already answered by closing the
  // socket (1009, 1002, 1007): a client could fill stderr at will. Registered after graphql-ws's own connection
  // listener, this one takes its place: a pino line (warn for a client's frames) and the same 4500 close otherwise.
  wsServer.on('connection', (socket) => {
    socket.removeAllListeners('error');
    socket.on('error', (error: Error & { code?: string }) => {
      if (error.code?.startsWith('WS_ERR_')) {
        log.warn({ code: error.code, message: error.message }, 'graphql-ws client sent a broken frame; socket closed');
        return;
      }
      log.error({ err: error }, 'graphql-ws socket error');
      socket.close(4500, 'Internal server error');
    });
  });

  // ws passes the HTTP server's errors (a port in use) on to the WebSocket server, where graphql-ws would print them
  // with console.error before failing every socket: the listen error below says it once, plainly.
  wsServer.removeAllListeners('error');
  wsServer.on('error', () => {
    // Only the HTTP server's own errors reach here (ws passes them on): reported by the listen below, or logged after.
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EADDRINUSE') return reject(error);
        reject(
          new Error(
            `Port ${options.port} on ${options.host} is already in use (another reactor-gateway, or another service): ` +
              'set PORT, or HOST, to a free one.',
          ),
        );
      });
      server.listen(options.port, options.host, () => resolve());
    });
  } catch (error) {
    socketKeys.close();
    await graphqlWs.dispose();
    throw error;
  }
  server.on('error', (error) => log.error({ err: error }, 'HTTP server error'));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host}:${port}/graphql`;
  app.setSelfUrl(`http://127.0.0.1:${port}/graphql`);
  log.info({ url }, 'reactor-gateway listening');

  return {
    server,
    url,
    async close() {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // A keep-alive connection whose response was in flight goes idle when it is sent, and would then hold the
      // close for its idle timeout (5 s): such connections are closed as they go idle.
      const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
      idleSweep.unref();
      server.closeIdleConnections();
      try {
        // Subscriptions over server-sent events would hold their connections until the client left.
        await app.endStreams();
        socketKeys.close();
        for (const socket of wsServer.clients) socket.close(1001, 'Server shutting down');
        await graphqlWs.dispose();
        wsServer.close();
        await closed;
      } finally {
        clearInterval(idleSweep);
      }
    },
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/**
 * An error as a graphql-ws message carries it. `extensions.http` tells Yoga which HTTP status to answer with (Yoga's
 * validation errors and our BAD_REQUEST for a mistyped variable set it); Yoga leaves it out of an HTTP body, and a
 * WebSocket message has no status for it to mean anything, so it is dropped here as well.
 */
function withoutHttp(error: GraphQLError): GraphQLFormattedError {
  const formatted = error.toJSON();
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const { http: _status, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

/** The error with `extensions.code` set, as Yoga sets it on HTTP (where a request carries it) and not over graphql-ws. */
function withCode(error: GraphQLError, code: string): GraphQLError {
  if (error.extensions.code !== undefined) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}
