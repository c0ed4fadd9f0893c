import type { Principal } from '../auth/service.ts';
import { pageRequest } from '../db/pagination.ts';
import type { ErrorShape } from '../errors.ts';
import {
  BadRequestError,
  ConflictError,
  ForbiddenError,
  InvalidPaymentMethodError,
  InvalidReactorCodeError,
  NotFoundError,
  RateLimitedError,
  ReactorInterruptedError,
  ReactorRuntimeError,
  ReactorTimeoutError,
  ServiceUnavailableError,
  UnauthenticatedError,
} from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { toConnection, totalCountFields } from '../graphql/connection.ts';
import { principalOf } from '../graphql/context.ts';
import { ErrorCodeEnum, FormulaLogLineRef } from '../graphql/error-types.ts';
import type { ReactorEvent } from './events.ts';
import type { ReactorOutput } from './pipeline.ts';
import type { ReactorRequestRow } from './tables.ts';

const ReactorResponseRef = builder.objectRef<ReactorOutput>('ReactorResponse').implement({
  description: 'What a reactor returned (seeds: Reactor Response Object).',
  fields: (t) => ({
    raw: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Raw output returned by the formula (plaintext, non-sensitive).',
      resolve: (output) => output.raw,
    }),
    tokens: t.field({
      type: 'JSON',
      nullable: true,
      description:
        "Tokens created from the formula's `tokenize` block, in the same shape, each value replaced by its token id.",
      resolve: (output) => output.tokens,
    }),
    logs: t.field({
      type: [FormulaLogLineRef],
      nullable: true,
      description:
        'Console output of the formula, only when the gateway runs in development mode (EXPOSE_FORMULA_LOGS).',
      resolve: (output, _args, context) => (context.services.config.exposeFormulaLogs ? output.logs : null),
    }),
  }),
});

const REACT_ERRORS = [
  BadRequestError,
  NotFoundError,
  ForbiddenError,
  ConflictError,
  UnauthenticatedError,
  InvalidPaymentMethodError,
  InvalidReactorCodeError,
  RateLimitedError,
  ReactorRuntimeError,
  ServiceUnavailableError,
  ReactorTimeoutError,
  // The worker running the formula died under it (another run crashed the thread): not retried.
  ReactorInterruptedError,
];

builder.mutationField('react', (t) =>
  t.field({
    type: ReactorResponseRef,
    description:
      'Invokes a reactor now: detokenizes `{{ }}` expressions in args, validates them against the formula, runs the ' +
      'formula in the sandbox and tokenizes its `tokenize` block. Needs `reactor:invoke` (legacy: `token:use`). ' +
      'For an application with `tokenContainers`, the tokens detokenized and the tokens created must lie in them ' +
      '(FORBIDDEN otherwise; when it is the created ones, the formula has already run).',
    authScopes: { anyPermission: ['reactor:invoke', 'token:use'] },
    errors: { types: REACT_ERRORS },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The reactor id.' }),
      args: t.arg({
        type: 'JSON',
        required: false,
        description: 'Arguments for the formula; may hold detokenization expressions.',
      }),
      transactionId: t.arg({
        type: 'UUID',
        required: false,
        description:
          'Create the tokenized output inside this transaction (or send the BT-TRANSACTION-ID header). It is checked ' +
          'before the formula runs: an unknown transaction is NOT_FOUND, one no longer open CONFLICT.',
      }),
    },
    resolve: (_root, args, context) =>
      context.services.invocations.react(
        principalOf(context),
        args.id,
        args.args,
        args.transactionId ?? context.transactionIdHeader,
      ),
  }),
);

const AsyncReactorRequestRef = builder.objectRef<ReactorRequestRow>('AsyncReactorRequest').implement({
  description: 'The receipt of `reactAsync`.',
  fields: (t) => ({
    asyncReactorRequestId: t.expose('id', {
      type: 'UUID',
      description: 'Id to read the result with (`reactorResult`) or to subscribe to it.',
    }),
  }),
});

builder.mutationField('reactAsync', (t) =>
  t.field({
    type: AsyncReactorRequestRef,
    description:
      'Queues a reactor invocation and returns at once. The args are stored as sent (expressions intact); a job ' +
      'runner detokenizes and runs it. Read the outcome with `reactorResult` or subscribe to it.',
    authScopes: { anyPermission: ['reactor:invoke', 'token:use'] },
    errors: { types: [BadRequestError, NotFoundError] },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The reactor id.' }),
      args: t.arg({
        type: 'JSON',
        required: false,
        description: 'Arguments for the formula; may hold detokenization expressions.',
      }),
      timeoutMs: t.arg.int({
        required: false,
        description: 'Maximum run time in milliseconds, 10000 to 210000 (default 10000).',
      }),
      callbackUrl: t.arg.string({
        required: false,
        description:
          'Deprecated in the seeds, still supported: POST the result here, signed with HMAC-SHA256 in the BT-SIGNATURE header.',
      }),
    },
    resolve: (_root, args, context) =>
      context.services.invocations.reactAsync(principalOf(context), args.id, args.args, {
        timeoutMs: args.timeoutMs,
        callbackUrl: args.callbackUrl,
      }),
  }),
);

const RequestStatusEnum = builder.enumType('AsyncReactorRequestStatus', {
  description: 'Where an async invocation stands.',
  values: {
    PENDING: { description: 'Queued, not yet claimed by a runner.' },
    RUNNING: { description: 'Claimed by a runner and running.' },
    COMPLETED: { description: 'Finished: `raw` and `tokens` hold the output.' },
    FAILED: { description: 'Finished with an error: see `error`.' },
  },
});

const ReactorErrorRef = builder.objectRef<ErrorShape>('ReactorError').implement({
  description: 'Why an invocation failed (the same fields as the `Error` interface).',
  fields: (t) => ({
    code: t.field({ type: ErrorCodeEnum, description: 'Machine-readable code.', resolve: (e) => e.code }),
    status: t.exposeInt('status', { description: 'HTTP-style status.' }),
    message: t.exposeString('message', { description: 'What went wrong.' }),
    detail: t.string({
      nullable: true,
      description: 'Further detail; for a `CustomHttpResponseError`, its `{ status, headers, body }` as JSON text.',
      resolve: (e) => e.detail ?? null,
    }),
    errors: t.field({
      type: 'JSONObject',
      nullable: true,
      description: 'Messages by field, as the formula SDK reports them.',
      resolve: (e) => e.errors ?? null,
    }),
  }),
});

const AsyncReactorResultRef = builder.objectRef<ReactorRequestRow>('AsyncReactorResult').implement({
  description: 'The state and outcome of an async invocation. Kept for the retention period (default 24 h).',
  fields: (t) => ({
    id: t.expose('id', { type: 'UUID', description: 'The async request id.' }),
    reactorId: t.expose('reactor_id', { type: 'UUID', description: 'The reactor invoked.' }),
    applicationId: t.expose('application_id', {
      type: 'UUID',
      description: 'The application whose key queued it; the run acts as that application.',
    }),
    status: t.field({ type: RequestStatusEnum, description: 'Current state.', resolve: (row) => row.status }),
    raw: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Raw output, once COMPLETED.',
      resolve: (row) => row.raw ?? null,
    }),
    tokens: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Tokens created from the `tokenize` block, once COMPLETED.',
      resolve: (row) => row.tokens ?? null,
    }),
    error: t.field({
      type: ReactorErrorRef,
      nullable: true,
      description: 'The failure, once FAILED.',
      resolve: (row) => row.error,
    }),
    logs: t.field({
      type: [FormulaLogLineRef],
      nullable: true,
      description:
        'Console output of the formula run, once COMPLETED or FAILED, only when the gateway runs in development mode ' +
        '(EXPOSE_FORMULA_LOGS); stored sealed with the tenant key, and not at all in production.',
      resolve: (row, _args, context) => context.services.invocations.logsOf(row),
    }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When it was queued.' }),
    startedAt: t.expose('started_at', { type: 'DateTime', nullable: true, description: 'When a runner started it.' }),
    completedAt: t.expose('completed_at', { type: 'DateTime', nullable: true, description: 'When it finished.' }),
  }),
});

builder.queryField('reactorResult', (t) =>
  t.field({
    type: AsyncReactorResultRef,
    nullable: true,
    description:
      "An async invocation's result; null for an unknown id (another tenant's ids included). An application with " +
      '`tokenContainers` reads only the invocations it queued itself.',
    authScopes: { anyPermission: ['reactor:invoke', 'token:use'] },
    args: {
      reactorId: t.arg({ type: 'UUID', required: true, description: 'The reactor id.' }),
      requestId: t.arg({ type: 'UUID', required: true, description: 'The `asyncReactorRequestId`.' }),
    },
    resolve: (_root, args, context) =>
      context.services.invocations.result(principalOf(context), args.reactorId, args.requestId),
  }),
);

builder.queryField('reactorResults', (t) =>
  t.connection(
    {
      type: AsyncReactorResultRef,
      description:
        "The tenant's async invocations still kept (for RESULT_RETENTION_MS after they finish, 24 h by default), " +
        'oldest first, optionally of one reactor or in one status: what is still queued, what failed. An ' +
        'application with `tokenContainers` sees only the invocations it queued itself.',
      authScopes: { anyPermission: ['reactor:invoke', 'token:use'] },
      args: {
        reactorId: t.arg({ type: 'UUID', description: 'Only the invocations of this reactor.' }),
        status: t.arg({ type: RequestStatusEnum, description: 'Only the invocations in this status.' }),
      },
      resolve: async (_root, args, context) => {
        const principal = principalOf(context);
        const page = pageRequest(args, context.services.config.limits.pageSize);
        const filter = { reactorId: args.reactorId, status: args.status };
        const result = await context.services.invocations.listResults(principal, filter, page);
        return toConnection(result, page.afterId !== null, () =>
          context.services.invocations.countResults(principal, filter),
        );
      },
    },
    {
      name: 'AsyncReactorResultConnection',
      description: 'A page of async invocations.',
      fields: totalCountFields('Number of kept async invocations matching the filter (computed only when selected).'),
    },
    { name: 'AsyncReactorResultEdge', description: 'An async invocation in a page of them.' },
  ),
);

const InvocationTypeEnum = builder.enumType('InvocationType', {
  description: 'How a reactor was invoked.',
  values: { SYNC: { description: 'By `react`.' }, ASYNC: { description: 'By `reactAsync`.' } },
});

const HIDDEN_MESSAGE =
  "Hidden: this key may not read invocations' outcomes (reactor:invoke or token:use), and a formula's message may " +
  'hold the data it was given.';

/**
 * An event's error as `principal` may see it: as `reactorResult` is read only with `reactor:invoke` or `token:use`,
 * so is the message of a failure; a key with only `reactor:read` (a dashboard's) sees its code and status.
 */
function eventErrorFor(principal: Principal, error: ErrorShape | null): ErrorShape | null {
  if (!error || principal.permissions.has('reactor:invoke') || principal.permissions.has('token:use')) return error;
  return { ...error, message: HIDDEN_MESSAGE, detail: null, errors: null };
}

const ReactorEventRef = builder.objectRef<ReactorEvent>('ReactorEvent').implement({
  description: 'Something that happened to a reactor invocation of your tenant.',
  fields: (t) => ({
    type: t.exposeString('type', { description: '`reactor.invoked`, `reactor.completed` or `reactor.failed`.' }),
    reactor: t.field({
      type: builder.objectRef<ReactorEvent['reactor']>('ReactorEventReactor').implement({
        description: 'The reactor an event is about.',
        fields: (f) => ({
          id: f.expose('id', { type: 'UUID', description: 'The reactor id.' }),
          name: f.exposeString('name', { description: 'Its name when the event happened.' }),
        }),
      }),
      description: 'The reactor.',
      resolve: (event) => event.reactor,
    }),
    request: t.field({
      type: builder.objectRef<ReactorEvent['request']>('ReactorEventRequest').implement({
        description: 'The invocation an event is about.',
        fields: (f) => ({
          id: f.expose('id', { type: 'UUID', description: 'The request id (for ASYNC: the `asyncReactorRequestId`).' }),
          invocationType: f.field({
            type: InvocationTypeEnum,
            description: 'SYNC or ASYNC.',
            resolve: (r) => r.invocationType,
          }),
          applicationId: f.expose('applicationId', {
            type: 'UUID',
            description: 'The application whose key invoked the reactor (for ASYNC: queued it).',
          }),
        }),
      }),
      description: 'The invocation.',
      resolve: (event) => event.request,
    }),
    elapsedMs: t.int({
      nullable: true,
      description: 'Run time, on completed and failed events.',
      resolve: (e) => e.elapsedMs,
    }),
    error: t.field({
      type: ReactorErrorRef,
      nullable: true,
      description:
        'The failure, on failed events. Its `message` and `detail` are shown only to keys that may read ' +
        "invocations' outcomes (`reactor:invoke` or `token:use`): a formula's message may hold the data it was " +
        'given. Other keys read a fixed text in `message`, and no `detail`.',
      resolve: (e, _args, context) => eventErrorFor(principalOf(context), e.error),
    }),
    occurredAt: t.field({ type: 'DateTime', description: 'When it happened.', resolve: (e) => e.occurredAt }),
  }),
});

builder.subscriptionField('reactorResult', (t) =>
  t.field({
    type: AsyncReactorResultRef,
    description:
      'Every state of an async invocation from now on (the current one first), completing after COMPLETED or FAILED. ' +
      'An application with `tokenContainers` may follow only the invocations it queued itself.',
    authScopes: { anyPermission: ['reactor:invoke', 'token:use'] },
    args: { requestId: t.arg({ type: 'UUID', required: true, description: 'The `asyncReactorRequestId`.' }) },
    subscribe: (_root, args, context) =>
      context.services.invocations.resultUpdates(principalOf(context), args.requestId),
    resolve: (row) => row,
  }),
);

builder.subscriptionField('reactorEvents', (t) =>
  t.field({
    type: ReactorEventRef,
    description:
      "Live `reactor.invoked|completed|failed` events of your tenant's reactors, from every gateway instance. An " +
      'application with `tokenContainers` receives only the events of invocations it made itself.',
    authScopes: { permission: 'reactor:read' },
    args: { reactorId: t.arg({ type: 'UUID', required: false, description: 'Only events of this reactor.' }) },
    subscribe: (_root, args, context) =>
      context.services.invocations.events(principalOf(context), args.reactorId ?? null),
    resolve: (event) => event,
  }),
);

builder.queryField('webhookSigningSecret', (t) =>
  t.string({
    description:
      'The secret that signs `reactAsync` callbacks of your tenant: verify `BT-SIGNATURE` = hex HMAC-SHA256 of ' +
      '`<BT-TIMESTAMP header>.<raw body>` with this (hex-decoded) key. It is derived from the encryption key, so ' +
      'it changes when the operator rotates that (`rotate-encryption-key`).',
    authScopes: { permission: 'application:read' },
    resolve: (_root, _args, context) => context.services.invocations.webhookSigningSecret(principalOf(context)),
  }),
);
