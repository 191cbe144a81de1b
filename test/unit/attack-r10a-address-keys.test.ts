/**
 * Keys as Postfix's own tables ask them: a quoted local part split unquoted, needless escapes
 * dropped, source routes into a served domain with an empty local part or a spaced domain, and
 * snapshot keys of non-ASCII directory values folded as the directory folds them. The integration
 * tests attack-r10a-address-semantics and attack-r10a-ad-snapshot-folding check the same against
 * real Postfix, slapd and an AD DC; these pin the keys themselves.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { searchPlan } from '../../src/directory/presets.js';
import { servedTarget } from '../../src/gate/source-route.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { parseAddress } from '../../src/recipient/address.js';
import { RecipientValidatorImpl } from '../../src/recipient/engine.js';
import { FakeDirectory } from '../helpers/fake-directory.js';

describe('keys of quoted local parts', () => {
  const config = validateConfig({ domains: ['example.com'], recipientDelimiter: '+-', directory: { kind: 'ldap', ldap: { urls: ['ldap://127.0.0.1:1'], baseDN: 'dc=example,dc=com' } } });
  // A fake directory: what matters here is the keys asked, not a server's answer.
  const validator = new RecipientValidatorImpl({ config, directory: new FakeDirectory({}), metrics: new Metrics({ defaultMetrics: false }), logger: silentLogger() });
  const tried = async (address: string): Promise<string[]> => (await validator.lookup(address, { frontend: 'http', explain: true })).explain?.tried ?? [];

  it('splits the unquoted local part, quoting the base again where it needs it', async () => {
    assert.deepEqual(await tried('"alice+x y"@example.com'), ['"alice+x y"@example.com', 'alice+x y@example.com', 'alice@example.com', '@example.com']);
    assert.deepEqual(await tried('"al x-z w"@example.com'), ['"al x-z w"@example.com', 'al x-z w@example.com', '"al x"@example.com', 'al x@example.com', '@example.com']);
    // As Postfix: owner-… is no sub-address with "-" among the delimiters, and nothing is left of "+x y".
    assert.deepEqual(await tried('"owner-x y"@example.com'), ['"owner-x y"@example.com', 'owner-x y@example.com', '@example.com']);
    assert.deepEqual(await tried('"+x y"@example.com'), ['"+x y"@example.com', '+x y@example.com', '@example.com']);
  });

  it('keeps only the escapes a quoted local part needs', () => {
    const normalized = (a: string) => (parseAddress(a) as { value: { address: string } }).value.address;
    assert.equal(normalized('"al\\ x"@example.com'), '"al x"@example.com');
    assert.equal(normalized('"\\a\\l\\i\\c\\e"@example.com'), 'alice@example.com');
    assert.equal(normalized('"a\\"b"@example.com'), '"a\\"b"@example.com');
    assert.equal(normalized('"a\\\\b"@example.com'), '"a\\\\b"@example.com');
  });
});

describe('source routes into a served domain', () => {
  const served = (d: string) => d === 'example.com';
  it('reads an empty local part as "" and the domain as RFC 822 tokens', () => {
    assert.equal(servedTarget('"@example.com"@[127.0.0.1]', served), '""@example.com');
    assert.equal(servedTarget('"%example.com"@[127.0.0.1]', served), '""@example.com');
    assert.equal(servedTarget('"example.com!"@[127.0.0.1]', served), '""@example.com');
    assert.equal(servedTarget('"nobody@example.com "@[127.0.0.1]', served), 'nobody@example.com');
    assert.equal(servedTarget('"nobody@ \\"example.com\\""@[127.0.0.1]', served), 'nobody@example.com');
    assert.equal(servedTarget('"example.com !nobody"@[127.0.0.1]', served), 'nobody@example.com');
    // An outer local part over 64 octets is still routed on, as Postfix routes it.
    const n = 'n'.repeat(55);
    assert.equal(servedTarget(`"${n}@example.com"@[127.0.0.1]`, served), `${n}@example.com`);
    assert.equal(servedTarget(`"${n}@other.example"@[127.0.0.1]`, served), `"${n}@other.example"@[127.0.0.1]`);
    // Nothing left of the domain: not a route into ours.
    assert.equal(servedTarget('"nobody@ "@[127.0.0.1]', served), '"nobody@ "@[127.0.0.1]');
  });
});

describe('snapshot keys of non-ASCII values', () => {
  it('fold case only into non-ASCII, as every directory does: the Kelvin sign stays', () => {
    const plan = searchPlan({ preset: 'activedirectory', filter: null, matchUserPrincipalName: false });
    const entry = { dn: 'CN=x', proxyAddresses: ['SMTP:\u212Aate@ad.example.com', 'smtp:ÄRGER@AD.example.com', 'smtp:Bob@AD.example.com'] };
    assert.deepEqual(plan.addresses(entry), ['\u212Aate@ad.example.com', 'ärger@ad.example.com', 'bob@ad.example.com']);
  });
});
