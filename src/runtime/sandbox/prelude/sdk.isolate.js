// Our implementation of @basis-theory/basis-theory-reactor-formulas-sdk-js error classes. The brand lets the
// runtime tell a real SDK error from a look-alike without trusting properties the formula could fake on others.
const sdkBrands = new WeakMap();
const FALLBACK_ERROR = 'Something went wrong. Please try again. If the problem persists, please contact support.';

function stringifyEntry(entry) {
  if (entry !== null && typeof entry === 'object') return jsonStringify(entry);
  return entry === undefined || entry === null ? FALLBACK_ERROR : NativeString(entry);
}

// Mirrors the SDK: a string or an array becomes { error: [...] }, an object maps each field to a list of strings.
function sanitizeErrors(errors) {
  if (Array.isArray(errors)) return { error: errors.map(stringifyEntry) };
  if (typeof errors === 'string') return { error: [errors] };
  if (errors !== null && typeof errors === 'object') {
    const out = {};
    for (const key of Object.keys(errors)) {
      const value = errors[key];
      if (Array.isArray(value)) out[key] = value.map(stringifyEntry);
      else if (value !== null && typeof value === 'object') out[key] = [jsonStringify(value)];
      else out[key] = [value ? NativeString(value) : FALLBACK_ERROR];
    }
    return out;
  }
  if (errors) return { error: [NativeString(errors)] };
  return { error: [FALLBACK_ERROR] };
}

class BasisTheoryReactorError extends NativeError {
  constructor({ message, status, errors }) {
    super(message);
    this.name = 'BasisTheoryReactorError';
    this.status = status;
    this.errors = sanitizeErrors(errors);
  }
  toRFC7807() {
    return { detail: this.message, status: this.status, errors: this.errors };
  }
}

function sdkClass(name, kind, status, message) {
  const Cls = class extends BasisTheoryReactorError {
    constructor(errors) {
      super({ message, status, errors });
      this.name = name;
      sdkBrands.set(this, { kind, extra: (e) => ({ errors: e.errors }) });
    }
  };
  defineProperty(Cls, 'name', { value: name });
  return Cls;
}

const BadRequestError = sdkClass('BadRequestError', 'badRequest', 400, 'Bad Request');
const InvalidReactorConfigurationError = sdkClass(
  'InvalidReactorConfigurationError',
  'badRequest',
  400,
  'Invalid Reactor Configuration',
);
const AuthenticationError = sdkClass('AuthenticationError', 'unauthenticated', 401, 'Authentication Failed');
const InvalidPaymentMethodError = sdkClass(
  'InvalidPaymentMethodError',
  'invalidPaymentMethod',
  402,
  'Invalid Payment Method',
);
const AuthorizationError = sdkClass('AuthorizationError', 'forbidden', 403, 'Forbidden');
const RateLimitError = sdkClass('RateLimitError', 'rateLimited', 429, 'Rate Limit Exceeded');
const ServiceUnavailableError = sdkClass('ServiceUnavailableError', 'serviceUnavailable', 503, 'Service Unavailable');

class ReactorRuntimeError extends BasisTheoryReactorError {
  constructor(error) {
    const message =
      typeof error === 'string' ? error : error instanceof NativeError ? error.message : 'Reactor Runtime Error';
    super({ message, status: 500, errors: error instanceof NativeError ? error.message : error });
    this.name = 'ReactorRuntimeError';
    sdkBrands.set(this, { kind: 'runtime', extra: (e) => ({ errors: e.errors }) });
  }
}

class CustomHttpResponseError extends NativeError {
  constructor({ status, headers, body } = {}) {
    super();
    this.name = 'CustomHttpResponseError';
    const parsed = Number.parseInt(status);
    if (parsed !== status || parsed < 100 || parsed > 599) throw new NativeError('status is not a valid integer');
    this.status = parsed;
    this.headers = headers ?? {};
    this.body = body ?? {};
    this.message = `Reactor responded with HTTP ${parsed}`;
    sdkBrands.set(this, {
      kind: 'customHttpResponse',
      extra: (e) => ({
        status: e.status,
        detail: jsonStringify({ status: e.status, headers: e.headers, body: e.body }),
      }),
    });
  }
  toResponseBody() {
    return { status: this.status, headers: this.headers, body: this.body };
  }
}

const sdkModule = Object.freeze({
  BasisTheoryReactorError,
  BadRequestError,
  InvalidReactorConfigurationError,
  AuthenticationError,
  InvalidPaymentMethodError,
  AuthorizationError,
  RateLimitError,
  ReactorRuntimeError,
  ServiceUnavailableError,
  CustomHttpResponseError,
});
