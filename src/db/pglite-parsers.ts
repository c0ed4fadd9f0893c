import type { PGlite } from '@electric-sql/pglite';

/**
 * The array types this schema's columns have, with their element types: text[] (applications' permissions and token
 * containers, tokens' containers). test/foundation/pglite-parsers.test.ts fails when a migration adds a column of
 * another array type, so that it is added here.
 */
export const ARRAY_TYPES_IN_USE: readonly { array: number; element: number }[] = [{ array: 1009, element: 25 }];

/**
 * Shrinks a PGlite instance's table of result parsers to what differs from PGlite's defaults.
 *
 * Why: PGlite 0.4 copies the instance's table into a new object on every query (`{ ...this.parsers,
 * ...options?.parsers }` in its parseResults): 316 entries, about 85 µs here, a sixth of an indexed select of 21
 * rows. PGlite 0.5 fixed it, but 0.5 is Postgres 18, which cannot open the Postgres 17 data directories embedded
 * users already have.
 *
 * Why it is safe: a type without an entry is parsed by PGlite's module defaults (`types.parsers`), and the instance's
 * entries are those defaults for every type but arrays: its start adds one parser per array type, which reads the
 * element's parser from the table at each call. So the table keeps the array types our columns use and their
 * elements. The test above also checks that every entry dropped is a default or an array type no column has.
 */
export function trimParserTable(pglite: PGlite): void {
  const full = pglite.parsers;
  const kept: typeof full = {};
  for (const { array, element } of ARRAY_TYPES_IN_USE) {
    for (const type of [array, element]) {
      const parser = full[type];
      if (parser) kept[type] = parser;
    }
  }
  pglite.parsers = kept;
}
