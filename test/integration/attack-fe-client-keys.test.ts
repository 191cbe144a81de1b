/**
 * Harvest protection keys its clients by IP address, against the real app and a real slapd:
 *  - a client address that is no IP address (a milter CONNECT or a policy client_address of
 *    60 kB of garbage, a new one per session) counts against the connection's peer, as a missing
 *    one does. Each used to be a client of its own: the guard kept every such string (3,000
 *    60 kB CONNECTs from one peer grew RSS by 300 MB, up to 100,000 of them) and none was flagged;
 *  - the spellings of one address (IPv6 in upper case or uncompressed, IPv4-mapped IPv6 dotted
 *    or in hex, Sendmail's "IPv6:" prefix) are one client.
 * Policy: maxUnknown 1 with action reject, so a client's second unknown recipient gets 421.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App } from '../../src/app/app.js';
import { MilterPacketDecoder, encodeMilterPacket } from '../../src/milter/codec.js';
import { Cmd, Family } from '../../src/milter/constants.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { connectFrom, milterOptneg, milterRcpt, policyActions, policyRequest, readUntilClose } from '../helpers/frontend-clients.js';
import { startApp } from '../helpers/app.js';

const HARVEST = '421 4.7.0 Too many unknown recipients';

/** SMFIC_CONNECT with `address` as the client's IP (inet family), as an MTA sends it. */
function milterConnect(address: string, family: number = Family.INET): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(25);
  return encodeMilterPacket(Cmd.CONNECT, Buffer.concat([Buffer.from('client.example\0'), Buffer.from([family]), port, Buffer.from(`${address}\0`, 'latin1')]));
}

/** Milter replies, one string per packet: "c" for continue, else the reply code text. */
function milterReplies(buf: Buffer): string[] {
  return new MilterPacketDecoder().push(buf).map((p) => {
    const cmd = String.fromCharCode(p.command);
    return cmd === 'y' ? p.data.toString('utf8').replace(/\0$/, '') : cmd;
  });
}

describe('harvest protection keys clients by IP address (real slapd)', () => {
  let ldap: Slapd;
  let app: App;

  before(async () => {
    ldap = await startSlapd();
    app = await startApp(
      {
        listen: { http: null, socketmap: null, policy: '127.0.0.1:0', milter: '127.0.0.1:0', metrics: null },
        domains: ['example.com'],
        directory: { kind: 'ldap', ldap: { urls: [ldap.url], baseDN: ldap.baseDN, bindDN: ldap.serviceDN } },
        policy: { harvest: { maxUnknown: 1, action: 'reject' } },
        log: { level: 'warn' },
      },
      { RCPTGATE_LDAP_BIND_PASSWORD: ldap.servicePassword },
    );
  });
  after(async () => {
    await app?.close();
    await ldap?.close();
  });

  test('milter: CONNECT addresses that are no IP address count against the peer', async () => {
    const s = await connectFrom(app.addresses.milter!.port, '127.0.0.2');
    const replies = readUntilClose(s);
    const sessions = [0, 1, 2].map((i) => Buffer.concat([milterConnect(`${i}-${'f'.repeat(60_000)}`), milterRcpt(`ghost-m${i}@example.com`), encodeMilterPacket(Cmd.QUIT_NC)]));
    s.end(Buffer.concat([milterOptneg(), ...sessions, encodeMilterPacket(Cmd.QUIT)]));
    const got = milterReplies(await replies).slice(1);
    // OPTNEG, then per session: CONNECT continue, the RCPT's answer. The three RCPTs arrive at once
    // (no MTA sends milter commands before the reply, this client does) and are looked up side by
    // side, so which one is answered first, and gets the 550, depends on the lookups' timing.
    assert.deepEqual(got.filter((_, i) => i % 2 === 0), ['c', 'c', 'c']);
    assert.deepEqual(got.filter((_, i) => i % 2 === 1).sort(), ['550 5.1.1 User unknown', HARVEST, HARVEST].sort());
  });

  test('policy: a client_address that is no IP address counts against the peer', async () => {
    const s = await connectFrom(app.addresses.policy!.port, '127.0.0.3');
    const replies = readUntilClose(s);
    s.end([0, 1, 2].map((i) => policyRequest(`ghost-p${i}@example.com`, `${i}-${'g'.repeat(1_500)}`)).join(''));
    // Sent at once and looked up side by side: whichever is judged first gets the 550.
    assert.deepEqual(policyActions(await replies).sort(), ['550 5.1.1 User unknown', HARVEST, HARVEST].sort());
  });

  test('the spellings of one IPv6 or IPv4-mapped address are one client', async () => {
    const s = await connectFrom(app.addresses.policy!.port, '127.0.0.4');
    const replies = readUntilClose(s);
    s.end(
      [
        policyRequest('ghost-v1@example.com', '2001:db8::7'),
        policyRequest('ghost-v2@example.com', '2001:DB8:0:0:0:0:0:7'),
        policyRequest('ghost-v3@example.com', '192.0.2.9'),
        policyRequest('ghost-v4@example.com', '::ffff:c000:209'),
      ].join(''),
    );
    // Two clients of two requests each, all sent at once: one 550 and one 421 per client, in either order.
    const actions = policyActions(await replies);
    assert.deepEqual(actions.slice(0, 2).sort(), ['550 5.1.1 User unknown', HARVEST].sort());
    assert.deepEqual(actions.slice(2).sort(), ['550 5.1.1 User unknown', HARVEST].sort());
    const m = await connectFrom(app.addresses.milter!.port, '127.0.0.4');
    const milterGot = readUntilClose(m);
    // Sendmail's {client_addr} form of the same client, already flagged above.
    m.end(Buffer.concat([milterOptneg(), milterConnect('IPv6:2001:db8:0::7', Family.INET6), milterRcpt('alice@example.com'), encodeMilterPacket(Cmd.QUIT)]));
    assert.deepEqual(milterReplies(await milterGot).slice(1), ['c', HARVEST]);
  });
});
