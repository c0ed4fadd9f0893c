import { type Kysely, sql } from 'kysely';

/**
 * Every instance caches committed token rows (still sealed) for detokenization (src/tokens/token-cache.ts). These
 * statement-level triggers announce deletes and updates of committed tokens on the `token_changes` channel at commit,
 * from any instance or from SQL run by hand, so every cache drops them. One notification per statement: the ids
 * (comma-separated), or `*` when there are too many for one payload (Postgres refuses 8000 bytes or more), which
 * clears the caches. Rows still pending in a transaction (`transaction_id` set) were never visible to a cache.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function notify_token_change() returns trigger language plpgsql as $$
    declare
      changed_count integer;
      ids text;
    begin
      select count(*), string_agg(id::text, ',') into changed_count, ids
        from (select id from changed_tokens where transaction_id is null limit 151) visible;
      if changed_count = 0 then
        return null;
      end if;
      perform pg_notify('token_changes', case when changed_count > 150 then '*' else ids end);
      return null;
    end;
    $$`.execute(db);
  // Transition tables allow one event per trigger, so deletes and updates each get their own.
  await sql`
    create trigger tokens_deleted after delete on tokens referencing old table as changed_tokens
    for each statement execute function notify_token_change()`.execute(db);
  await sql`
    create trigger tokens_updated after update on tokens referencing old table as changed_tokens
    for each statement execute function notify_token_change()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger tokens_updated on tokens`.execute(db);
  await sql`drop trigger tokens_deleted on tokens`.execute(db);
  await sql`drop function notify_token_change()`.execute(db);
}
