/**
 * Which database errors mean "unavailable, retry shortly" (503 + Retry-After) rather than a bug
 * (500). The messages are pg's and pg-pool's own; the pool one was found by the two-instance
 * fault scenario, where an exhausted pool under load answered 500.
 */
import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable, isTransientConflict } from '../../src/storage/errors.js';

const coded = (code: string) => Object.assign(new Error('failed'), { code });

describe('isDatabaseUnavailable', () => {
  it.each([
    ['no pooled connection free in time (pg-pool)', new Error('timeout exceeded when trying to connect')],
    ['a connection lost mid-query (pg)', new Error('Connection terminated unexpectedly')],
    ['a refused connection', coded('ECONNREFUSED')],
    ['a reset connection', coded('ECONNRESET')],
    ['the server shutting down', coded('57P01')],
    ['too many connections', coded('53300')],
    ['a statement timeout', coded('57014')],
    ['a connection exception class 08', coded('08006')],
    ['the cause of a wrapping error', new Error('query failed', { cause: coded('ECONNRESET') })],
  ])('%s: unavailable', (_what, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['a unique violation', coded('23505')],
    ['a syntax error', coded('42601')],
    ['a plain bug', new TypeError('cannot read properties of undefined')],
    ['not an error at all', 'timeout exceeded when trying to connect'],
  ])('%s: not unavailable', (_what, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('isTransientConflict', () => {
  it('a deadlock victim (40P01) and a serialization failure (40001) are worth retrying (503, not 500)', () => {
    expect(isTransientConflict(coded('40P01'))).toBe(true);
    expect(isTransientConflict(coded('40001'))).toBe(true);
    expect(isTransientConflict(new Error('insert failed', { cause: coded('40P01') }))).toBe(true);
  });

  it('other errors are not', () => {
    expect(isTransientConflict(coded('23505'))).toBe(false);
    expect(isTransientConflict(new Error('deadlock detected'))).toBe(false);
  });
});
