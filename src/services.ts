import type { AuthService } from './auth/service.ts';
import type { Config } from './config.ts';
import type { FormulaRuntime } from './runtime/pool.ts';

/**
 * Every feature's service, built once in app.ts and handed to resolvers through the GraphQL context.
 * A feature adds its service here.
 */
export interface Services {
  config: Config;
  auth: AuthService;
  /** The sandbox: runs formula code in isolates on worker threads. */
  runtime: FormulaRuntime;
}
