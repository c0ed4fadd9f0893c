import { encodeCursor, type Page } from '../db/pagination.ts';

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
