import type { Principal } from '../auth/service.ts';
import { ForbiddenError } from '../errors.ts';

/**
 * Whether the application's token containers cover a token: one of the token's containers is one of them or lies
 * below one. Paths end with "/", so `/pci/` covers `/pci/high/` but not `/pcix/`. Every token permission acts only
 * on covered tokens; an application without token containers covers them all.
 */
export function covers(principal: Principal, containers: readonly string[]): boolean {
  const allowed = principal.tokenContainers;
  if (allowed === null) return true;
  return containers.some((container) => allowed.some((prefix) => container.startsWith(prefix)));
}

/** FORBIDDEN for a token (or new token) the application's token containers do not cover. */
export function outOfReach(principal: Principal, doing: string, token: { id?: string; containers: readonly string[] }) {
  const what = token.id === undefined ? 'a token' : `token "${token.id}"`;
  return new ForbiddenError(
    `${doing} ${what} requires one of its containers (${token.containers.join(', ')}) to lie in this ` +
      `application's token containers (${principal.tokenContainers?.join(', ')}).`,
  );
}

/** FORBIDDEN for a token a formula's `tokenize` block made outside the caller's containers: after the run. */
export function tokenizedOutOfReach(principal: Principal, token: { containers: readonly string[] }) {
  const containers = token.containers.join(', ');
  return new ForbiddenError(
    `The reactor ran, but its result is lost: ${outOfReach(principal, 'tokenizing', token).message}`,
    { errors: { tokenize: [`a token in ${containers} is outside the caller's reach`] } },
  );
}
