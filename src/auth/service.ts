import { timingSafeEqual } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { LRUCache } from 'lru-cache';
import { newId } from '../db/ids.ts';
import { type PageRequest, toPage } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import { BadRequestError, ForbiddenError, NotFoundError } from '../errors.ts';
import { isStorableText, UNSTORABLE_TEXT } from '../storable-text.ts';
import { isContainerPath } from '../tokens/token-input.ts';
import { insertKeyedApplication, insertRecoveryApplication } from './keyed-application.ts';
import { generateApiKey, hashApiKey, keyPrefix, mintInvocationKey, verifyInvocationKey } from './keys.ts';
import { ALLOWED_PERMISSIONS, DEFAULT_PERMISSIONS, isPermission, type Permission } from './permissions.ts';
import { createRateLimiter, type RateLimitOptions } from './rate-limit.ts';
import * as store from './store.ts';
import type { ApplicationRow, ApplicationType, TenantRow } from './tables.ts';

/** pg_advisory_xact_lock key for bootstrapping (any constant; only bootstrapIfEmpty takes it). */
const BOOTSTRAP_LOCK = 0x7267_6274; // "rgbt"

/** Who is calling: resolved once per request from the API key. */
export interface Principal {
  tenantId: string;
  applicationId: string;
  applicationType: ApplicationType;
  permissions: ReadonlySet<Permission>;
  /** Where `token:use` applies: container paths covering a token's container and those below it; null: all. */
  tokenContainers: readonly string[] | null;
}

export interface CreatedTenant {
  tenant: TenantRow;
  managementKey: string;
  privateKey: string;
}

export type AuthService = ReturnType<typeof createAuthService>;

/** How long a resolved key is trusted without asking the database again; a deleted key dies within this on other instances. */
const KEY_CACHE_TTL_MS = 5_000;
const INVOCATION_KEY_TTL_MS = 5 * 60_000;

export function createAuthService(deps: {
  db: Kysely<Database>;
  adminApiKey: string | undefined;
  invocationKeySecret: Buffer;
  maxNameLength: number;
  rateLimit?: RateLimitOptions;
}) {
  const { db } = deps;
  const limiter = createRateLimiter(deps.rateLimit ?? { perSecond: 0, burst: 1 });
  const adminKey = deps.adminApiKey ? Buffer.from(deps.adminApiKey) : null;
  const adminKeyLength = deps.adminApiKey?.length ?? 0;
  // false caches a miss, so a flood of bad keys does not become a flood of queries.
  const keyCache = new LRUCache<string, Principal | false>({ max: 10_000, ttl: KEY_CACHE_TTL_MS });

  function toPrincipal(row: ApplicationRow): Principal {
    return {
      tenantId: row.tenant_id,
      applicationId: row.id,
      applicationType: row.type,
      permissions: new Set(row.permissions.filter(isPermission)),
      tokenContainers: row.token_containers,
    };
  }

  /** A tenant with its two applications, inside the caller's transaction. */
  async function insertTenant(
    trx: Kysely<Database>,
    name: string,
    keys: { managementKey?: string; privateKey?: string },
  ): Promise<CreatedTenant> {
    const tenant = await store.insertTenant(trx, { id: newId(), name });
    const management = await insertKeyedApplication(trx, {
      tenantId: tenant.id,
      name: 'Management',
      type: 'MANAGEMENT',
      permissions: DEFAULT_PERMISSIONS.MANAGEMENT,
      createdBy: null,
      key: keys.managementKey,
    });
    const backend = await insertKeyedApplication(trx, {
      tenantId: tenant.id,
      name: 'Private',
      type: 'PRIVATE',
      permissions: DEFAULT_PERMISSIONS.PRIVATE,
      createdBy: null,
      key: keys.privateKey,
    });
    return { tenant, managementKey: management.key, privateKey: backend.key };
  }

  /**
   * `authenticate` without the promise when the answer is known now (no key, or a cached one). The GraphQL
   * context factory uses it: a context built synchronously keeps Yoga's and envelop's whole pipeline synchronous
   * for an operation whose resolvers are, instead of one promise hop per plugin hook (BENCHMARKS.md).
   */
  function authenticateNow(key: string | null): Principal | null | Promise<Principal | null> {
    if (!key) return null;
    const invokedAs = verifyInvocationKey(deps.invocationKeySecret, key);
    const cacheKey = invokedAs ? `app:${invokedAs}` : hashApiKey(key);
    const cached = keyCache.get(cacheKey);
    if (cached !== undefined) return cached || null;
    return loadPrincipal(cacheKey, invokedAs);
  }

  async function loadPrincipal(cacheKey: string, invokedAs: string | null): Promise<Principal | null> {
    const row = invokedAs
      ? await db.selectFrom('applications').selectAll().where('id', '=', invokedAs).executeTakeFirst()
      : await store.findApplicationByKeyHash(db, cacheKey);
    const principal = row ? toPrincipal(row) : null;
    keyCache.set(cacheKey, principal ?? false);
    return principal;
  }

  /** Drops what the key cache holds for an application (its key and its reactors' invocation keys), after a change. */
  function forgetKeys(application: ApplicationRow): void {
    keyCache.delete(application.key_hash);
    keyCache.delete(`app:${application.id}`);
  }

  function validateName(name: string, field = 'name'): string {
    const trimmed = name.trim();
    if (!trimmed) throw BadRequestError.forFields({ [field]: ['is required'] });
    if (!isStorableText(trimmed)) throw BadRequestError.forFields({ [field]: [UNSTORABLE_TEXT] });
    if (trimmed.length > deps.maxNameLength) {
      throw BadRequestError.forFields({ [field]: [`must be at most ${deps.maxNameLength} characters`] });
    }
    return trimmed;
  }

  return {
    /** Resolves an API key (or a reactor's short-lived invocation key) to its principal; null when unknown. */
    async authenticate(key: string | null): Promise<Principal | null> {
      return authenticateNow(key);
    },

    /** `authenticate`, synchronous when the key is absent or cached (see the function). */
    authenticateNow,

    /** The principal of an application by id (async runs act as the application that queued them). */
    async principalFor(applicationId: string): Promise<Principal | null> {
      const row = await db.selectFrom('applications').selectAll().where('id', '=', applicationId).executeTakeFirst();
      return row ? toPrincipal(row) : null;
    },

    /**
     * Counts a request (or a subscription) of an authenticated application against its rate limit: 0 when it may
     * proceed, otherwise the seconds after which it may retry.
     */
    admit(principal: Principal): number {
      return limiter.take(principal.applicationId);
    },

    isAdminKey(key: string | null): boolean {
      // Equal strings have equal lengths: most keys (every application key) are told apart without a copy.
      if (!key || !adminKey || key.length !== adminKeyLength) return false;
      const given = Buffer.from(key);
      return given.length === adminKey.length && timingSafeEqual(given, adminKey);
    },

    /** A key for `req.bt` inside a formula run: acts as `applicationId` for a few minutes. */
    invocationKeyFor(applicationId: string): string {
      return mintInvocationKey(deps.invocationKeySecret, applicationId, INVOCATION_KEY_TTL_MS);
    },

    /** A tenant with a management and a private application; their keys are returned once. */
    async createTenant(
      name: string,
      keys: { managementKey?: string; privateKey?: string } = {},
    ): Promise<CreatedTenant> {
      const tenantName = validateName(name);
      return db.transaction().execute((trx) => insertTenant(trx, tenantName, keys));
    },

    /**
     * On an empty database: the default tenant. Returns its keys, or null when tenants already exist. Instances
     * starting together on one empty database take turns (a transaction-scoped advisory lock), so exactly one
     * creates it; without the lock both saw no tenant and the second died on the bootstrap keys' unique index.
     */
    async bootstrapIfEmpty(keys: { managementKey?: string; privateKey?: string }): Promise<CreatedTenant | null> {
      return db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`.execute(trx);
        if ((await store.countTenants(trx)) > 0) return null;
        return insertTenant(trx, 'Default tenant', keys);
      });
    },

    /** Operator only: a new MANAGEMENT key for a tenant that lost its own (./keyed-application.ts). */
    createManagementKey(tenantId: string): Promise<{ application: ApplicationRow; key: string }> {
      return insertRecoveryApplication(db, tenantId);
    },

    /** Operator only: every tenant, oldest first. */
    async listTenants(page: PageRequest) {
      return toPage(await store.listTenants(db, page), page);
    },

    countTenants(): Promise<number> {
      return store.countTenants(db);
    },

    /**
     * Operator only: deletes a tenant and everything it owns, in one transaction. Its keys stop working at once on
     * this instance and within the key cache's 5 s on others; reactor and token caches drop its rows through the
     * triggers that announce every delete.
     */
    async deleteTenant(id: string): Promise<TenantRow> {
      const { tenant, applications } = await db.transaction().execute((trx) => store.deleteTenant(trx, id));
      for (const application of applications) forgetKeys(application);
      if (!tenant) throw new NotFoundError('Tenant not found.');
      return tenant;
    },

    async getTenant(principal: Principal): Promise<TenantRow> {
      const tenant = await store.findTenant(db, principal.tenantId);
      if (!tenant) throw new NotFoundError('Tenant not found.');
      return tenant;
    },

    async getApplication(principal: Principal, id: string): Promise<ApplicationRow | undefined> {
      return store.findApplication(db, principal.tenantId, id);
    },

    async loadApplications(tenantId: string, ids: readonly string[]): Promise<ApplicationRow[]> {
      return store.findApplicationsByIds(db, tenantId, ids);
    },

    async createApplication(
      principal: Principal,
      input: {
        name: string;
        type: ApplicationType;
        permissions?: readonly string[] | null;
        tokenContainers?: readonly string[] | null;
      },
    ) {
      const name = validateName(input.name);
      const tokenContainers = validateTokenContainers(input.tokenContainers);
      const permissions = validatePermissions(input.type, input.permissions ?? DEFAULT_PERMISSIONS[input.type]);
      refuseEscalation(principal, input.type, permissions, 'grant');
      return insertKeyedApplication(db, {
        tenantId: principal.tenantId,
        name,
        type: input.type,
        permissions,
        tokenContainers,
        createdBy: principal.applicationId,
      });
    },

    async listApplications(principal: Principal, page: PageRequest) {
      return toPage(await store.listApplications(db, principal.tenantId, page), page);
    },

    countApplications(principal: Principal): Promise<number> {
      return store.countApplications(db, principal.tenantId);
    },

    async deleteApplication(principal: Principal, id: string): Promise<ApplicationRow> {
      const deleted = await db.transaction().execute(async (trx) => {
        const current = await store.findApplication(trx, principal.tenantId, id, { forUpdate: true });
        if (!current) throw new NotFoundError('Application not found.');
        refuseEscalation(principal, current.type, current.permissions.filter(isPermission), 'change');
        return store.deleteApplication(trx, principal.tenantId, id);
      });
      if (!deleted) throw new NotFoundError('Application not found.');
      forgetKeys(deleted);
      return deleted;
    },

    /**
     * Replaces an application's name, permissions and token containers (PUT: what is left out is not kept). Its type
     * is fixed: the permissions are checked against it. The key keeps working, with the new permissions: at once on
     * this instance, within the key cache's 5 s on others.
     */
    async updateApplication(
      principal: Principal,
      id: string,
      input: { name: string; permissions: readonly string[]; tokenContainers?: readonly string[] | null },
    ): Promise<ApplicationRow> {
      const name = validateName(input.name);
      const tokenContainers = validateTokenContainers(input.tokenContainers);
      const updated = await db.transaction().execute(async (trx) => {
        const current = await store.findApplication(trx, principal.tenantId, id, { forUpdate: true });
        if (!current) throw new NotFoundError('Application not found.');
        const permissions = validatePermissions(current.type, input.permissions);
        refuseEscalation(principal, current.type, current.permissions.filter(isPermission), 'change');
        refuseEscalation(principal, current.type, permissions, 'grant');
        return store.updateApplication(trx, principal.tenantId, id, {
          name,
          permissions,
          token_containers: tokenContainers,
          ...modifiedBy(principal),
        });
      });
      forgetKeys(updated);
      return updated;
    },

    /**
     * A new key for an application, returned once; the old one stops working at once on this instance, within 5 s
     * on others. The application keeps its id, so reactors that run as it (`req.bt`) keep it: the way to replace a
     * leaked key without deleting the application.
     */
    async regenerateApplicationKey(
      principal: Principal,
      id: string,
    ): Promise<{ application: ApplicationRow; key: string }> {
      const key = generateApiKey();
      const replaced = await db.transaction().execute(async (trx) => {
        const current = await store.findApplication(trx, principal.tenantId, id, { forUpdate: true });
        if (!current) throw new NotFoundError('Application not found.');
        // Its new key holds the application's permissions, so the caller must hold them too (as for a grant).
        refuseEscalation(principal, current.type, current.permissions.filter(isPermission), 'replace key');
        const application = await store.updateApplication(trx, principal.tenantId, id, {
          key_hash: hashApiKey(key),
          key_prefix: keyPrefix(key),
          ...modifiedBy(principal),
        });
        return { previous: current, application };
      });
      forgetKeys(replaced.previous);
      return { application: replaced.application, key };
    },
  };
}

const MAX_TOKEN_CONTAINERS = 50;

/** Container paths as tokens have them (`/pci/`, `/general/high/`); an empty list would make `token:use` useless. */
function validateTokenContainers(containers: readonly string[] | null | undefined): string[] | null {
  if (containers === undefined || containers === null) return null;
  const problems = containers
    .filter((container) => !isContainerPath(container))
    .map((container) => `${JSON.stringify(container)} is not a container path like "/pci/" (lowercase segments)`);
  if (containers.length === 0) problems.push('must not be empty (omit it to cover every container)');
  if (containers.length > MAX_TOKEN_CONTAINERS) problems.push(`must have at most ${MAX_TOKEN_CONTAINERS} entries`);
  if (problems.length > 0) throw BadRequestError.forFields({ tokenContainers: problems });
  return [...new Set(containers)];
}

/** The permissions asked for, each one the application type may hold (duplicates dropped). */
function validatePermissions(type: ApplicationType, requested: readonly string[]): Permission[] {
  const allowed = ALLOWED_PERMISSIONS[type];
  const refused = requested.filter((p) => !isPermission(p) || !allowed.includes(p));
  if (refused.length > 0) {
    throw BadRequestError.forFields({
      permissions: refused.map((p) => `"${p}" is not a permission a ${type} application may hold`),
    });
  }
  return [...new Set(requested as Permission[])];
}

/**
 * FORBIDDEN when a key would act beyond the management permissions it holds itself: give a MANAGEMENT application
 * permissions it lacks ('grant'), or change, delete ('change') or replace the key of ('replace key', which hands
 * the caller that key) one that holds permissions it lacks. Without this, a key holding only application:update
 * could grant itself reactor:delete, take the bootstrap key's place, or strip the tenant's administrator. PRIVATE
 * and PUBLIC applications hold token permissions no management key holds, and administering them is what a
 * management key is for, so they are not bounded by the caller's own permissions.
 */
function refuseEscalation(
  principal: Principal,
  type: ApplicationType,
  permissions: readonly Permission[],
  action: 'grant' | 'change' | 'replace key',
) {
  if (type !== 'MANAGEMENT') return;
  const missing = permissions.filter((permission) => !principal.permissions.has(permission));
  if (missing.length === 0) return;
  const lacks = `it lacks ${missing.join(', ')}.`;
  if (action === 'grant') {
    throw new ForbiddenError(`A MANAGEMENT application may be given only permissions the calling key holds; ${lacks}`);
  }
  const doing = action === 'change' ? 'Changing or deleting' : 'Replacing the key of';
  throw new ForbiddenError(
    `${doing} a MANAGEMENT application requires the calling key to hold all of its permissions; ${lacks}`,
  );
}

/** The audit columns of a change made by `principal`, now. */
function modifiedBy(principal: Principal): { modified_by: string; modified_at: Date } {
  return { modified_by: principal.applicationId, modified_at: new Date() };
}
