import { createSourceEventStream, type ExecutionArgs, type ExecutionResult, execute, type GraphQLError } from 'graphql';

/** Turns any error into what a client may see (Yoga's `maskedErrors.maskError`, ./graphql-errors.ts). */
export type MaskError = (error: unknown) => GraphQLError;

/**
 * `subscribe` for graphql-ws (src/server.ts): graphql-js's createSourceEventStream, then one small iterator that
 * executes each event and masks its errors.
 *
 * Why not the envelop pipeline's `subscribe`: an idle subscription keeps its iterator chain alive, and that chain
 * was graphql-js's mapAsyncIterator plus envelop's wrappers (useMaskedErrors' per-result mapping, the
 * onSubscribeError handler), each with its closures: about 3.5 KB per idle subscription (heap snapshots with 2,000
 * subscriptions: 7.7 KB each before, 4.0 after; BENCHMARKS.md, idle subscriptions). This does what that chain did
 * with Yoga's plugins as configured in ./yoga.ts, and no more:
 * - useEngine: graphql-js `subscribe`, i.e. createSourceEventStream and graphql-js `execute` of every event with
 *   the event as root value (the per-event execute never went through envelop's execute hooks either);
 * - useMaskedErrors: errors of the setup result and of every event's result go through `mask`, and so does an
 *   error the source stream throws (next() rejects with the masked error);
 * - Yoga's own hook that lets abort errors through unmasked;
 * - useResultProcessors' onSubscribe only marks HTTP requests (no `request` here).
 * Parse, validate (armor's limits), context and the auth scopes (Pothos, inside the resolvers) run as before.
 * test/graphql/ws-subscribe.test.ts fails when a plugin with an onSubscribe hook is added, so that whoever adds
 * one decides whether graphql-ws needs it too.
 */
export async function subscribeMasked(
  args: ExecutionArgs,
  mask: MaskError,
): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const resultOrStream = await createSourceEventStream(args);
  if (!isAsyncIterable(resultOrStream)) return maskResult(resultOrStream, mask);
  return new ExecutedEvents(resultOrStream[Symbol.asyncIterator](), args, mask);
}

/** Each source event executed against the subscription's selection (graphql-js's mapSourceToResponse), masked. */
class ExecutedEvents implements AsyncIterableIterator<ExecutionResult> {
  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly args: ExecutionArgs,
    private readonly mask: MaskError,
  ) {}

  next(): Promise<IteratorResult<ExecutionResult>> {
    return this.source.next().then(
      (step) => this.map(step),
      (error: unknown) => {
        throw isAbortError(error) ? error : this.mask(error);
      },
    );
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    if (typeof this.source.return !== 'function') return Promise.resolve({ value: undefined, done: true });
    return this.source.return().then((step) => this.map(step));
  }

  async throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    if (typeof this.source.throw === 'function') return this.map(await this.source.throw(error));
    await this.closeSource();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private async map(step: IteratorResult<unknown>): Promise<IteratorResult<ExecutionResult>> {
    if (step.done) return step;
    try {
      const result = await execute({ ...this.args, rootValue: step.value });
      return { value: maskResult(result, this.mask), done: false };
    } catch (error) {
      // As graphql-js: a failed execution ends the source. (execute reports field errors in the result; it throws
      // only on arguments it was already given once, at subscribe.)
      await this.closeSource();
      throw isAbortError(error) ? error : this.mask(error);
    }
  }

  private async closeSource(): Promise<void> {
    try {
      await this.source.return?.();
    } catch {
      // Keep the original error when closing the source also fails.
    }
  }
}

/** useMaskedErrors' result handler: the errors masked, nothing else touched. */
function maskResult(result: ExecutionResult, mask: MaskError): ExecutionResult {
  if (result.errors == null) return result;
  return { ...result, errors: result.errors.map((error) => mask(error)) };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof (value as AsyncIterable<unknown> | null)?.[Symbol.asyncIterator] === 'function';
}

/** Yoga's isAbortError (not exported): a DOMException named AbortError or TimeoutError. */
function isAbortError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error?.constructor?.name === 'DOMException' &&
    ((error as DOMException).name === 'AbortError' || (error as DOMException).name === 'TimeoutError')
  );
}
