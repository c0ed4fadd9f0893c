import type { AuthService } from './auth/service.ts';
import type { Config } from './config.ts';
import type { FormulaService } from './formulas/service.ts';
import type { InvocationService } from './invocations/service.ts';
import type { ReactorService } from './reactors/service.ts';
import type { FormulaRuntime } from './runtime/pool.ts';
import type { TokenService } from './tokens/service.ts';
import type { TransactionService } from './transactions/service.ts';

/**
 * Every feature's service, built once in app.ts and handed to resolvers through the GraphQL context.
 * A feature adds its service here.
 */
export interface Services {
  config: Config;
  auth: AuthService;
  /** Tokens: create, read, delete; detokenizing react's args and tokenizing its results. */
  tokens: TokenService;
  /** Transactions of token writes, and the sweep of expired transactions and tokens. */
  transactions: TransactionService;
  formulas: FormulaService;
  reactors: ReactorService;
  /** The sandbox: runs formula code in isolates on worker threads. */
  runtime: FormulaRuntime;
  /** react, reactAsync, async results and live events. */
  invocations: InvocationService;
}
