import type { PostgresCursor, PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';

/**
 * A pg pool for Kysely that sends each distinct statement with parameters as a named (prepared) statement, so that
 * a session parses and plans it once and from then on only binds and executes it (pg remembers per connection which
 * names it has prepared). For the embedded database only, where planning runs in WebAssembly: a 1-row select by key
 * took 179 µs unnamed and 100 µs prepared (BENCHMARKS.md).
 *
 * Not for Postgres: gateways there share the database with other instances, and a rolling upgrade's migration that
 * adds a column makes a prepared `select *` of an instance still running fail ("cached plan must not change result
 * type") until it restarts; an unnamed statement just gets the new column. PGlite has one process, migrated before it
 * serves.
 *
 * Statements without parameters stay unnamed (migrations send several statements in one, which only the simple
 * protocol accepts). Names are given to the first `limit` distinct statements and never taken back, which bounds what
 * the session keeps; statement shapes are few (an `in` list makes one per length, up to 100).
 */
export function preparingPool(pool: pg.Pool, limit = 500): PostgresPool {
  const names = new Map<string, string>();
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (name === undefined && names.size < limit) {
      name = `rg${names.size}`;
      names.set(text, name);
    }
    return name;
  };
  // One wrapper per pg client: Kysely keeps its connection object per client it is given.
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let wrapper = wrappers.get(client);
    if (!wrapper) {
      wrapper = {
        query: ((textOrCursor: string | PostgresCursor<unknown>, parameters?: readonly unknown[]) => {
          if (typeof textOrCursor !== 'string') return client.query(textOrCursor as never);
          const values = (parameters ?? []) as unknown[];
          const name = values.length > 0 ? nameOf(textOrCursor) : undefined;
          return name === undefined
            ? client.query(textOrCursor, values)
            : client.query({ name, text: textOrCursor, values });
        }) as unknown as PostgresPoolClient['query'],
        release: () => client.release(),
      };
      wrappers.set(client, wrapper);
    }
    return wrapper;
  };
  return {
    connect: async () => wrap(await pool.connect()),
    end: () => pool.end(),
  };
}
