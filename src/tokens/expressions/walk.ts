/**
 * Finding and replacing strings inside JSON args without recursion (args nest as deep as a client likes, and a
 * recursive walk would turn that into a stack overflow) and without copying what does not change.
 */

type Container = Record<string, unknown> | unknown[];

/** Where a container sits: its parent's node and its key there. The root has no parent. */
export interface PathNode {
  container: Container;
  up: PathNode | null;
  key: string | number | null;
}

/** A string value found in the args: the container holding it (null when the args are the string) and its key. */
export interface StringSite {
  holder: PathNode | null;
  key: string | number | null;
  value: string;
}

/** Every string value (never a key) for which `wanted` is true, in document order. */
export function findStrings(root: unknown, wanted: (value: string) => boolean): StringSite[] {
  const sites: StringSite[] = [];
  if (typeof root === 'string') {
    if (wanted(root)) sites.push({ holder: null, key: null, value: root });
    return sites;
  }
  if (!isContainer(root)) return sites;
  const pending: PathNode[] = [{ container: root, up: null, key: null }];
  const children: PathNode[] = [];
  // Loops rather than a `visit` closure per container: under tsx each closure made is also renamed (keepNames).
  while (pending.length > 0) {
    const node = pending.pop() as PathNode;
    const container = node.container;
    if (Array.isArray(container)) {
      for (let index = 0; index < container.length; index++) {
        const value: unknown = container[index];
        if (typeof value === 'string') {
          if (wanted(value)) sites.push({ holder: node, key: index, value });
        } else if (isContainer(value)) children.push({ container: value, up: node, key: index });
      }
    } else {
      for (const key of Object.keys(container)) {
        const value = container[key];
        if (typeof value === 'string') {
          if (wanted(value)) sites.push({ holder: node, key, value });
        } else if (isContainer(value)) children.push({ container: value, up: node, key });
      }
    }
    // Reversed so the stack pops children in document order, keeping error reports about the first bad string.
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i] as PathNode);
    children.length = 0;
  }
  return sites;
}

/**
 * Returns `root` with each site's string replaced. Only containers on a path to a replaced string are copied; the
 * rest is shared with the input, which is therefore never mutated (async requests store the args as sent).
 */
export function replaceStrings(root: unknown, replacements: Array<{ site: StringSite; value: unknown }>): unknown {
  const copies = new Map<Container, Container>();
  for (const { site, value } of replacements) {
    // Only a root that is itself a string has a site without a holder, and then it is the only site.
    if (site.holder === null) return value;
    setOwn(copyOf(site.holder, copies), site.key as string | number, value);
  }
  return copies.get(root as Container) ?? root;
}

/** The copy of `target`'s container, copying it and every not yet copied ancestor (iteratively, like the scan). */
function copyOf(target: PathNode, copies: Map<Container, Container>): Container {
  const chain: PathNode[] = [];
  for (let node: PathNode | null = target; node && !copies.has(node.container); node = node.up) chain.push(node);
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i] as PathNode;
    const copy: Container = Array.isArray(node.container) ? node.container.slice() : { ...node.container };
    copies.set(node.container, copy);
    if (node.up !== null) setOwn(copies.get(node.up.container) as Container, node.key as string | number, copy);
  }
  return copies.get(target.container) as Container;
}

/** The keys from the root to the site's string (empty when the root is the string). */
export function pathOf(site: StringSite): Array<string | number> {
  const keys: Array<string | number> = [];
  if (site.key !== null) keys.push(site.key);
  for (let node = site.holder; node && node.key !== null; node = node.up) keys.push(node.key);
  return keys.reverse();
}

/** `args.card.number`, `args.items[2]`: the field name a BadRequestError reports. */
export function describePath(site: StringSite, rootName = 'args'): string {
  let path = rootName;
  for (const key of pathOf(site)) path += typeof key === 'number' ? `[${key}]` : `.${key}`;
  return path;
}

// A JSON key "__proto__" is an ordinary own property and must stay one: assignment would set the prototype, so that
// key is defined. Every other key is already an own, writable data property there (a copy of the args, or the
// worker's clone of them: src/tokens/sealing.ts), and assignment is faster.
export function setOwn(target: Container, key: string | number, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  } else (target as Record<string | number, unknown>)[key] = value;
}

function isContainer(value: unknown): value is Container {
  if (Array.isArray(value)) return true;
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
