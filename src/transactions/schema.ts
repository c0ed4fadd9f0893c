import { ConflictError, ForbiddenError, NotFoundError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { principalOf } from '../graphql/context.ts';
import type { Transaction } from './service.ts';

export const TransactionStatusEnum = builder.enumType('TransactionStatus', {
  description: 'Where a transaction stands.',
  values: {
    OPEN: { description: 'Accepts token writes; they are invisible outside it until commit.' },
    COMMITTED: { description: 'Its writes were applied, all at once.' },
    ROLLED_BACK: { description: 'Its writes were discarded.' },
    EXPIRED: { description: 'It reached `expiresAt` while open; its writes are (or are being) discarded.' },
  },
});

export const TransactionRef = builder.objectRef<Transaction>('Transaction').implement({
  description: 'A unit of token writes (creates, deletes) that become visible together on commit or not at all.',
  fields: (t) => ({
    id: t.expose('id', { type: 'UUID', description: 'Unique identifier of the transaction.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the transaction was created.' }),
    createdBy: t.expose('createdBy', { type: 'UUID', description: 'The application that created the transaction.' }),
    expiresAt: t.expose('expiresAt', {
      type: 'DateTime',
      description: 'When the transaction expires (1 hour after creation by default) and is rolled back.',
    }),
    status: t.field({ type: TransactionStatusEnum, description: 'The current status.', resolve: (tx) => tx.status }),
  }),
});

const idArg = { type: 'UUID', required: true, description: 'The transaction id.' } as const;

builder.queryField('transaction', (t) =>
  t.field({
    type: TransactionRef,
    nullable: true,
    description: "A transaction of the tenant by id; null when there is none (including other tenants' ids).",
    authScopes: { authenticated: true },
    args: { id: t.arg(idArg) },
    resolve: async (_root, { id }, context) =>
      (await context.services.transactions.transaction(principalOf(context), id)) ?? null,
  }),
);

builder.mutationField('createTransaction', (t) =>
  t.field({
    type: TransactionRef,
    description:
      'Opens a transaction. Pass its id as `transactionId` (or the BT-TRANSACTION-ID header) to token writes, then ' +
      'commit or roll it back. Any valid API key may.',
    authScopes: { authenticated: true },
    resolve: (_root, _args, context) => context.services.transactions.createTransaction(principalOf(context)),
  }),
);

builder.mutationField('commitTransaction', (t) =>
  t.field({
    type: TransactionRef,
    description:
      "Applies an open transaction's writes atomically. Unknown -> NOT_FOUND; not OPEN -> CONFLICT; created by " +
      'another application -> FORBIDDEN (only its creator commits or rolls back a transaction).',
    authScopes: { authenticated: true },
    errors: {
      types: [NotFoundError, ConflictError, ForbiddenError],
      union: { description: 'The committed transaction, or why it was not committed.' },
    },
    args: { id: t.arg(idArg) },
    resolve: (_root, { id }, context) => context.services.transactions.commitTransaction(principalOf(context), id),
  }),
);

builder.mutationField('rollbackTransaction', (t) =>
  t.field({
    type: TransactionRef,
    description:
      "Discards an open transaction's writes atomically. Unknown -> NOT_FOUND; not OPEN -> CONFLICT; created by " +
      'another application -> FORBIDDEN (only its creator commits or rolls back a transaction).',
    authScopes: { authenticated: true },
    errors: {
      types: [NotFoundError, ConflictError, ForbiddenError],
      union: { description: 'The rolled-back transaction, or why it was not rolled back.' },
    },
    args: { id: t.arg(idArg) },
    resolve: (_root, { id }, context) => context.services.transactions.rollbackTransaction(principalOf(context), id),
  }),
);
