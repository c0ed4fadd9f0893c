import type { Transaction as DbTransaction, Kysely } from 'kysely';
import type { Principal } from '../auth/service.ts';
import { newId } from '../db/ids.ts';
import { type Page, type PageRequest, toPage } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import { ConflictError, ForbiddenError, NotFoundError } from '../errors.ts';
import { mergePatch } from '../merge-patch.ts';
import { enlistInTransaction, readableTransactionId } from '../transactions/service.ts';
import * as transactionStore from '../transactions/store.ts';
import { DetokenizableRow } from './detokenizable-row.ts';
import { type DetokenizableToken, detokenize, planDataSites } from './expressions/index.ts';
import { covers, outOfReach, tokenizedOutOfReach } from './reach.ts';
import type { SealedArgs } from './sealing.ts';
import * as store from './store.ts';
import type { TokenRow } from './tables.ts';
import type { TokenCache } from './token-cache.ts';
import type { TokenType } from './token-data.ts';
import { type TokenFilter, validateTokenFilter } from './token-filter.ts';
import { type ValidTokenRequest, validateTokenRequest } from './token-input.ts';
import { planTokenization, type TokenizationPlan } from './tokenize.ts';
import type { Vault } from './vault.ts';

/** A token as a caller sees it. */
export interface Token {
  id: string;
  type: TokenType;
  /** The decrypted data, or null when the caller lacks `token:read` (nothing is decrypted then). */
  data: unknown;
  mask: unknown;
  fingerprint: string;
  metadata: Record<string, unknown>;
  containers: string[];
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  modifiedBy: string | null;
  modifiedAt: Date | null;
}

export interface CreateTokenInput {
  type: TokenType;
  data?: unknown;
  metadata?: Record<string, unknown> | null;
  containers?: string[] | null;
  expiresAt?: Date | null;
}

/** An RFC 7386 merge-patch of a token: absent keeps, null clears; `data` and `metadata` are merged key by key. */
export interface UpdateTokenPatch {
  data?: unknown;
  metadata?: Record<string, unknown> | null;
  containers?: string[] | null;
  expiresAt?: Date | null;
}

export type TokenService = ReturnType<typeof createTokenService>;

export function createTokenService(deps: {
  db: Kysely<Database>;
  vault: Vault;
  maxTokensPerRequest: number;
  /** Committed rows for detokenization without a transaction (src/tokens/token-cache.ts). */
  cache: TokenCache;
}) {
  const { db, vault, cache } = deps;

  /** Detokenization's one query, skipped for the ids the cache holds (only outside a transaction). */
  async function visibleTokens(tenantId: string, ids: string[], transactionId: string | null): Promise<TokenRow[]> {
    if (transactionId !== null) return store.findVisibleTokens(db, tenantId, ids, transactionId);
    const rows: TokenRow[] = [];
    const missing: string[] = [];
    for (const id of ids) {
      const row = cache.get(tenantId, id);
      if (row) rows.push(row);
      else missing.push(id);
    }
    if (missing.length === 0) return rows;
    const startedAt = cache.generation;
    const loaded = await store.findVisibleTokens(db, tenantId, missing, null);
    cache.fill(startedAt, loaded);
    return rows.concat(loaded);
  }

  function decryptData(row: TokenRow): unknown {
    return JSON.parse(vault.decrypt(row.tenant_id, row.id, row.data));
  }

  /** The live tokens of these ids the principal may detokenize (token:use, and their containers), or Forbidden. */
  async function usableTokens(principal: Principal, ids: string[], transactionId: string | null): Promise<TokenRow[]> {
    if (!principal.permissions.has('token:use')) {
      throw new ForbiddenError('Detokenizing args requires the token:use permission.');
    }
    const rows = await visibleTokens(principal.tenantId, ids, transactionId);
    const outside = rows.find((row) => !covers(principal, row.containers));
    if (outside) {
      throw new ForbiddenError(
        `Detokenizing token "${outside.id}" requires the token:use permission on one of its containers ` +
          `(${outside.containers.join(', ')}).`,
      );
    }
    return rows;
  }

  function toToken(principal: Principal, row: TokenRow, knownData?: unknown): Token {
    const mayRead = principal.permissions.has('token:read');
    return {
      id: row.id,
      type: row.type,
      data: mayRead ? (knownData !== undefined ? knownData : decryptData(row)) : null,
      mask: row.mask ?? null,
      fingerprint: row.fingerprint,
      metadata: row.metadata,
      containers: row.containers,
      createdBy: row.created_by,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      modifiedBy: row.modified_by,
      modifiedAt: row.modified_at,
    };
  }

  function toDetokenizable(row: TokenRow): DetokenizableToken {
    return new DetokenizableRow(row, decryptData(row));
  }

  function sealed(
    tenantId: string,
    id: string,
    request: ValidTokenRequest,
    createdBy: string,
    transactionId: string | null,
  ) {
    return {
      id,
      type: request.type,
      ...sealedChanges(tenantId, id, request),
      created_by: createdBy,
      transaction_id: transactionId,
    };
  }

  /** The columns a token's content fills: data sealed to (tenant, id), mask and fingerprint computed from it. */
  function sealedChanges(tenantId: string, id: string, request: ValidTokenRequest): store.TokenContent {
    return {
      data: vault.encrypt(tenantId, id, JSON.stringify(request.data)),
      mask: request.mask === null || request.mask === undefined ? null : JSON.stringify(request.mask),
      fingerprint: vault.fingerprint(tenantId, request.type, request.data),
      metadata: JSON.stringify(request.metadata),
      containers: request.containers,
      expires_at: request.expiresAt,
    };
  }

  /**
   * CONFLICT when another open transaction holds the token, for deletion or for an update: its write would be lost,
   * or would land on a version it never saw. An expired holder that the sweeper has not reached yet holds nothing.
   */
  async function refuseIfHeldElsewhere(
    trx: DbTransaction<Database>,
    tenantId: string,
    row: TokenRow,
    enlistedIn: string | null,
  ): Promise<void> {
    const holders = [row.deleting_transaction_id, await store.findPendingUpdate(trx, tenantId, row.id)];
    for (const holder of holders) {
      if (holder === null || holder === undefined || holder === enlistedIn) continue;
      const transaction = await transactionStore.findTransaction(trx, tenantId, holder);
      if (transaction?.current_status === 'OPEN') {
        throw new ConflictError('The token is held by another open transaction.', {
          errors: { id: ['is enlisted in another open transaction'] },
        });
      }
    }
  }

  /** Stores a tokenization plan's tokens in one database transaction (all or nothing); returns its result. */
  async function storePlan(
    principal: Principal,
    plan: TokenizationPlan,
    transactionId: string | null | undefined,
  ): Promise<unknown> {
    if (plan.tokens.length === 0) return plan.result;
    await inTransaction(principal, transactionId, async (trx, enlistedIn) => {
      const rows = plan.tokens.map(({ id, request }) =>
        sealed(principal.tenantId, id, request, principal.applicationId, enlistedIn),
      );
      await store.insertTokens(trx, principal.tenantId, rows);
    });
    return plan.result;
  }

  /** Runs `write` in one database transaction, enlisted in `transactionId` when one is given. */
  function inTransaction<T>(
    principal: Principal,
    transactionId: string | null | undefined,
    write: (trx: DbTransaction<Database>, enlistedIn: string | null) => Promise<T>,
  ): Promise<T> {
    return db.transaction().execute(async (trx) => {
      const enlistedIn = transactionId ? await enlistInTransaction(trx, principal.tenantId, transactionId) : null;
      return write(trx, enlistedIn);
    });
  }

  return {
    /**
     * Validates, encrypts and stores a token. Inside an open transaction it stays invisible to everyone else until
     * the transaction commits, and disappears if it rolls back.
     */
    async createToken(principal: Principal, input: CreateTokenInput, transactionId?: string | null): Promise<Token> {
      const request = validateTokenRequest(input, new Date());
      if (!covers(principal, request.containers)) throw outOfReach(principal, 'Creating', request);
      return inTransaction(principal, transactionId, async (trx, enlistedIn) => {
        const row = sealed(principal.tenantId, newId(), request, principal.applicationId, enlistedIn);
        const [stored] = await store.insertTokens(trx, principal.tenantId, [row]);
        return toToken(principal, stored as TokenRow, request.data);
      });
    },

    /** A live, visible token of the caller's tenant (committed, or pending in `transactionId`), or undefined. */
    async token(principal: Principal, id: string, transactionId?: string | null): Promise<Token | undefined> {
      const row = await store.findVisibleToken(db, principal.tenantId, id, readableTransactionId(transactionId));
      if (row && !covers(principal, row.containers)) throw outOfReach(principal, 'Reading', row);
      return row ? toToken(principal, row) : undefined;
    },

    /**
     * A page of the tenant's visible tokens (as `token` sees them: committed, or pending in `transactionId`, with its
     * pending updates) matching `filter`, oldest first. A bad filter -> BAD_REQUEST.
     */
    async listTokens(
      principal: Principal,
      filter: TokenFilter,
      page: PageRequest,
      transactionId?: string | null,
    ): Promise<Page<Token>> {
      const valid = validateTokenFilter(filter, principal.tokenContainers);
      const readable = readableTransactionId(transactionId);
      const { rows, hasNextPage } = toPage(
        await store.listVisibleTokens(db, principal.tenantId, valid, readable, page),
        page,
      );
      // Mapped after the page is cut: the extra row is never decrypted.
      return { rows: rows.map((row) => toToken(principal, row)), hasNextPage };
    },

    /** How many tokens `listTokens` would page through. */
    async countTokens(principal: Principal, filter: TokenFilter, transactionId?: string | null): Promise<number> {
      const valid = validateTokenFilter(filter, principal.tokenContainers);
      return store.countVisibleTokens(db, principal.tenantId, valid, readableTransactionId(transactionId));
    },

    /**
     * Deletes a token. Inside a transaction the delete is held until commit (the token stays visible to others until
     * then, and hidden inside the transaction at once); a token already held by another open transaction -> CONFLICT.
     * A token created in the same transaction is simply removed. Returns the token as it was.
     */
    async deleteToken(principal: Principal, id: string, transactionId?: string | null): Promise<Token> {
      const deleted = await inTransaction(principal, transactionId, async (trx, enlistedIn) => {
        const row = await store.lockVisibleToken(trx, principal.tenantId, id, enlistedIn);
        if (!row) throw new NotFoundError('Token not found.');
        if (!covers(principal, row.containers)) throw outOfReach(principal, 'Deleting', row);
        const deleted = toToken(principal, row);
        if (enlistedIn !== null && row.transaction_id === enlistedIn) {
          await store.deleteToken(trx, principal.tenantId, id);
          return deleted;
        }
        await refuseIfHeldElsewhere(trx, principal.tenantId, row, enlistedIn);
        if (enlistedIn !== null) await store.holdForDeletion(trx, principal.tenantId, id, enlistedIn);
        else await store.deleteToken(trx, principal.tenantId, id);
        return deleted;
      });
      // This instance's next react must not find it; other instances hear it from the database (migration 0006).
      cache.invalidate(principal.tenantId, [id]);
      return deleted;
    },

    /**
     * Changes a token by an RFC 7386 merge-patch (`data` and `metadata` merged key by key, `containers` and
     * `expiresAt` replaced, null clears), validated as createToken validates; its type is fixed. The data is sealed
     * again and its mask and fingerprint recomputed. Inside a transaction the new version is what the transaction
     * reads, and everyone else reads it from the commit on (a rollback or expiry drops it); a token created in the
     * same transaction is simply changed. A token another open transaction holds -> CONFLICT. Returns the new version.
     */
    async updateToken(
      principal: Principal,
      id: string,
      patch: UpdateTokenPatch,
      transactionId?: string | null,
    ): Promise<Token> {
      const updated = await inTransaction(principal, transactionId, async (trx, enlistedIn) => {
        const row = await store.lockVisibleToken(trx, principal.tenantId, id, enlistedIn);
        if (!row) throw new NotFoundError('Token not found.');
        // Also the guard against moving a token into reach: an application could otherwise change the containers
        // of any token to its own, and then detokenize it.
        if (!covers(principal, row.containers)) throw outOfReach(principal, 'Updating', row);
        await refuseIfHeldElsewhere(trx, principal.tenantId, row, enlistedIn);
        const request = validateTokenRequest(
          {
            type: row.type,
            data: patch.data === undefined ? decryptData(row) : mergePatch(decryptData(row), patch.data),
            metadata: patch.metadata === undefined ? row.metadata : mergePatch(row.metadata, patch.metadata),
            containers: patch.containers === undefined ? row.containers : patch.containers,
            // A kept expiry is not checked again: the token is live, by the database's clock.
            expiresAt: patch.expiresAt === undefined ? null : patch.expiresAt,
          },
          new Date(),
        );
        if (patch.expiresAt === undefined) request.expiresAt = row.expires_at;
        // Nor out of it: containers it cannot create a token in are containers it cannot move one into (a /pci/
        // card moved to /general/ would reach every application scoped there).
        if (!covers(principal, request.containers)) throw outOfReach(principal, 'Moving', { id, ...request });
        const changes: store.TokenChanges = {
          ...sealedChanges(principal.tenantId, row.id, request),
          modified_by: principal.applicationId,
          modified_at: new Date(),
        };
        if (enlistedIn === null || row.transaction_id === enlistedIn) {
          await store.updateToken(trx, principal.tenantId, row.id, changes);
        } else {
          await store.holdUpdate(trx, principal.tenantId, row.id, enlistedIn, changes);
        }
        const after = { ...row, ...changes, mask: request.mask ?? null, metadata: request.metadata };
        return toToken(principal, after, request.data);
      });
      // As for deletes: this instance's next react must read the new version; other instances hear it from the
      // database (migration 0006). A pending update changes nothing yet, and dropping the entry costs one read.
      cache.invalidate(principal.tenantId, [id]);
      return updated;
    },

    /**
     * For `react`: prepares `args` whose `{{ ... }}` expressions are replaced with token data. All referenced tokens
     * are loaded in one tenant-scoped query (live, committed or pending in `transactionId`); the caller needs
     * `token:use` (ForbiddenError otherwise) as soon as there is an expression, and `token:use` on one of each
     * token's containers. Unknown, expired, invisible and other tenants' ids are all reported alike by `detokenize`:
     * BAD_REQUEST naming the expression. More than `maxTokens` distinct tokens -> BAD_REQUEST. Every check is made
     * here, before anything runs.
     *
     * When every expression is a whole `{{ <id> }}` (the common case) the tokens are not decrypted here: they go to
     * the worker thread that runs the formula still sealed, with the tenant's data key, and are opened there
     * (`sealed`, `openSealedArgs` in src/tokens/sealing.ts). Otherwise `args` comes back rendered and `sealed` null.
     */
    async prepareArgs(
      principal: Principal,
      args: unknown,
      options: { transactionId?: string | null; maxTokens: number },
    ): Promise<{ args: unknown; sealed: SealedArgs | null }> {
      const plan = planDataSites(args, { maxTokens: options.maxTokens });
      if (plan.ids.length === 0) return { args, sealed: null };
      const transactionId = readableTransactionId(options.transactionId);
      const rows = await usableTokens(principal, plan.ids, transactionId);
      const indexOf = new Map(rows.map((row, index) => [row.id.toLowerCase(), index]));
      if (plan.sites === null || !plan.ids.every((id) => indexOf.has(id))) {
        // Liquid, interpolation or an unknown id (detokenize words that error): rendered here.
        const loaded = new Map(rows.map((row) => [row.id, toDetokenizable(row)]));
        return { args: await detokenize(args, async () => loaded, options), sealed: null };
      }
      return {
        args,
        sealed: {
          tenantId: principal.tenantId,
          key: vault.dataKey(principal.tenantId),
          // Only the row's own bytes: pg's bytea Buffers are views into an 8 KB pool slab.
          tokens: rows.map((row) => ({ id: row.id, data: latin1(row.data) })),
          sites: plan.sites.map(({ path, tokenId }) => ({ path, token: indexOf.get(tokenId) as number })),
        },
      };
    },

    /**
     * For `react`: turns a formula's `tokenize` block into tokens and returns the same shape with each tokenized
     * value replaced by its token id (the exact rule is `planTokenization`'s, in ./tokenize.ts). Validated as
     * createToken validates, at most `maxTokensPerRequest` tokens, stored in one database transaction (all or
     * nothing), inside `transactionId` when given. No permission is needed (the caller may invoke the reactor), but
     * an application with token containers gets only tokens they cover, as from createToken: otherwise a formula
     * that passes its args through would let it create tokens anywhere (FORBIDDEN, and nothing is stored).
     */
    async tokenizeResult(principal: Principal, tokenize: unknown, transactionId?: string | null): Promise<unknown> {
      const plan = planTokenization(tokenize, { now: new Date(), maxTokens: deps.maxTokensPerRequest, newId });
      const outside = plan.tokens.find((token) => !covers(principal, token.request.containers));
      if (outside) throw tokenizedOutOfReach(principal, outside.request);
      return storePlan(principal, plan, transactionId);
    },

    /**
     * The `tokenize` mutation (BT's Tokenize endpoint): the same rule as a formula's tokenize block, errors keyed
     * under `request`. The caller holds token:create; an application with token containers may create only tokens
     * they cover (FORBIDDEN, and nothing is stored).
     */
    async tokenize(principal: Principal, request: unknown, transactionId?: string | null): Promise<unknown> {
      const plan = planTokenization(request, {
        now: new Date(),
        maxTokens: deps.maxTokensPerRequest,
        newId,
        root: 'request',
      });
      const outside = plan.tokens.find((token) => !covers(principal, token.request.containers));
      if (outside) throw outOfReach(principal, 'Creating', outside.request);
      return storePlan(principal, plan, transactionId);
    },
  };
}

/** The bytes as a latin1 string, one character per byte (SealedArgs); PGlite gives bytea as a Uint8Array, pg a Buffer. */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
