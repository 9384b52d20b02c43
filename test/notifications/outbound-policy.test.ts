import { once } from 'node:events';
import net from 'node:net';
import type { LookupAddress } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundPolicy } from '../../src/notifications/outbound-policy.js';

const refusedUrls = [
  'http://169.254.169.254/',
  'http://10.0.0.1/',
  'http://[::1]/',
  'http://[::ffff:127.0.0.1]/',
  'http://0.0.0.0/',
  'http://100.64.0.1/',
  'http://localhost/',
];

describe('OutboundPolicy', () => {
  const policy = new OutboundPolicy('');

  it.each(refusedUrls)('refuses %s when nothing is allowed', async (url) => {
    const result = await policy.checkUrl(url);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/outbound policy/);
  });

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['ff02::1', 'multicast'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['64:ff9b::a00:1', 'private'],
    ['2002:7f00:1::', 'loopback'],
  ])('checkAddress refuses %s (%s)', (ip, range) => {
    const result = policy.checkAddress(ip);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(range);
  });

  it.each(['8.8.8.8', '93.184.216.34', '2606:4700:4700::1111', '172.32.0.1', '100.128.0.1', '::ffff:8.8.8.8'])('allows the public address %s', (ip) => {
    expect(policy.checkAddress(ip)).toEqual({ ok: true });
  });

  it('allows a public IP literal URL without resolving anything', async () => {
    expect(await policy.checkUrl('https://8.8.8.8/notify')).toEqual({ ok: true });
    expect(await policy.checkUrl('mqtt://[2606:4700:4700::1111]:1883/speakers/kitchen')).toEqual({ ok: true });
  });

  it('refuses schemes other than http, https, mqtt and mqtts', async () => {
    for (const url of ['ftp://8.8.8.8/file', 'file:///etc/passwd', 'gopher://8.8.8.8/', 'ws://8.8.8.8/']) {
      const result = await policy.checkUrl(url);
      expect(result, url).toMatchObject({ ok: false });
      if (!result.ok) expect(result.reason).toMatch(/scheme/);
    }
    expect(await policy.checkUrl('not a url')).toMatchObject({ ok: false });
  });

  it('allows refused addresses when listed as an address, a range or a host name', async () => {
    const allowing = new OutboundPolicy('127.0.0.1, 10.0.0.0/8, [::1], 169.254.169.254, 100.64.0.0/10, 0.0.0.0, localhost');
    for (const url of refusedUrls) expect(await allowing.checkUrl(url), url).toMatchObject({ ok: true });
    expect(allowing.checkAddress('10.200.3.4')).toEqual({ ok: true });
    expect(allowing.checkAddress('::ffff:10.200.3.4')).toEqual({ ok: true });
    expect(allowing.checkAddress('192.168.1.1')).toMatchObject({ ok: false });
  });

  it('an IPv4 entry also allows its IPv4-mapped IPv6 form; an IPv6 range allows its members', () => {
    expect(new OutboundPolicy('127.0.0.1').checkAddress('::ffff:127.0.0.1')).toEqual({ ok: true });
    const v6 = new OutboundPolicy('fd00::/8,[fe80::]/10');
    expect(v6.checkAddress('fd12::5')).toEqual({ ok: true });
    expect(v6.checkAddress('fe80::1')).toEqual({ ok: true });
    expect(v6.checkAddress('fc00::1')).toMatchObject({ ok: false });
  });

  it('allows a listed host name whatever it resolves to, and *.suffix entries', async () => {
    const resolve = async (): Promise<LookupAddress[]> => [{ address: '10.9.9.9', family: 4 }];
    const allowing = new OutboundPolicy('speaker.lan,*.speakers.lan', { resolve });
    expect(await allowing.checkUrl('http://speaker.lan/notify')).toEqual({ ok: true });
    expect(await allowing.checkUrl('http://SPEAKER.LAN./notify')).toEqual({ ok: true });
    expect(await allowing.checkUrl('http://kitchen.speakers.lan/notify')).toEqual({ ok: true });
    expect(await allowing.checkUrl('http://other.lan/notify')).toMatchObject({ ok: false });
    expect(await allowing.checkUrl('http://speakers.lan/notify')).toMatchObject({ ok: false });
  });

  it('refuses a name when any of its addresses is refused', async () => {
    const resolve = async (): Promise<LookupAddress[]> => [
      { address: '8.8.8.8', family: 4 },
      { address: '192.168.0.10', family: 4 },
    ];
    const result = await new OutboundPolicy('', { resolve }).checkUrl('https://mixed.example/notify');
    expect(result).toMatchObject({ ok: false });
    if (!result.ok) expect(result.reason).toMatch(/mixed\.example resolves to 192\.168\.0\.10/);
  });

  it('passes a name that does not resolve as unresolved (delivery checks it again)', async () => {
    const resolve = async (): Promise<LookupAddress[]> => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    expect(await new OutboundPolicy('', { resolve }).checkUrl('https://nowhere.invalid/')).toEqual({ ok: true, unresolved: true });
  });

  it('refuses allow-list entries that are neither hosts, addresses nor ranges', () => {
    expect(() => new OutboundPolicy('10.0.0.0/33')).toThrow(/10\.0\.0\.0\/33/);
    expect(() => new OutboundPolicy('bad host!')).toThrow(/bad host!/);
    expect(() => new OutboundPolicy(' , ')).not.toThrow();
  });

  describe('lookup (connect time)', () => {
    let server: net.Server;
    let port: number;

    beforeAll(async () => {
      server = net.createServer((socket) => socket.end());
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      port = (server.address() as net.AddressInfo).port;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    function connect(policy: OutboundPolicy, host: string): Promise<'connected' | Error> {
      return new Promise((resolve) => {
        const socket = net.connect({ host, port, lookup: policy.lookup });
        socket.once('connect', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.once('error', (error) => resolve(error));
      });
    }

    it('refuses to connect when the name resolves to a refused address at connect time (rebinding)', async () => {
      // The first answer (the check) is public; the one at connect time is loopback.
      let calls = 0;
      const resolve = async (): Promise<LookupAddress[]> => (calls++ === 0 ? [{ address: '8.8.8.8', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
      const policy = new OutboundPolicy('', { resolve });
      expect(await policy.checkUrl(`http://rebind.test:${port}/`)).toEqual({ ok: true });
      const outcome = await connect(policy, 'rebind.test');
      expect(outcome).toBeInstanceOf(Error);
      expect((outcome as NodeJS.ErrnoException).code).toBe('ERR_OUTBOUND_BLOCKED');
      expect((outcome as Error).message).toMatch(/rebind\.test resolves to 127\.0\.0\.1 is a loopback address/);
    });

    it('refuses localhost at connect time unless allowed, and connects when allowed', async () => {
      const refused = await connect(new OutboundPolicy(''), 'localhost');
      expect((refused as NodeJS.ErrnoException).code).toBe('ERR_OUTBOUND_BLOCKED');
      const loopbackOnly = async (): Promise<LookupAddress[]> => [{ address: '127.0.0.1', family: 4 }];
      expect(await connect(new OutboundPolicy('127.0.0.1', { resolve: loopbackOnly }), 'localhost')).toBe('connected');
      expect(await connect(new OutboundPolicy('localhost', { resolve: loopbackOnly }), 'localhost')).toBe('connected');
    });

    it('answers in both callback shapes (all: true and a single address)', async () => {
      const policy = new OutboundPolicy('127.0.0.1', { resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
      const all = await new Promise<unknown>((resolve) => policy.lookup('x.test', { all: true }, (error, addresses) => resolve(error ?? addresses)));
      expect(all).toEqual([{ address: '127.0.0.1', family: 4 }]);
      const single = await new Promise<unknown[]>((resolve) => policy.lookup('x.test', {}, (error, address, family) => resolve([error, address, family])));
      expect(single).toEqual([null, '127.0.0.1', 4]);
      const v6only = await new Promise<unknown>((resolve) => policy.lookup('x.test', { family: 6 }, (error) => resolve(error)));
      expect((v6only as NodeJS.ErrnoException).code).toBe('ENOTFOUND');
    });
  });
});
