import { encodeCursor, type Page } from '../db/pagination.ts';
import type { builder } from './builder.ts';

/** The shape Pothos' relay plugin expects, plus a lazy `totalCount` computed only when a client selects it. */
export interface CountedConnection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: () => Promise<number>;
}

export function toConnection<T extends { id: string }>(
  page: Page<T>,
  hadCursor: boolean,
  totalCount: () => Promise<number>,
): CountedConnection<T> {
  const edges = page.rows.map((node) => ({ cursor: encodeCursor(node.id), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: hadCursor,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
    totalCount,
  };
}

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

/**
 * The `fields` of every list's connection type: `totalCount`, resolved from the lazy count `toConnection` carries,
 * so the count query runs only when a client selects it.
 */
export function totalCountFields(description: string) {
  return <Parent>(t: PothosSchemaTypes.ObjectFieldBuilder<Types, Parent>) => ({
    totalCount: t.int({
      description,
      resolve: (connection) => (connection as unknown as CountedConnection<unknown>).totalCount(),
    }),
  });
}
