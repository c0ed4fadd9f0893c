import type { AuthService } from './auth/service.ts';
import type { Config } from './config.ts';

/**
 * Every feature's service, built once in app.ts and handed to resolvers through the GraphQL context.
 * A feature adds its service here.
 */
export interface Services {
  config: Config;
  auth: AuthService;
}
