import type { Principal } from '../auth/service.ts';
import type { RequestLog } from '../logger.ts';
import type { Services } from '../services.ts';

/** What every resolver sees: who is calling (already authenticated), the services, and a request-scoped logger. */
export interface GraphQLContext {
  principal: Principal | null;
  /** The operator key (`ADMIN_API_KEY`) was presented; it may only create tenants. */
  isAdmin: boolean;
  requestId: string;
  log: RequestLog;
  services: Services;
  /** `BT-TRANSACTION-ID` header, used when a mutation's `transactionId` argument is absent. */
  transactionIdHeader: string | null;
}

/** The authenticated principal of a field guarded by an auth scope (the scope guarantees it is there). */
export function principalOf(context: GraphQLContext): Principal {
  if (!context.principal) throw new Error('principalOf() called on a field without an authentication scope');
  return context.principal;
}
