import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressMatcher, isLoopbackHost, isLoopbackRange, parseCidr } from '../../src/config/cidr.js';
import { exposedListeners, exposureWarnings, loopbackNotice, redactUrlCredentials } from '../../src/config/exposure.js';
import { validateConfig } from '../../src/config/load.js';

// Addresses here are only strings matched against ranges: nothing connects anywhere.
describe('address ranges', () => {
  it('parses addresses and CIDR ranges, refusing what is neither', () => {
    assert.deepEqual(parseCidr('127.0.0.0/8'), { address: '127.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
    for (const bad of ['', 'localhost', '1.2.3.4/33', '::/129', '1.2.3.4/', '1.2.3.4/8/8', '1.2.3.4/-1']) assert.equal(parseCidr(bad), null, bad);
  });

  it('matches peers, IPv4-mapped IPv6 peers included', () => {
    const m = addressMatcher(['127.0.0.0/8', '::1/128', '198.51.100.0/24']);
    for (const yes of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1', '198.51.100.77', '::ffff:198.51.100.1']) assert.ok(m(yes), yes);
    for (const no of ['192.0.2.1', '::2', '::ffff:192.0.2.1', '2001:db8::1', undefined, '', 'garbage']) assert.ok(!m(no), String(no));
  });

  it('tells loopback ranges and hosts apart from the rest', () => {
    for (const yes of ['127.0.0.0/8', '127.0.0.1', '::1/128', '::1']) assert.ok(isLoopbackRange(yes), yes);
    for (const no of ['0.0.0.0/0', '126.0.0.0/7', '::/0', '198.51.100.0/24']) assert.ok(!isLoopbackRange(no), no);
    for (const yes of ['127.0.0.1', '[::1]', 'localhost', '127.1.2.3']) assert.ok(isLoopbackHost(yes), yes);
    for (const no of ['0.0.0.0', '[::]', '::', '192.0.2.1', 'mx.example']) assert.ok(!isLoopbackHost(no), no);
  });
});

describe('exposure report', () => {
  it('says how to open the listeners when everything is on loopback, and nothing otherwise', () => {
    const closed = validateConfig({});
    assert.deepEqual(exposedListeners(closed), []);
    assert.match(loopbackNotice(closed) ?? '', /loopback only.*listen\..*RCPTGATE_LISTEN_SOCKETMAP=0\.0\.0\.0:9465/);
    assert.deepEqual(exposureWarnings(closed), []);
    const open = validateConfig({ listen: { socketmap: '0.0.0.0:9465' } });
    assert.deepEqual(exposedListeners(open), ['socketmap']);
    assert.equal(loopbackNotice(open), null);
  });

  it('warns when the lookup API answers non-loopback clients without a token on an exposed listener', () => {
    const wide = validateConfig({ listen: { http: '0.0.0.0:8080' }, http: { lookupAllowFrom: ['127.0.0.0/8', '198.51.100.0/24'] } });
    const [w, ...rest] = exposureWarnings(wide);
    assert.deepEqual(rest, []);
    assert.equal(w?.level, 'warning');
    assert.equal(w?.path, 'http.lookupAllowFrom');
    assert.match(w!.message, /198\.51\.100\.0\/24 without a token/);
    // The same list behind a loopback listener exposes nothing.
    assert.deepEqual(exposureWarnings(validateConfig({ http: { lookupAllowFrom: ['0.0.0.0/0'] } })), []);
  });

  it('notes that an exposed HTTP listener without a token answers lookups to loopback only', () => {
    const notes = exposureWarnings(validateConfig({ listen: { http: '[::]:8080' } }));
    assert.deepEqual(notes.map((n) => [n.level, n.path]), [['note', 'http.lookupTokenFile']]);
    assert.deepEqual(exposureWarnings(validateConfig({ listen: { http: '[::]:8080' }, http: { lookupTokenFile: '/run/token' } })), []);
  });

  it('redacts the userinfo of every URL in a text', () => {
    assert.equal(
      redactUrlCredentials('bind to ldap://cn=admin:pw@ldap.example:389 failed, then ldaps://u@h:636/ too; http://h/x@y stays'),
      'bind to ldap://[redacted]@ldap.example:389 failed, then ldaps://[redacted]@h:636/ too; http://h/x@y stays',
    );
  });
});
