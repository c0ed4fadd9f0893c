import { type Kysely, sql } from 'kysely';

/**
 * Every instance caches reactors with their formulas for `react`. These triggers announce each change (from any
 * instance, or from SQL run by hand) on the `reactor_changes` channel at commit, so every cache drops the entry.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function notify_reactor_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify('reactor_changes', json_build_object(tg_argv[0], old.id)::text);
      return null;
    end;
    $$`.execute(db);
  await sql`
    create trigger reactors_changed after update or delete on reactors
    for each row execute function notify_reactor_change('reactor')`.execute(db);
  await sql`
    create trigger reactor_formulas_changed after update or delete on reactor_formulas
    for each row execute function notify_reactor_change('formula')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger reactor_formulas_changed on reactor_formulas`.execute(db);
  await sql`drop trigger reactors_changed on reactors`.execute(db);
  await sql`drop function notify_reactor_change()`.execute(db);
}
