import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HarvestGuard } from '../../src/gate/harvest.js';
import { ipv6Network } from '../../src/gate/ipv6-network.js';
import { clientKey } from '../../src/gate/gate.js';
import { isIP } from 'node:net';

function guard(maxUnknown = 3, windowMs = 1000, maxClients?: number, action: 'reject' | 'tarpit' = 'reject') {
  const clock = { t: 1_000_000 };
  const g = new HarvestGuard({ maxUnknown, windowMs, action, now: () => clock.t, ...(maxClients ? { maxClients } : {}) });
  return { g, clock };
}

describe('harvest guard, tarpit mode', () => {
  it('is the default action', () => {
    assert.equal(new HarvestGuard({ maxUnknown: 1, windowMs: 1000 }).action, 'tarpit');
  });

  it('delays nobody until the limit is crossed, then grows the delay per unknown up to the cap', () => {
    const clock = { t: 1_000_000 };
    const g = new HarvestGuard({ maxUnknown: 2, windowMs: 1000, delayStepMs: 100, maxDelayMs: 250, now: () => clock.t });
    g.recordUnknown('c');
    g.recordUnknown('c');
    assert.equal(g.delayMs('c'), 0);
    assert.equal(g.recordUnknown('c'), true);
    assert.equal(g.delayMs('c'), 100);
    g.recordUnknown('c');
    assert.equal(g.delayMs('c'), 200);
    g.recordUnknown('c');
    g.recordUnknown('c');
    assert.equal(g.delayMs('c'), 250, 'capped');
    assert.equal(g.delayMs('other'), 0, 'only the flagged client');
  });

  it('lifts the flag a window after the last unknown', () => {
    const clock = { t: 1_000_000 };
    const g = new HarvestGuard({ maxUnknown: 0, windowMs: 1000, now: () => clock.t });
    g.recordUnknown('c');
    clock.t += 900;
    g.recordUnknown('c'); // keeps it up
    clock.t += 900;
    assert.ok(g.delayMs('c') > 0);
    clock.t += 101;
    assert.equal(g.delayMs('c'), 0);
    assert.equal(g.isBlocked('c'), false);
  });

  it('never delays in reject mode', () => {
    const { g } = guard(0);
    g.recordUnknown('c');
    assert.equal(g.isBlocked('c'), true);
    assert.equal(g.delayMs('c'), 0);
  });
});

describe('harvest guard, reject mode', () => {
  it('tolerates maxUnknown unknown recipients and trips on the next one', () => {
    const { g } = guard(3);
    for (let i = 0; i < 3; i++) assert.equal(g.recordUnknown('192.0.2.1'), false);
    assert.equal(g.isBlocked('192.0.2.1'), false);
    assert.equal(g.recordUnknown('192.0.2.1'), true);
    assert.equal(g.isBlocked('192.0.2.1'), true);
  });

  it('blocks only the offending client', () => {
    const { g } = guard(1);
    g.recordUnknown('192.0.2.1');
    g.recordUnknown('192.0.2.1');
    assert.equal(g.isBlocked('192.0.2.1'), true);
    assert.equal(g.isBlocked('192.0.2.2'), false);
    assert.equal(g.recordUnknown('192.0.2.2'), false);
  });

  it('forgets unknowns older than the window', () => {
    const { g, clock } = guard(2, 1000);
    g.recordUnknown('c');
    g.recordUnknown('c');
    clock.t += 1001;
    assert.equal(g.recordUnknown('c'), false);
    assert.equal(g.recordUnknown('c'), false);
    assert.equal(g.recordUnknown('c'), true);
  });

  it('counts unknowns in a sliding window, not fixed buckets', () => {
    const { g, clock } = guard(2, 1000);
    g.recordUnknown('c'); // t=0
    clock.t += 600;
    g.recordUnknown('c'); // t=600
    clock.t += 600; // t=1200: the first has expired, the second has not
    assert.equal(g.recordUnknown('c'), false);
    assert.equal(g.recordUnknown('c'), true);
  });

  it('keeps refusing until the window has passed since it tripped, then starts afresh', () => {
    const { g, clock } = guard(1, 1000);
    g.recordUnknown('c');
    g.recordUnknown('c');
    clock.t += 999;
    assert.equal(g.isBlocked('c'), true);
    assert.equal(g.recordUnknown('c'), true);
    clock.t += 1;
    assert.equal(g.isBlocked('c'), false);
    assert.equal(g.recordUnknown('c'), false);
    assert.equal(g.isBlocked('c'), false);
  });

  it('blocks at the first unknown when maxUnknown is 0', () => {
    const { g } = guard(0);
    assert.equal(g.recordUnknown('c'), true);
  });

  it('never tracks a missing client address', () => {
    const { g } = guard(0);
    assert.equal(g.recordUnknown(''), false);
    assert.equal(g.recordUnknown(null), false);
    assert.equal(g.isBlocked(undefined), false);
    assert.equal(g.size, 0);
  });

  it('bounds memory by evicting the least recently seen clients', () => {
    const { g } = guard(1, 1000, 100);
    for (let i = 0; i < 1000; i++) g.recordUnknown(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(g.size, 100);
  });

  it('refuses nonsense limits', () => {
    assert.throws(() => new HarvestGuard({ maxUnknown: -1, windowMs: 1000 }), RangeError);
    assert.throws(() => new HarvestGuard({ maxUnknown: 1, windowMs: 0 }), RangeError);
    for (const ipv6PrefixBits of [0, 129, 64.5]) assert.throws(() => new HarvestGuard({ maxUnknown: 1, windowMs: 1000, ipv6PrefixBits }), RangeError);
  });
});

describe('harvest guard, IPv6 networks', () => {
  it('spells a network one way, whatever the spelling of the address', () => {
    for (const a of ['2001:db8:1:2:3:4:5:6', '2001:DB8:0001:0002:0000::ffff', '2001:db8:1:2::', '2001:db8:1:2:ffff:ffff:255.255.255.255']) assert.equal(ipv6Network(a, 64), '2001:db8:1:2::/64', a);
    assert.equal(ipv6Network('2001:db8:abcd:1234::1', 48), '2001:db8:abcd::/48');
    assert.equal(ipv6Network('2001:db8:abcd:ffff::1', 50), '2001:db8:abcd:c000::/50');
    assert.equal(ipv6Network('8000::1', 1), '8000::/1');
  });

  it('leaves IPv4, /128, what is no address, and addresses that carry an IPv4 client as they are', () => {
    // Behind a NAT64 or SIIT translator every IPv4 sender would otherwise share one /64.
    const carryIpv4 = ['::ffff:192.0.2.1', '::ffff:c000:201', '::192.0.2.1', '::ffff:0:192.0.2.1', '64:ff9b::192.0.2.1', '64:FF9B::c000:201', '64:ff9b:1:2::c000:201', '::1', '::'];
    for (const a of ['192.0.2.1', 'not an address', '', `${'1:'.repeat(30)}1`, ...carryIpv4]) assert.equal(ipv6Network(a, 64), null, a);
    assert.equal(ipv6Network('2001:db8::1', 128), null);
    assert.equal(ipv6Network('64:ff9b:2::1', 64), '64:ff9b:2::/64', 'outside the translation prefixes');
  });

  it('drops a zone (a link-local peer address) instead of failing', () => {
    for (const a of ['fe80::fc:ff:fe00:1%eth0', 'fe80::fc:ff:fe00:1%25eth0', 'FE80::FC:FF:FE00:1%1']) assert.equal(ipv6Network(a, 64), 'fe80::/64', a);
    const g = new HarvestGuard({ maxUnknown: 1, windowMs: 1000 });
    assert.equal(g.keyOf('fe80::1%eth0'), 'fe80::/64');
  });

  it('clientKey spells any IPv6 address as the URL parser does, and folds IPv4-mapped ones to IPv4', () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.boolean(), (address, upper) => {
        const a = upper ? address.toUpperCase() : address;
        const url = new URL(`http://[${a}]/`).hostname.slice(1, -1);
        const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(url);
        if (mapped === null) assert.equal(clientKey(a), url, a);
        else assert.equal(isIP(clientKey(a) ?? ''), 4, a);
      }),
      { numRuns: 3000 },
    );
    for (const a of ['::ffff:192.0.2.1', '::FFFF:c000:201', 'IPv6:::ffff:192.0.2.1', '::ffff:192.0.2.1%eth0']) assert.equal(clientKey(a), '192.0.2.1', a);
    assert.equal(clientKey('IPv6:2001:DB8:0:0:0:0:0:7'), '2001:db8::7');
  });

  it('gives the network the URL parser spells, for any address in any spelling and any prefix length', () => {
    // The reference: the WHATWG URL parser's IPv6 spelling, masked by bits.
    const viaUrl = (address: string, bits: number): string => {
      const hex = new URL(`http://[${address}]/`).hostname.slice(1, -1);
      const cut = hex.indexOf('::');
      const head = cut < 0 ? hex.split(':') : hex.slice(0, cut).split(':').filter(Boolean);
      const tail = cut < 0 ? [] : hex.slice(cut + 2).split(':').filter(Boolean);
      const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail].map((x, i) => parseInt(x, 16) & ((0xffff << (16 - Math.max(0, Math.min(16, bits - i * 16)))) & 0xffff));
      return `${new URL(`http://[${groups.map((x) => x.toString(16)).join(':')}]/`).hostname.slice(1, -1)}/${bits}`;
    };
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 1, max: 127 }), fc.boolean(), (address, bits, upper) => {
        const a = upper ? address.toUpperCase() : address;
        const got = ipv6Network(a, bits);
        if (got !== null) assert.equal(got, viaUrl(a, bits), a);
      }),
      { numRuns: 3000 },
    );
  });

  it('flags a network whose addresses each send one unknown, not its neighbour', () => {
    const g = new HarvestGuard({ maxUnknown: 3, windowMs: 1000, action: 'reject' });
    // Every method keys by network itself: callers pass the address as the MTA reports it.
    for (let i = 1; i <= 4; i++) g.recordUnknown(`2001:db8:0:1::${i}`);
    assert.equal(g.isBlocked('2001:db8:0:1:ffff::9'), true);
    assert.equal(g.isBlocked('2001:db8:0:1::/64'), true, 'the key itself names the same client');
    assert.equal(g.isBlocked('2001:db8:0:2::1'), false);
    assert.equal(g.keyOf('192.0.2.1'), '192.0.2.1');
    assert.equal(new HarvestGuard({ maxUnknown: 1, windowMs: 1000, ipv6PrefixBits: 128 }).keyOf('2001:db8::1'), '2001:db8::1');
  });
});
