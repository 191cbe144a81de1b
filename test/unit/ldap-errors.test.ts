import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BusyError,
  InsufficientAccessError,
  InvalidCredentialsError,
  NoSuchObjectError,
  OperationsError,
  SizeLimitExceededError,
  StrongAuthRequiredError,
  TimeLimitExceededError,
  UnavailableError,
} from 'ldapts';
import { DirectoryError, ErrorCodes } from '../../src/errors.js';
import { directoryCodeForResult, isConnectionFailure, toDirectoryError } from '../../src/directory/ldap-errors.js';

const url = 'ldap://ldap1.example.com:389';

function socketError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('toDirectoryError', () => {
  test('a refused bind is AUTH and says it is a configuration error, naming the bind DN', () => {
    const err = toDirectoryError(new InvalidCredentialsError('bad password'), { operation: 'bind', url, bindDN: 'cn=svc,dc=example,dc=com' });
    assert.equal(err.code, ErrorCodes.DIRECTORY_AUTH);
    assert.match(err.message, /bind as "cn=svc,dc=example,dc=com" was refused by ldap:\/\/ldap1/);
    assert.match(err.message, /invalidCredentials \(49\)/);
    assert.match(err.message, /configuration error/);
    assert.ok(err.cause instanceof InvalidCredentialsError);
  });

  test('a bind refused for lack of TLS says to use LDAPS or StartTLS', () => {
    const err = toDirectoryError(new StrongAuthRequiredError(), { operation: 'bind', url, bindDN: null });
    assert.equal(err.code, ErrorCodes.DIRECTORY_AUTH);
    assert.match(err.message, /refuses simple binds without TLS; use ldaps:\/\/ .*startTLS: true/);
  });

  test('an anonymous bind refused says so', () => {
    const err = toDirectoryError(new InvalidCredentialsError(), { operation: 'bind', url, bindDN: null });
    assert.equal(err.code, ErrorCodes.DIRECTORY_AUTH);
    assert.match(err.message, /bind anonymously was refused/);
  });

  test('missing rights on a search are AUTH too', () => {
    assert.equal(toDirectoryError(new InsufficientAccessError(), { operation: 'search', url }).code, ErrorCodes.DIRECTORY_AUTH);
  });

  test('busy and unavailable servers are UNAVAILABLE, time limits TIMEOUT', () => {
    assert.equal(toDirectoryError(new BusyError(), { operation: 'search', url }).code, ErrorCodes.DIRECTORY_UNAVAILABLE);
    assert.equal(toDirectoryError(new UnavailableError(), { operation: 'search', url }).code, ErrorCodes.DIRECTORY_UNAVAILABLE);
    assert.equal(toDirectoryError(new TimeLimitExceededError(), { operation: 'search', url }).code, ErrorCodes.DIRECTORY_TIMEOUT);
  });

  test('any other result code is PROTOCOL, and size limits say how to fix them', () => {
    assert.equal(toDirectoryError(new OperationsError(), { operation: 'search', url }).code, ErrorCodes.DIRECTORY_PROTOCOL);
    assert.equal(toDirectoryError(new NoSuchObjectError(), { operation: 'paged search', url }).code, ErrorCodes.DIRECTORY_PROTOCOL);
    const limit = toDirectoryError(new SizeLimitExceededError(), { operation: 'paged search', url });
    assert.equal(limit.code, ErrorCodes.DIRECTORY_PROTOCOL);
    assert.match(limit.message, /size=unlimited/);
  });

  test('result codes map in one table', () => {
    assert.equal(directoryCodeForResult(49), ErrorCodes.DIRECTORY_AUTH);
    assert.equal(directoryCodeForResult(52), ErrorCodes.DIRECTORY_UNAVAILABLE);
    assert.equal(directoryCodeForResult(3), ErrorCodes.DIRECTORY_TIMEOUT);
    assert.equal(directoryCodeForResult(10), ErrorCodes.DIRECTORY_PROTOCOL);
  });

  test('refused, reset and unresolvable connections are UNAVAILABLE and name the URL', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'ETIMEDOUT']) {
      const err = toDirectoryError(socketError(code, `connect ${code}`), { operation: 'connect', url });
      assert.equal(err.code, ErrorCodes.DIRECTORY_UNAVAILABLE, code);
      assert.ok(err.message.includes(url));
      assert.ok(isConnectionFailure(err));
    }
  });

  test('ldapts timeouts are TIMEOUT', () => {
    assert.equal(toDirectoryError(new Error('Connection timeout'), { operation: 'connect', url }).code, ErrorCodes.DIRECTORY_TIMEOUT);
    assert.equal(toDirectoryError(new Error('SearchRequest: Operation timed out'), { operation: 'search', url }).code, ErrorCodes.DIRECTORY_TIMEOUT);
  });

  test('a connection closed mid-request is UNAVAILABLE and worth a retry', () => {
    const err = toDirectoryError(new Error('Connection closed before message response was received. Message type: SearchRequest (0x63)'), { operation: 'search', url });
    assert.equal(err.code, ErrorCodes.DIRECTORY_UNAVAILABLE);
    assert.ok(isConnectionFailure(err));
  });

  test('an LDAP unavailable result is not a connection failure', () => {
    assert.equal(isConnectionFailure(toDirectoryError(new UnavailableError(), { operation: 'search', url })), false);
  });

  test('TLS verification failures point at the CA file', () => {
    const err = toDirectoryError(socketError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), { operation: 'connect', url: 'ldaps://ldap1:636' });
    assert.equal(err.code, ErrorCodes.DIRECTORY_UNAVAILABLE);
    assert.match(err.message, /TLS .*directory\.ldap\.tls\.caFile/);
  });

  test('a DirectoryError passes through unchanged and unknown throws still become DirectoryErrors', () => {
    const original = new DirectoryError(ErrorCodes.DIRECTORY_OVERLOADED, 'busy');
    assert.equal(toDirectoryError(original, { operation: 'search' }), original);
    const odd = toDirectoryError('weird', { operation: 'search' });
    assert.ok(odd instanceof DirectoryError);
    assert.equal(odd.code, ErrorCodes.DIRECTORY_UNAVAILABLE);
  });
});
