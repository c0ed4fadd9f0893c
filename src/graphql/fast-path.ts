import type http from 'node:http';
import type { GraphQLHandler } from './yoga.ts';

/**
 * A shorter road through Yoga for the request almost every client sends: `POST /graphql`, `application/json`, a
 * known Content-Length, one operation.
 *
 * Why it exists (profiled with `node --cpu-prof`, see BENCHMARKS.md): Yoga's node handler turns every request into
 * a WHATWG `Request` (with an abort controller and socket listeners) and, since graphql-yoga 5.24's default body
 * limit (graphql-hive/graphql-yoga#4580), pipes every body through a `TransformStream` (`stream.pipeline` with its
 * own `AbortController`, a `DOMException` when the pipeline finishes), then writes a `Response`. That per-request
 * stream and abort machinery, not GraphQL, was most of the cost of `{ __typename }`.
 *
 * What it keeps: everything from the parsed params onwards is Yoga's own code. `yoga.getResultForParams` runs the
 * `onParams` hooks (parameter checks), the envelop pipeline (`getEnveloped`: parse and validation caches, query
 * limits, our context factory, execute, error masking) and the `onExecutionResult` hooks; the `onResultProcess`
 * hooks then choose the result processor from the `accept` header as `yoga.handle` does (their choice is
 * remembered per accept value while Yoga's hook is the only one), and Yoga's processor serialises the result. Only
 * the reading of the body and the writing of the response are ours: the processor's string and headers go to the
 * socket without the WHATWG `Response` round trip when they are plain (see RecordedResponse).
 *
 * What it hands to Yoga untouched: other methods and paths, other content types, CORS (`origin`), chunked or
 * oversized bodies, `accept` asking for a stream (SSE, multipart). After the body is read: invalid JSON, batches
 * and any params Yoga would reject are replayed through `yoga.fetch` with the same bytes, so their error responses
 * are Yoga's. `test/graphql/fast-path.test.ts` proves the answers are byte-for-byte the same as Yoga's handler.
 */

/** The service takes args up to `maxArgsBytes` (5 MB); the rest of the operation needs a little room around them. */
export function maxRequestBodyBytes(maxArgsBytes: number): number {
  return maxArgsBytes + 1024 * 1024;
}

export interface FastPathOptions {
  /** Same limit as Yoga's `maxRequestBodySize`; a larger body goes to Yoga, which answers 413. */
  maxBodyBytes: number;
  endpoint?: string;
}

type ServerContext = { requestId: string };
type ResultProcessor = (
  result: unknown,
  api: GraphQLHandler['fetchAPI'],
  mediaType: string,
) => Response | Promise<Response>;

/**
 * Two members `yoga.handle` itself uses that Yoga's typings mark private. Pinned Yoga version (package.json); the
 * differential test fails if either changes shape.
 */
interface YogaInternals {
  maskedErrorsOpts: {
    maskError(error: unknown, message: string, isDev?: boolean): Error;
    errorMessage: string;
    isDev?: boolean;
  } | null;
  onResultProcessHooks: ((payload: {
    request: Request;
    acceptableMediaTypes: string[];
    result: unknown;
    setResult(next: unknown): void;
    resultProcessor: ResultProcessor | undefined;
    setResultProcessor(next: ResultProcessor, accepted: string): void;
    serverContext: object;
  }) => unknown)[];
}
type NodeHandler = (req: http.IncomingMessage, res: http.ServerResponse, context: ServerContext) => boolean;

const JSON_CONTENT_TYPE = /^application\/json\s*(;\s*charset=utf-8\s*)?$/i;
const DIGITS = /^\d+$/;
const PARAM_NAMES = new Set(['query', 'variables', 'operationName', 'extensions']);

/** Returns a handler that answers and returns true, or returns false (nothing read) so the caller uses Yoga. */
export function createGraphQLFastPath(yoga: GraphQLHandler, options: FastPathOptions): NodeHandler {
  const endpoint = options.endpoint ?? '/graphql';
  const { fetchAPI } = yoga;
  const internals = yoga as unknown as YogaInternals;
  const recordingFetchAPI = { ...fetchAPI, Response: RecordedResponse } as unknown as GraphQLHandler['fetchAPI'];
  /**
   * The processor chosen per `accept` value. With Yoga's own `onResultProcess` hook alone (no plugin adds one), the
   * choice for a result that is not a stream depends on the accept header only: the hook parses the header and
   * the last matching processor wins, the same for a query as for a subscription's error. Parsing the header on
   * every request was 4% of a trivial query's CPU. Anything else (another hook, a stream, a 406) asks the hooks.
   */
  const negotiated = new Map<string, { processor: ResultProcessor; mediaType: string }>();

  return (req, res, serverContext) => {
    const headers = req.headers;
    if (req.method !== 'POST' || req.url !== endpoint) return false;
    if (headers.origin !== undefined || headers['transfer-encoding'] !== undefined) return false;
    if (!JSON_CONTENT_TYPE.test(headers['content-type'] ?? '')) return false;
    if (!acceptsSingleResult(headers.accept)) return false;
    const declared = headers['content-length'];
    if (declared === undefined || !DIGITS.test(declared) || Number(declared) > options.maxBodyBytes) return false;

    readBody(
      req,
      Number(declared),
      (body) => {
        // A step that finished at once hands its value straight on: for a query whose resolvers are synchronous
        // the whole answer is written within the body's 'end' event, with no promise at all (BENCHMARKS.md).
        try {
          const answered = answer(req, res, serverContext, body);
          if (answered) answered.catch((error: unknown) => abandon(req, res, error));
        } catch (error) {
          abandon(req, res, error);
        }
      },
      (error) => abandon(req, res, error),
    );
    return true;
  };

  function answer(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    serverContext: ServerContext,
    body: Buffer,
  ): Promise<void> | undefined {
    const url = `http://${req.headers.host ?? 'localhost'}${req.url}`;
    const params = singleOperationParams(body);
    if (!params)
      return Promise.resolve(viaYoga(url, req, body, serverContext)).then((response) => writeResponse(res, response));

    // The body is already read; the Request only carries what the context factory and plugins look at.
    const request = new fetchAPI.Request(url, { method: 'POST', headers: req.headers as Record<string, string> });
    const context = { req, res, waitUntil: ignoreRejection, ...serverContext };
    let result: unknown;
    try {
      result = yoga.getResultForParams({ params, request }, context);
    } catch (error) {
      result = masked(error);
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (settled: unknown) => respond(res, request, settled, context),
        (error: unknown) => respond(res, request, masked(error), context),
      );
    }
    return respond(res, request, result, context);
  }

  /** What `yoga.handle` does with an error thrown outside execution: mask it (our maskError logs it). */
  function masked(error: unknown): { errors: unknown[] } {
    const masking = internals.maskedErrorsOpts;
    return { errors: [masking ? masking.maskError(error, masking.errorMessage, masking.isDev) : error] };
  }

  function respond(
    res: http.ServerResponse,
    request: Request,
    result: unknown,
    context: object,
  ): Promise<void> | undefined {
    const response = processResult(request, result, context);
    if (isThenable(response)) return Promise.resolve(response).then((settled) => write(res, settled));
    return write(res, response);
  }

  function write(res: http.ServerResponse, response: Response | RecordedResponse): Promise<void> | undefined {
    return response instanceof RecordedResponse ? writeRecorded(res, response, fetchAPI) : writeResponse(res, response);
  }

  /**
   * `yoga.handle`'s result step: the `onResultProcess` hooks pick a processor for the `accept` header, or 406. The
   * processor gets a fetch API whose `Response` only records what it was given (see RecordedResponse).
   */
  function processResult(
    request: Request,
    result: unknown,
    serverContext: object,
  ): Response | RecordedResponse | Promise<Response | RecordedResponse> {
    const accept = request.headers.get('accept') ?? '';
    const memoable = internals.onResultProcessHooks.length === 1 && !isStream(result);
    const known = memoable ? negotiated.get(accept) : undefined;
    if (known) return known.processor(result, recordingFetchAPI, known.mediaType);
    return negotiate(request, result, serverContext, accept, memoable);
  }

  async function negotiate(
    request: Request,
    result: unknown,
    serverContext: object,
    accept: string,
    memoable: boolean,
  ): Promise<Response | RecordedResponse> {
    const choice: ProcessorChoice = { result, processor: undefined, mediaType: '*/*' };
    const acceptableMediaTypes: string[] = [];
    const [setResult, setResultProcessor] = choiceSetters(choice);
    for (const hook of internals.onResultProcessHooks) {
      await hook({
        request,
        acceptableMediaTypes,
        result: choice.result,
        setResult,
        resultProcessor: choice.processor,
        setResultProcessor,
        serverContext,
      });
    }
    if (!choice.processor) {
      return new fetchAPI.Response(null, {
        status: 406,
        statusText: 'Not Acceptable',
        headers: { accept: acceptableMediaTypes.join('; charset=utf-8, ') },
      });
    }
    if (memoable && choice.result === result && negotiated.size < MAX_NEGOTIATED) {
      negotiated.set(accept, { processor: choice.processor, mediaType: choice.mediaType });
    }
    return choice.processor(choice.result, recordingFetchAPI, choice.mediaType);
  }

  /** Replays the bytes through Yoga's fetch handler: its error answers stay its own. */
  function viaYoga(url: string, req: http.IncomingMessage, body: Buffer, serverContext: ServerContext) {
    return yoga.fetch(
      url,
      { method: 'POST', headers: req.headers as Record<string, string>, body: new Uint8Array(body) },
      serverContext,
    );
  }
}

/** Accept values remembered by `processResult`; clients send a handful, and a flood of odd ones stops at this. */
const MAX_NEGOTIATED = 64;

/** Yoga's helpers hand back real promises and promise-likes of their own ("fake promises"); both have `then`. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

function isStream(result: unknown): boolean {
  return typeof result === 'object' && result !== null && Symbol.asyncIterator in result;
}

interface ProcessorChoice {
  result: unknown;
  processor: ResultProcessor | undefined;
  mediaType: string;
}

/**
 * The hooks' two setters. Returned in an array, not built as named closures: under tsx (esbuild's keepNames) a
 * closure bound to a name is renamed with `Object.defineProperty` each time it is made, once per request here.
 */
function choiceSetters(choice: ProcessorChoice) {
  return [
    (next: unknown) => {
      choice.result = next;
    },
    (next: ResultProcessor, accepted: string) => {
      choice.processor = next;
      choice.mediaType = accepted;
    },
  ] as const;
}

/**
 * What a result processor hands to `new Response(body, init)`, kept as given. Yoga's processor for a single JSON
 * result (`processRegularResult`) only ever constructs a Response from a string and a plain init, which is
 * written straight to the socket (writeRecorded); building a WHATWG Response, its Headers and its body stream only
 * to read them back cost about a fifth of a trivial query's JavaScript time. Anything else is turned into a real
 * Response and written the general way.
 */
class RecordedResponse {
  constructor(
    readonly body: unknown,
    readonly init: ResponseInit = {},
  ) {}
}

/**
 * Writes a recorded response as `sendNodeResponse` would write the Response it describes: the given headers, then a
 * content-length. Only for the plain case (a string body and only a content type); headers added by
 * `extensions.http` could repeat a name in another case, which the WHATWG Headers merge, so those take the
 * general path.
 */
function writeRecorded(
  res: http.ServerResponse,
  recorded: RecordedResponse,
  fetchAPI: GraphQLHandler['fetchAPI'],
): Promise<void> | undefined {
  const { body, init } = recorded;
  const headers = init.headers as Record<string, string> | undefined;
  const plain =
    typeof body === 'string' &&
    headers !== undefined &&
    Object.getPrototypeOf(headers) === Object.prototype &&
    Object.keys(headers).length === 1 &&
    typeof headers['Content-Type'] === 'string';
  if (!plain) {
    return writeResponse(res, new fetchAPI.Response(body as BodyInit | null, init));
  }
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(init.status ?? 200, init.statusText || undefined, {
    'Content-Type': headers['Content-Type']!,
    'content-length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** An `accept` Yoga would answer with one JSON document (not an SSE or multipart stream). */
function acceptsSingleResult(accept: string | undefined): boolean {
  if (accept === undefined) return true;
  const lower = accept.toLowerCase();
  return !lower.includes('text/event-stream') && !lower.includes('multipart/');
}

/**
 * The params of a single operation, shaped the way Yoga's parameter checks accept without comment; anything else
 * (invalid JSON, a batch, an unknown key, a non-string query) returns undefined so Yoga answers it itself.
 */
function singleOperationParams(body: Buffer): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const params = parsed as Record<string, unknown>;
  for (const key in params) if (!PARAM_NAMES.has(key)) return undefined;
  if (typeof params.query !== 'string') return undefined;
  if (!isOptional(params.operationName, 'string')) return undefined;
  if (!isOptionalObject(params.variables) || !isOptionalObject(params.extensions)) return undefined;
  return params;
}

function isOptional(value: unknown, type: 'string'): boolean {
  return value === undefined || value === null || typeof value === type;
}

function isOptionalObject(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'object' && !Array.isArray(value));
}

/** Reads exactly the declared length (Node's parser guarantees no more); a short body is an aborted request. */
function readBody(
  req: http.IncomingMessage,
  length: number,
  onBody: (body: Buffer) => void,
  onError: (error: unknown) => void,
): void {
  const chunks: Buffer[] = [];
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    chunks.push(chunk);
  });
  req.once('end', () => {
    if (received !== length) onError(new Error('request body shorter than its Content-Length'));
    else onBody(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
  });
  req.once('error', onError);
}

/** Only a broken socket (or a bug) gets here, the GraphQL errors being answers: nothing is left to answer to. */
function abandon(req: http.IncomingMessage, res: http.ServerResponse, error: unknown): void {
  if (!res.headersSent) res.writeHead(500);
  res.end();
  req.destroy(error instanceof Error ? error : undefined);
}

/** Writes a fetch Response the way whatwg-node's `sendNodeResponse` does for a buffered body. */
async function writeResponse(res: http.ServerResponse, response: Response): Promise<void> {
  if (res.destroyed || res.writableEnded) return;
  const body = response.body === null ? '' : await response.text();
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  if (headers['content-length'] === undefined) headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(response.status, response.statusText || undefined, headers);
  res.end(body);
}

function ignoreRejection(promise: Promise<unknown> | undefined): void {
  if (promise) promise.catch(() => {});
}
