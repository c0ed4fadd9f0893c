import type { Principal } from '../auth/service.ts';
import { isDatabaseUnavailable } from '../db/unavailable.ts';
import { BadRequestError, DomainError, errorFromShape, type FieldErrors, ServiceUnavailableError } from '../errors.ts';
import type { RequestParameter } from '../formulas/rules.ts';
import type { FormulaRuntime, LogLine } from '../runtime/pool.ts';
import type { SealedArgs } from '../tokens/sealing.ts';

/** A reactor with what running it needs, loaded in one query (src/reactors/service.ts). */
export interface LoadedReactor {
  reactor: {
    id: string;
    name: string;
    tenantId: string;
    configuration: Record<string, unknown>;
    /** How `configuration` breaks the formula's current contract (src/reactors/service.ts), or null. */
    configurationErrors: FieldErrors | null;
    applicationId: string | null;
  };
  formula: { id: string; code: string; codeHash: string; requestParameters: RequestParameter[] };
}

/** What the pipeline needs from the token vault (src/tokens/service.ts). */
export interface TokenPort {
  prepareArgs(
    principal: Principal,
    args: unknown,
    options: { transactionId?: string | null; maxTokens: number },
  ): Promise<{ args: unknown; sealed: SealedArgs | null }>;
  tokenizeResult(principal: Principal, tokenize: unknown, transactionId?: string | null): Promise<unknown>;
}

export interface ReactorOutput {
  raw: unknown;
  tokens: unknown;
  logs: LogLine[];
}

export interface PipelineDeps {
  runtime: FormulaRuntime;
  tokens: TokenPort;
  /** The check `react` makes of its transaction before the run (src/transactions/service.ts). */
  transactions: { requireOpen(principal: Principal, transactionId: string): Promise<void> };
  maxTokensPerRequest: number;
  /** `req.bt`: the endpoint and a short-lived key acting as the reactor's application, or null without one. */
  btFor(applicationId: string | null): { endpoint: string; apiKey: string } | null;
}

/**
 * The seeds' "Invalid Reactor Configuration" (400), for a reactor whose formula's contract changed after it was
 * written; `reactAsync` refuses it too, before queueing.
 */
export function refuseInvalidConfiguration(loaded: LoadedReactor): void {
  if (!loaded.reactor.configurationErrors) return;
  throw BadRequestError.forFields(
    loaded.reactor.configurationErrors,
    "The reactor's configuration no longer satisfies its formula's configuration contract (the formula was " +
      'changed after the reactor was written): update the reactor to match it.',
  );
}

/**
 * Steps 4-8 of DESIGN.md section 4, shared by `react` and the async runner: detokenize, validate and cast args
 * against the formula's request parameters, run the formula in the sandbox, tokenize its `tokenize` block. The
 * validation, and the decryption of plain `{{ <id> }}` tokens, happen on the worker thread just before the run.
 * Formula failures are thrown as the domain error of their code, carrying the formula's console output.
 */
export async function runReactor(
  deps: PipelineDeps,
  principal: Principal,
  loaded: LoadedReactor,
  args: unknown,
  options: {
    timeoutMs: number;
    transactionId: string | null;
    /** Called when the formula is handed to the sandbox: from then on, the run may have had effects. */
    onRun?: () => void;
  },
): Promise<ReactorOutput> {
  refuseInvalidConfiguration(loaded);
  // The run's tokens are written into the transaction after it: a bad one is refused before anything runs.
  if (options.transactionId) await deps.transactions.requireOpen(principal, options.transactionId);
  // Detokenizing and validating finish on the worker thread when the tokens can be opened there (prepareArgs).
  const prepared = await deps.tokens.prepareArgs(principal, args ?? {}, {
    transactionId: options.transactionId,
    maxTokens: deps.maxTokensPerRequest,
  });
  options.onRun?.();
  const outcome = await deps.runtime.run({
    tenantId: loaded.reactor.tenantId,
    formulaId: loaded.formula.id,
    code: loaded.formula.code,
    codeHash: loaded.formula.codeHash,
    args: prepared.args,
    sealedArgs: prepared.sealed,
    requestParameters: loaded.formula.requestParameters,
    configuration: loaded.reactor.configuration,
    bt: deps.btFor(loaded.reactor.applicationId),
    timeoutMs: options.timeoutMs,
  });
  if (!outcome.ok) {
    const error = errorFromShape(outcome.error);
    error.formulaLogs = outcome.logs;
    throw error;
  }
  const tokens =
    outcome.tokenize === undefined || outcome.tokenize === null
      ? null
      : await deps.tokens.tokenizeResult(principal, outcome.tokenize, options.transactionId).catch((error: unknown) => {
          // Unlike a 503 before the run, this one must not read as "try again" alone: the formula has run (and may
          // have charged a card), so the caller is told so before deciding to invoke it again.
          if (!isDatabaseUnavailable(error)) ranButLost(error);
          throw new ServiceUnavailableError(
            'The reactor ran, but the tokens of its result could not be stored (the database is unavailable), so ' +
              'its result is lost. Invoking it again runs the formula again.',
            { errors: { tokenize: ['could not be stored: the database is unavailable'] } },
          );
        });
  return { raw: outcome.raw ?? null, tokens, logs: outcome.logs };
}

/** The seeds' 5 MB payload limit, measured on the args as JSON. */
export function checkArgsSize(args: unknown, maxBytes: number): void {
  if (args === undefined || args === null) return;
  const bytes = Buffer.byteLength(JSON.stringify(args));
  if (bytes > maxBytes) {
    throw BadRequestError.forFields({ args: [`are ${bytes} bytes; the limit is ${maxBytes} bytes`] });
  }
}

/**
 * An error storing the run's tokenize output (its transaction expired meanwhile, the output is invalid), said to be
 * one that came after the run: the same CONFLICT as the check before the run would read as "nothing ran", and the
 * caller would invoke the reactor (and charge the card) again.
 */
function ranButLost(error: unknown): never {
  if (error instanceof DomainError && !error.message.startsWith('The reactor ran')) {
    throw errorFromShape({ ...error.toShape(), message: `The reactor ran, but its result is lost: ${error.message}` });
  }
  throw error;
}
