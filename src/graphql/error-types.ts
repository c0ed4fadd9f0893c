import {
  BadRequestError,
  ConflictError,
  type DomainError,
  ERROR_CODES,
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
import type { LogLine } from '../runtime/types.ts';
import { builder } from './builder.ts';

const codeDescriptions: Record<(typeof ERROR_CODES)[number], string> = {
  BAD_REQUEST: '400: invalid input, args, expression or configuration.',
  UNAUTHENTICATED: '401: missing, unknown or deleted API key (or a formula reported an authentication error).',
  INVALID_PAYMENT_METHOD: '402: the card or bank account was refused (reported by formula code).',
  FORBIDDEN: '403: the API key lacks the permission, or the object is read-only to it.',
  NOT_FOUND: '404: no such object for this tenant.',
  CONFLICT: '409: the object is in a state that does not allow the operation.',
  INVALID_REACTOR_CODE: '422: formula code does not compile or does not export a function.',
  RATE_LIMITED: '429: a rate limit was hit (here or in an API the formula called).',
  REACTOR_RUNTIME_ERROR: '500 (or the status the formula chose): formula code failed.',
  SERVICE_UNAVAILABLE:
    '503: a service is unavailable: formula code reported so, the gateway could not run or check the code now, or no job runner started an async request within JOB_MAX_QUEUE_MS (try again).',
  REACTOR_TIMEOUT: '504: formula code ran past its time limit and was stopped.',
  REACTOR_INTERRUPTED:
    '500: a run was interrupted (its worker thread or, for async runs, its runner died) and, being at-most-once, not retried.',
};

export const ErrorCodeEnum = builder.enumType('ErrorCode', {
  description: 'Machine-readable error codes, following the seeds (Basis Theory reactor error codes).',
  values: Object.fromEntries(ERROR_CODES.map((code) => [code, { description: codeDescriptions[code] }])),
});

export const FormulaLogLineRef = builder.objectRef<LogLine>('FormulaLogLine').implement({
  description: 'A line the formula wrote with console.log/warn/error.',
  fields: (t) => ({
    level: t.exposeString('level', { description: '`log`, `warn` or `error`.' }),
    message: t.exposeString('message', { description: 'The text (capped).' }),
  }),
});

export const ErrorInterface = builder.interfaceRef<DomainError>('Error').implement({
  description: 'An expected failure, returned as data in a mutation result union.',
  fields: (t) => ({
    message: t.exposeString('message', { description: 'Human-readable description of what went wrong.' }),
    code: t.field({ type: ErrorCodeEnum, description: 'Machine-readable code.', resolve: (error) => error.code }),
    status: t.exposeInt('status', { description: 'The HTTP-style status of this error (400, 404, 409, ...).' }),
    detail: t.string({
      nullable: true,
      description:
        'Further detail, when there is any. A formula that throws `CustomHttpResponseError` has its response here as ' +
        'JSON text, `{"status": ..., "headers": {...}, "body": ...}` (with `REACTOR_RUNTIME_ERROR` and its status).',
      resolve: (error) => error.detail,
    }),
    errors: t.field({
      type: 'JSONObject',
      nullable: true,
      description:
        'Messages by field (or `error`), e.g. `{ "name": ["is required"] }`, as the formula SDK reports them.',
      resolve: (error) => error.errors,
    }),
    logs: t.field({
      type: [FormulaLogLineRef],
      nullable: true,
      description:
        'Console output of the formula run that failed with this error, only when the gateway exposes formula logs ' +
        '(development mode, EXPOSE_FORMULA_LOGS); null for errors that did not come from a formula run.',
      resolve: (error, _args, context) => (context.services.config.exposeFormulaLogs ? error.formulaLogs : null),
    }),
  }),
});

const errorClasses = [
  [BadRequestError, 'The input was invalid; `errors` names each offending field.'],
  [UnauthenticatedError, 'Authentication failed.'],
  [InvalidPaymentMethodError, 'The payment method was refused.'],
  [ForbiddenError, 'The operation is not allowed for this API key or on this object.'],
  [NotFoundError, 'No such object exists for this tenant.'],
  [ConflictError, 'The object is in a state that forbids the operation.'],
  [InvalidReactorCodeError, 'Formula code does not compile or does not export a function.'],
  [RateLimitedError, 'A rate limit was hit.'],
  [ReactorRuntimeError, 'Formula code failed while running.'],
  [ServiceUnavailableError, 'A service the formula needs is unavailable.'],
  [ReactorTimeoutError, 'Formula code ran past its time limit.'],
  [ReactorInterruptedError, 'A run was interrupted before it finished and was not retried.'],
] as const;

for (const [ErrorClass, description] of errorClasses) {
  // The classes differ only in their code; each is an object type implementing `Error`.
  builder.objectType(ErrorClass as unknown as typeof BadRequestError, {
    name: ErrorClass.name,
    description,
    interfaces: [ErrorInterface],
    isTypeOf: (value) => value instanceof ErrorClass,
  });
}
