import { BlockList, isIP } from 'node:net';

// Everything that is not the public internet: loopback, RFC 1918, CGNAT, link-local (cloud metadata), multicast,
// documentation and reserved ranges, and their IPv6 counterparts.
const DENIED_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
const DENIED_V6 = [
  '::/128',
  '::1/128',
  '64:ff9b::/96',
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/32',
  '2001:db8::/32',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];

export class EgressDeniedError extends Error {}

export interface EgressPolicy {
  /** True when the host name itself is listed, which skips address checks for it. */
  allowsHost(hostname: string): boolean;
  allowsAddress(address: string): boolean;
}

function addSubnet(list: BlockList, cidr: string): boolean {
  const [address, prefixText] = cidr.split('/');
  const family = isIP(address ?? '');
  if (!family || !address) return false;
  const prefix = prefixText === undefined ? (family === 4 ? 32 : 128) : Number(prefixText);
  if (!Number.isInteger(prefix)) return false;
  list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  return true;
}

/** IPv4 carried in IPv6 (mapped `::ffff:a.b.c.d`, or its hex form) is judged as the IPv4 address it is. */
export function unmapIPv4(address: string): string {
  const lower = address.toLowerCase();
  const dotted = /^(?:0*:)*:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower) ?? /^::(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted?.[1]) return dotted[1];
  const hex = /^(?:0*:)*:?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex?.[1] && hex[2]) {
    const hi = Number.parseInt(hex[1], 16);
    const lo = Number.parseInt(hex[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return address;
}

export function createEgressPolicy(allow: string[]): EgressPolicy {
  const denied = new BlockList();
  for (const cidr of DENIED_V4) addSubnet(denied, cidr);
  for (const cidr of DENIED_V6) addSubnet(denied, cidr);
  const allowed = new BlockList();
  const hosts = new Set<string>();
  for (const entry of allow) {
    if (!addSubnet(allowed, entry.trim())) hosts.add(entry.trim().toLowerCase());
  }
  return {
    allowsHost: (hostname) => hosts.has(hostname.toLowerCase().replace(/^\[|\]$/g, '')),
    allowsAddress(raw) {
      const address = unmapIPv4(raw.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
      const family = isIP(address);
      if (!family) return false;
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (allowed.check(address, type)) return true;
      return !denied.check(address, type);
    },
  };
}
