/**
 * The second ask of a recipient (check_policy_service listed in two restriction lists) gets the
 * first answer without a lookup, and nothing else is taken for one: a request without
 * `instance`, a second RCPT of the same address (`recipient_count` moved on), a third ask, a
 * request after a refusal. The real policy server and engine (bundled example directory,
 * example.com in shadow mode) over a real socket, as Postfix sends the requests.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { EXAMPLE_LDIF, LdifDirectory } from '../../src/directory/ldif.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createPolicyServer } from '../../src/policy/server.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';

describe('a policy request asked twice', () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const directory = LdifDirectory.fromFile(EXAMPLE_LDIF);
  const validator = new RecipientValidatorImpl({
    config: validateConfig({ domains: { 'example.com': { mode: 'shadow' }, 'example.org': {} } }),
    directory,
    metrics,
    logger: silentLogger(),
  });
  let server: TcpServer;
  let socket: net.Socket;
  let buffered = '';

  before(async () => {
    server = createPolicyServer({ validator, metrics, logger: silentLogger(), maxConnections: 10, idleTimeoutMs: 60_000 });
    const { port } = await server.listen('127.0.0.1:0');
    socket = net.connect(port, '127.0.0.1');
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (buffered += d));
    await once(socket, 'connect');
  });
  after(async () => {
    socket?.destroy();
    await server?.close(1000);
    await directory.close();
  });

  /** One request as Postfix sends it; its action. */
  const ask = async (attrs: Record<string, string>): Promise<string> => {
    const all = { request: 'smtpd_access_policy', protocol_state: 'RCPT', client_address: '192.0.2.7', sasl_username: '', recipient_count: '0', ...attrs };
    socket.write(`${Object.entries(all).map(([k, v]) => `${k}=${v}\n`).join('')}\n`);
    while (!buffered.includes('\n\n')) await new Promise((r) => setTimeout(r, 5));
    const [reply, ...rest] = buffered.split('\n\n');
    buffered = rest.join('\n\n');
    return reply!.replace(/^action=/, '');
  };
  const counted = async () => (await metrics.shadowRejections.get()).values.find((v) => v.labels.domain === 'example.com')?.value ?? 0;

  it('counts a would-be refusal once for two asks, again for a third ask, a new RCPT or a request without instance', async () => {
    const ghost = { instance: 'a1.1', recipient: 'ghost@example.com' };
    assert.equal(await ask(ghost), 'DUNNO');
    assert.equal(await ask(ghost), 'DUNNO');
    assert.equal(await counted(), 1, 'the second ask is the same recipient');
    assert.equal(await ask(ghost), 'DUNNO');
    assert.equal(await counted(), 2, 'a third ask is a new one');
    assert.equal(await ask({ ...ghost, recipient_count: '1' }), 'DUNNO');
    assert.equal(await counted(), 3, 'a second RCPT of the address after one was accepted');
    const bare = { recipient: 'ghost@example.com' };
    assert.equal(await ask(bare), 'DUNNO');
    assert.equal(await ask(bare), 'DUNNO');
    assert.equal(await counted(), 5, 'without instance nothing is taken for a repeat');
  });

  it('never repeats a refusal: an unknown recipient of an enforced domain asked again is refused again', async () => {
    const nobody = { instance: 'b2.1', recipient: 'nobody@example.org' };
    assert.match(await ask(nobody), /^550 5\.1\.1 /);
    assert.match(await ask(nobody), /^550 5\.1\.1 /);
    assert.equal(await ask({ instance: 'b2.1', recipient: 'dave@example.org' }), 'DUNNO');
  });
});
