/**
 * Where the gateway may send speaker notifications. A speaker endpoint is written by an operator
 * (or whoever holds an admin key), so it must not turn the gateway into a way of reaching what
 * sits beside it: loopback, private networks, link-local addresses (the cloud metadata service at
 * 169.254.169.254), carrier-grade NAT, multicast and reserved ranges are refused, in IPv4 and
 * IPv6, also when written as an IPv4-mapped or NAT64/6to4 IPv6 address, unless
 * OUTBOUND_ALLOW_HOSTS names the host, the address or a range holding it.
 *
 * A name is checked by what it resolves to, and the check that counts is the one made at connect
 * time (`lookup`, given to the HTTP agent and to the MQTT socket): the connection goes to exactly
 * the addresses that were checked, so a name that resolves to a public address when checked and
 * to a private one a moment later (DNS rebinding) still never reaches the private one.
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import net, { type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

export type PolicyResult = { ok: true; unresolved?: boolean } | { ok: false; reason: string };

/** Resolves a name to all its addresses (dns.lookup with all: true); injectable for tests. */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/** Raised by `lookup` when a name resolves to a refused address; carries a `code` so clients pass it on. */
export class OutboundBlockedError extends Error {
  override name = 'OutboundBlockedError';
  readonly code = 'ERR_OUTBOUND_BLOCKED';
}

export const allowedSchemes = new Set(['http:', 'https:', 'mqtt:', 'mqtts:']);

const rangeNames: Record<string, string> = {
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link-local',
  loopback: 'loopback',
  carrierGradeNat: 'carrier-grade NAT',
  private: 'private',
  uniqueLocal: 'private (unique local)',
  reserved: 'reserved',
  as112: 'reserved (AS112)',
  amt: 'reserved (AMT)',
  deprecatedSiteLocal: 'site-local',
  discard: 'discard-only',
  teredo: 'Teredo tunnel',
  benchmarking: 'benchmarking',
  as112v6: 'reserved (AS112)',
  deprecatedOrchid: 'reserved (ORCHID)',
  orchid2: 'reserved (ORCHIDv2)',
  droneRemoteIdProtocolEntityTags: 'reserved (DET)',
  segmentRouting: 'segment routing',
  ipv4Compatible: 'IPv4-compatible (deprecated)',
  nat64Local: 'local-use NAT64',
};

const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR('64:ff9b::/96');
const NAT64_LOCAL = ipaddr.IPv6.parseCIDR('64:ff9b:1::/48');
const SIX_TO_FOUR = ipaddr.IPv6.parseCIDR('2002::/16');
const IPV4_TRANSLATED = ipaddr.IPv6.parseCIDR('::ffff:0:0:0/96');

function ipv4FromGroups(high: number, low: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

/**
 * The range an address belongs to when it is refused by default, or undefined for an ordinary
 * public unicast address. IPv6 forms that carry an IPv4 address are judged by that address.
 */
function blockedRange(address: ipaddr.IPv4 | ipaddr.IPv6): { range: string; effective: ipaddr.IPv4 | ipaddr.IPv6 } | undefined {
  if (address.kind() === 'ipv6') {
    const v6 = address as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) return blockedRange(v6.toIPv4Address());
    const parts = v6.parts;
    if (v6.match(NAT64_LOCAL)) return { range: 'nat64Local', effective: v6 };
    if (v6.match(NAT64_WELL_KNOWN) || v6.match(IPV4_TRANSLATED)) return blockedRange(ipv4FromGroups(parts[6]!, parts[7]!));
    if (v6.match(SIX_TO_FOUR)) return blockedRange(ipv4FromGroups(parts[1]!, parts[2]!));
    const range = v6.range();
    if (range === 'unicast' && v6.match(IPV4_COMPATIBLE)) return { range: 'ipv4Compatible', effective: v6 };
    return range === 'unicast' ? undefined : { range, effective: v6 };
  }
  const range = address.range();
  return range === 'unicast' ? undefined : { range, effective: address };
}

function describe(range: string): string {
  return rangeNames[range] ?? range;
}

function stripBrackets(text: string): string {
  return text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
}

function normaliseHost(text: string): string {
  return stripBrackets(text.trim().toLowerCase()).replace(/\.$/, '');
}

/** Parses an address as Node would connect to it (no classful `127.1` or hex forms), IPv4-mapped folded to IPv4. */
function parseStrictIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const plain = stripBrackets(text.trim());
  if (net.isIP(plain) === 0) return undefined;
  try {
    return ipaddr.process(plain);
  } catch {
    return undefined;
  }
}

const defaultResolver: Resolver = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

export class OutboundPolicy {
  readonly #hosts = new Set<string>();
  /** `*.example.net` entries, kept as `.example.net`. */
  readonly #hostSuffixes: string[] = [];
  readonly #ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];
  readonly #resolve: Resolver;

  /**
   * @param allowText OUTBOUND_ALLOW_HOSTS: comma-separated host names (`speaker.lan`,
   *   `*.speakers.lan`), addresses (`127.0.0.1`, `::1`, `[::1]`) and CIDR ranges (`10.20.0.0/16`,
   *   `[fd00::]/8`). An entry that is none of these throws, naming it.
   */
  constructor(allowText = '', options: { resolve?: Resolver } = {}) {
    this.#resolve = options.resolve ?? defaultResolver;
    for (const raw of allowText.split(',')) {
      const entry = raw.trim();
      if (!entry) continue;
      if (entry.includes('/')) {
        const [base = '', bits = ''] = entry.split('/');
        const text = `${stripBrackets(base)}/${bits}`;
        if (!/^\d{1,3}$/.test(bits) || net.isIP(stripBrackets(base)) === 0 || !ipaddr.isValidCIDR(text)) {
          throw new Error(`OUTBOUND_ALLOW_HOSTS: "${entry}" is not a valid CIDR range`);
        }
        const [address, prefix] = ipaddr.parseCIDR(text);
        this.#ranges.push([address, prefix]);
        // An IPv4 range also covers the IPv4-mapped IPv6 forms of its addresses: addresses are folded before matching.
        continue;
      }
      const address = parseStrictIp(entry);
      if (address) {
        this.#ranges.push([address, address.kind() === 'ipv4' ? 32 : 128]);
        continue;
      }
      const host = normaliseHost(entry);
      if (/^\*\.[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(host)) {
        this.#hostSuffixes.push(host.slice(1));
        continue;
      }
      if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(host)) {
        throw new Error(`OUTBOUND_ALLOW_HOSTS: "${entry}" is not a host name, an address or a CIDR range`);
      }
      this.#hosts.add(host);
    }
  }

  /** True when OUTBOUND_ALLOW_HOSTS names this host (its addresses are then not checked). */
  isHostAllowed(hostname: string): boolean {
    const host = normaliseHost(hostname);
    if (this.#hosts.has(host)) return true;
    return this.#hostSuffixes.some((suffix) => host.endsWith(suffix) && host.length > suffix.length);
  }

  /** Checks one IP address (IPv6 bare or in brackets). */
  checkAddress(ip: string): PolicyResult {
    const address = parseStrictIp(ip);
    if (!address) return { ok: false, reason: `"${ip}" is not an IP address` };
    const blocked = blockedRange(address);
    if (!blocked) return { ok: true };
    if (this.#isAddressAllowed(address) || this.#isAddressAllowed(blocked.effective)) return { ok: true };
    return {
      ok: false,
      reason: `${stripBrackets(ip)} is a ${describe(blocked.range)} address, refused by the outbound policy (allow it in OUTBOUND_ALLOW_HOSTS)`,
    };
  }

  /**
   * Checks a URL without resolving anything: the scheme, and the host when it is an IP literal.
   * A host name passes here; it is checked when resolved (`checkUrl`, `lookup`).
   */
  checkUrlSync(url: string): PolicyResult & { hostname?: string } {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { ok: false, reason: 'not an absolute URL' };
    }
    if (!allowedSchemes.has(parsed.protocol)) {
      return { ok: false, reason: `the scheme ${parsed.protocol.replace(/:$/, '')} is refused by the outbound policy (http, https, mqtt or mqtts only)` };
    }
    const hostname = stripBrackets(parsed.hostname);
    if (!hostname) return { ok: false, reason: 'the URL names no host' };
    if (net.isIP(hostname) !== 0) {
      if (this.isHostAllowed(hostname)) return { ok: true, hostname };
      return { ...this.checkAddress(hostname), hostname };
    }
    return { ok: true, hostname };
  }

  /**
   * Checks a URL: its scheme; an IP literal directly; a host name by every address it resolves
   * to (all must pass) unless the name itself is allowed. A name that does not resolve passes as
   * `unresolved`: delivery resolves and checks it again when it connects.
   */
  async checkUrl(url: string): Promise<PolicyResult> {
    const first = this.checkUrlSync(url);
    if (!first.ok) return { ok: false, reason: first.reason };
    const hostname = first.hostname!;
    if (net.isIP(hostname) !== 0 || this.isHostAllowed(hostname)) return { ok: true };
    let addresses: LookupAddress[];
    try {
      addresses = await this.#resolve(hostname);
    } catch {
      return { ok: true, unresolved: true };
    }
    if (addresses.length === 0) return { ok: true, unresolved: true };
    return this.#checkResolved(hostname, addresses);
  }

  /**
   * A `net.LookupFunction` for `connect.lookup` (undici) or `net.connect({ lookup })`: resolves
   * the name and refuses the connection when any address it resolves to is refused.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : Number(options.family ?? 0);
    this.#resolve(hostname).then(
      (resolved) => {
        const addresses = family === 4 || family === 6 ? resolved.filter((entry) => entry.family === family) : resolved;
        if (addresses.length === 0) {
          const error: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
          error.code = 'ENOTFOUND';
          callback(error, options.all ? [] : '', undefined);
          return;
        }
        if (!this.isHostAllowed(hostname)) {
          const check = this.#checkResolved(hostname, addresses);
          if (!check.ok) {
            callback(new OutboundBlockedError(check.reason), options.all ? [] : '', undefined);
            return;
          }
        }
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, options.all ? [] : '', undefined),
    );
  };

  #checkResolved(hostname: string, addresses: LookupAddress[]): PolicyResult {
    for (const { address } of addresses) {
      const check = this.checkAddress(address);
      if (!check.ok) return { ok: false, reason: `${hostname} resolves to ${check.reason}` };
    }
    return { ok: true };
  }

  #isAddressAllowed(address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    return this.#ranges.some(([base, prefix]) => base.kind() === address.kind() && address.match(base, prefix));
  }
}
