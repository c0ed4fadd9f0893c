/**
 * Domain errors. Services throw these; the GraphQL layer turns them into union members of mutation results
 * (`@pothos/plugin-errors`) or into GraphQL errors with `extensions { code, status }` on queries.
 * Codes and statuses follow the seeds (DESIGN.md section 9).
 */
import type { LogLine } from './runtime/types.ts';

export const ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHENTICATED',
  'INVALID_PAYMENT_METHOD',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'INVALID_REACTOR_CODE',
  'RATE_LIMITED',
  'REACTOR_RUNTIME_ERROR',
  'SERVICE_UNAVAILABLE',
  'REACTOR_TIMEOUT',
  'REACTOR_INTERRUPTED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** `errors` maps a field name (or `error`) to its messages, as the formula SDK's `errors` does. */
export type FieldErrors = Record<string, string[]>;

/**
 * Field errors gathered one at a time, so that one BAD_REQUEST names every bad field; with a prefix, each key is
 * written under it (`data.number`, `tokenize.card.data.number`).
 */
export function collectFieldErrors(prefix = ''): { errors: FieldErrors; fail(field: string, message: string): void } {
  const errors: FieldErrors = {};
  return {
    errors,
    fail(field, message) {
      const key = prefix ? `${prefix}.${field}` : field;
      errors[key] = [...(errors[key] ?? []), message];
    },
  };
}

export interface ErrorShape {
  code: ErrorCode;
  status: number;
  message: string;
  detail?: string | null;
  errors?: FieldErrors | null;
}

export abstract class DomainError extends Error {
  abstract readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | null;
  readonly errors: FieldErrors | null;
  /**
   * What the formula wrote to the console before this error, when the error came from a formula run (the GraphQL
   * `logs` field shows it only where formula logs are exposed). Never part of `toShape`, so never stored.
   */
  formulaLogs: readonly LogLine[] | null = null;

  constructor(message: string, options: { status: number; detail?: string | null; errors?: FieldErrors | null }) {
    super(message);
    this.name = new.target.name;
    this.status = options.status;
    this.detail = options.detail ?? null;
    this.errors = options.errors ?? null;
  }

  toShape(): ErrorShape {
    return { code: this.code, status: this.status, message: this.message, detail: this.detail, errors: this.errors };
  }
}

type Options = { detail?: string | null; errors?: FieldErrors | null };

export class BadRequestError extends DomainError {
  readonly code = 'BAD_REQUEST' as const;
  constructor(message: string, options: Options = {}) {
    super(message, { status: 400, ...options });
  }
  /** One message per offending field: `BadRequestError.forFields({ name: ['is required'] })`. */
  static forFields(errors: FieldErrors, message = 'The request is invalid.'): BadRequestError {
    return new BadRequestError(message, { errors });
  }
}

export class UnauthenticatedError extends DomainError {
  readonly code = 'UNAUTHENTICATED' as const;
  constructor(message = 'A valid API key is required.', options: Options = {}) {
    super(message, { status: 401, ...options });
  }
}

export class InvalidPaymentMethodError extends DomainError {
  readonly code = 'INVALID_PAYMENT_METHOD' as const;
  constructor(message = 'Invalid payment method.', options: Options = {}) {
    super(message, { status: 402, ...options });
  }
}

export class ForbiddenError extends DomainError {
  readonly code = 'FORBIDDEN' as const;
  constructor(message = 'The API key lacks the permission for this operation.', options: Options = {}) {
    super(message, { status: 403, ...options });
  }
}

export class NotFoundError extends DomainError {
  readonly code = 'NOT_FOUND' as const;
  constructor(message = 'Not found.', options: Options = {}) {
    super(message, { status: 404, ...options });
  }
}

export class ConflictError extends DomainError {
  readonly code = 'CONFLICT' as const;
  constructor(message: string, options: Options = {}) {
    super(message, { status: 409, ...options });
  }
}

export class InvalidReactorCodeError extends DomainError {
  readonly code = 'INVALID_REACTOR_CODE' as const;
  constructor(message: string, options: Options = {}) {
    super(message, { status: 422, ...options });
  }
}

export class RateLimitedError extends DomainError {
  readonly code = 'RATE_LIMITED' as const;
  constructor(message = 'Rate limit exceeded.', options: Options = {}) {
    super(message, { status: 429, ...options });
  }
}

export class ReactorRuntimeError extends DomainError {
  readonly code = 'REACTOR_RUNTIME_ERROR' as const;
  constructor(message: string, options: Options & { status?: number } = {}) {
    super(message, { ...options, status: options.status ?? 500 });
  }
}

export class ServiceUnavailableError extends DomainError {
  readonly code = 'SERVICE_UNAVAILABLE' as const;
  constructor(message = 'Service unavailable.', options: Options = {}) {
    super(message, { status: 503, ...options });
  }
}

export class ReactorTimeoutError extends DomainError {
  readonly code = 'REACTOR_TIMEOUT' as const;
  constructor(message: string, options: Options = {}) {
    super(message, { status: 504, ...options });
  }
}

export class ReactorInterruptedError extends DomainError {
  readonly code = 'REACTOR_INTERRUPTED' as const;
  constructor(
    message = 'The reactor run was interrupted before it finished; it was not retried.',
    options: Options = {},
  ) {
    super(message, { status: 500, ...options });
  }
}

const byCode: Record<ErrorCode, new (message: string, options: Options & { status?: number }) => DomainError> = {
  BAD_REQUEST: BadRequestError,
  UNAUTHENTICATED: UnauthenticatedError,
  INVALID_PAYMENT_METHOD: InvalidPaymentMethodError,
  FORBIDDEN: ForbiddenError,
  NOT_FOUND: NotFoundError,
  CONFLICT: ConflictError,
  INVALID_REACTOR_CODE: InvalidReactorCodeError,
  RATE_LIMITED: RateLimitedError,
  REACTOR_RUNTIME_ERROR: ReactorRuntimeError,
  SERVICE_UNAVAILABLE: ServiceUnavailableError,
  REACTOR_TIMEOUT: ReactorTimeoutError,
  REACTOR_INTERRUPTED: ReactorInterruptedError,
};

/** Rebuilds a domain error from its plain shape (a stored async result, a sandbox outcome). */
export function errorFromShape(shape: ErrorShape): DomainError {
  const ErrorClass = byCode[shape.code] ?? ReactorRuntimeError;
  const error = new ErrorClass(shape.message, { detail: shape.detail, errors: shape.errors });
  if (error.status !== shape.status) (error as { status: number }).status = shape.status;
  return error;
}
