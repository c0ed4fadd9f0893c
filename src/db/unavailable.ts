/**
 * Whether an error means the database could not be reached or went away mid-query (a restart, a failover, a network
 * cut), as opposed to a query it refused. Such errors are nobody's mistake and pass: the API answers them as
 * SERVICE_UNAVAILABLE (503) rather than as an unexpected failure, and the job runner retries storing an outcome.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code } = error as { code?: unknown };
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return true;
    // SQLSTATE class 08 (connection exception), and a server shutting down, starting up or out of connections.
    if (/^08[0-9A-Z]{3}$/.test(code) || SERVER_STATES.has(code)) return true;
  }
  // Node reports a refused connection to every address of a name as one AggregateError.
  if (error instanceof AggregateError && error.errors.some(isDatabaseUnavailable)) return true;
  // pg's own messages for a connection that ended or never came up.
  return PG_MESSAGES.some((message) => error.message.startsWith(message));
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);
const SERVER_STATES = new Set(['57P01', '57P02', '57P03', '53300']);
const PG_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
];
