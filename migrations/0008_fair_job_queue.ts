import { type Kysely, sql } from 'kysely';

/**
 * Async requests are claimed in turns across tenants instead of first-come (src/invocations/store.ts): each pending
 * request carries the turn it was queued for, and the runners claim the lowest turn first. Requests already pending
 * when this runs all get turn 0, so they keep their first-come order among themselves.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('reactor_requests')
    .addColumn('queue_turn', 'bigint', (col) => col.notNull().defaultTo(0))
    .execute();
  // The claim's order; replaces the first-come index.
  await db.schema
    .createIndex('reactor_requests_pending_turn')
    .on('reactor_requests')
    .columns(['queue_turn', 'created_at'])
    .where(sql.ref('status'), '=', 'PENDING')
    .execute();
  // A tenant's last queued turn, read when it queues another request.
  await db.schema
    .createIndex('reactor_requests_pending_tenant_turn')
    .on('reactor_requests')
    .columns(['tenant_id', 'queue_turn'])
    .where(sql.ref('status'), '=', 'PENDING')
    .execute();
  await db.schema.dropIndex('reactor_requests_pending').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('reactor_requests_pending')
    .on('reactor_requests')
    .columns(['created_at'])
    .where(sql.ref('status'), '=', 'PENDING')
    .execute();
  await db.schema.dropIndex('reactor_requests_pending_tenant_turn').execute();
  await db.schema.dropIndex('reactor_requests_pending_turn').execute();
  await db.schema.alterTable('reactor_requests').dropColumn('queue_turn').execute();
}
