import type { ApplicationType } from './tables.ts';

export const PERMISSIONS = [
  'reactor:create',
  'reactor:read',
  'reactor:update',
  'reactor:delete',
  'reactor:invoke',
  'token:create',
  'token:read',
  'token:update',
  'token:delete',
  'token:use',
  'application:create',
  'application:read',
  'application:update',
  'application:delete',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

/** What each application type may hold at most: public keys live in browsers, so they may only create tokens. */
export const ALLOWED_PERMISSIONS: Record<ApplicationType, readonly Permission[]> = {
  MANAGEMENT: PERMISSIONS.filter((p) => p.startsWith('reactor:') || p.startsWith('application:')),
  PRIVATE: PERMISSIONS.filter((p) => p.startsWith('token:') || p === 'reactor:invoke' || p === 'reactor:read'),
  PUBLIC: ['token:create'],
};

/**
 * Permissions a new application gets when the caller names none. A PRIVATE key (a back end's: tokens and `react`)
 * may be granted `reactor:read` but does not get it by default: reading a reactor reads its configuration, where the
 * seeds keep a payment processor's API key, and `reactorEvents`, which needs it, is a dashboard's feed.
 */
export const DEFAULT_PERMISSIONS: Record<ApplicationType, readonly Permission[]> = {
  MANAGEMENT: ALLOWED_PERMISSIONS.MANAGEMENT,
  PRIVATE: ['token:create', 'token:read', 'token:delete', 'token:use', 'reactor:invoke'],
  PUBLIC: ['token:create'],
};

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}
