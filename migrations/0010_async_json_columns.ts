import { type Kysely, sql } from 'kysely';

/**
 * An async request's args and its outcome (raw, tokens, error) as `json` instead of `jsonb`. jsonb cannot hold the
 * NUL character (U+0000) or an unpaired UTF-16 surrogate, which a formula may well return (bytes decoded as
 * latin1, say) and a client may send in args, so storing them failed and the run's outcome was lost. `json` keeps
 * the text as sent, and nothing queries inside these columns. src/storable-text.ts has the whole story.
 */
const COLUMNS = ['args', 'raw', 'tokens', 'error'] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const column of COLUMNS) {
    await sql`alter table reactor_requests alter column ${sql.ref(column)} type json using ${sql.ref(column)}::json`.execute(
      db,
    );
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Rows holding what jsonb cannot hold would make the cast fail: they are cleared first.
  for (const column of COLUMNS) {
    await sql`update reactor_requests set ${sql.ref(column)} = null
      where ${sql.ref(column)}::text ~ '\\\\u(0000|d[89a-f])'`.execute(db);
    await sql`alter table reactor_requests alter column ${sql.ref(column)} type jsonb using ${sql.ref(column)}::jsonb`.execute(
      db,
    );
  }
}
