/**
 * Ids of the official formulas seeded by migrations/0002 (fixed, so documentation and tests can name them).
 * Their code lives in that migration: a migration never changes once landed.
 */
export const OFFICIAL_FORMULA_IDS = {
  echo: '00000000-0000-4000-8000-000000000001',
  cardCheck: '00000000-0000-4000-8000-000000000002',
  hmacSha256: '00000000-0000-4000-8000-000000000003',
} as const;
