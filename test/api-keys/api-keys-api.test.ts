import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/api-keys/api-key-secrets.js';
import { ADMIN_KEY, createKey, createTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

describe('API keys', () => {
  it('creates a key, shows it once, and stores only its hash', async () => {
    const response = await t.request({ method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: 'smart-home cloud' } });
    expect(response.statusCode).toBe(201);
    const created = response.json();
    expect(created).toMatchObject({ role: 'webhook', name: 'smart-home cloud', revoked_at: null });
    expect(created.key).toMatch(/^tig_[A-Za-z0-9_-]{43}$/);
    expect(created.key.startsWith(created.key_prefix)).toBe(true);

    const list = await t.request({ method: 'GET', url: '/api/v1/api-keys' });
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(created.key);
    expect(list.json().items.find((item: { id: number }) => item.id === created.id)).not.toHaveProperty('key');

    const rows = await t.database.storage.db.selectFrom('api_keys').selectAll().where('id', '=', created.id).execute();
    expect(rows[0]!.key_hash.equals(hashApiKey(created.key))).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(created.key);
    const log = await t.database.storage.db.selectFrom('event_logs').select('details').execute();
    expect(JSON.stringify(log)).not.toContain(created.key);
  });

  it('accepts a key as X-API-Key or as a Bearer token', async () => {
    const key = await createKey(t, 'admin');
    expect((await t.request({ method: 'GET', url: '/api/v1/devices', key })).statusCode).toBe(200);
    const bearer = await t.request({ method: 'GET', url: '/api/v1/devices', key: null, headers: { authorization: `Bearer ${key}` } });
    expect(bearer.statusCode).toBe(200);
    const wrongScheme = await t.request({ method: 'GET', url: '/api/v1/devices', key: null, headers: { authorization: `Basic ${key}` } });
    expect(wrongScheme.statusCode).toBe(401);
  });

  it('answers 401 without a key or with a wrong one, and 403 for the wrong role, logging each refusal', async () => {
    // From an address of its own: only the first refusal of a kind per client and minute gets a row.
    const missing = await t.request({ method: 'GET', url: '/api/v1/api-keys', key: null, headers: { 'x-request-id': 'missing-key-1' }, remoteAddress: '198.51.100.7' });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toContain('Bearer');
    const wrong = await t.request({ method: 'GET', url: '/api/v1/api-keys', key: `${ADMIN_KEY}x`, headers: { 'x-request-id': 'wrong-key-1' }, remoteAddress: '198.51.100.7' });
    expect(wrong.statusCode).toBe(401);
    const telephony = await createKey(t, 'telephony');
    const forbidden = await t.request({ method: 'GET', url: '/api/v1/api-keys', key: telephony, headers: { 'x-request-id': 'wrong-role-1' } });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().detail).toContain('admin');

    for (const [requestId, type, reason] of [
      ['missing-key-1', 'auth.rejected', 'missing_key'],
      ['wrong-key-1', 'auth.rejected', 'invalid_key'],
      ['wrong-role-1', 'auth.forbidden', 'role_not_allowed'],
    ]) {
      const log = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: requestId! } });
      expect(log.json().items).toEqual([expect.objectContaining({ type, status: 'rejected', details: expect.objectContaining({ reason, route: '/api/v1/api-keys' }) })]);
      expect(JSON.stringify(log.json())).not.toContain(ADMIN_KEY);
    }
  });

  it('revokes a key at once', async () => {
    const created = (await t.request({ method: 'POST', url: '/api/v1/api-keys', payload: { role: 'admin', name: 'temporary' } })).json();
    expect((await t.request({ method: 'GET', url: '/api/v1/devices', key: created.key })).statusCode).toBe(200);
    expect((await t.request({ method: 'DELETE', url: `/api/v1/api-keys/${created.id}` })).statusCode).toBe(204);
    expect((await t.request({ method: 'GET', url: '/api/v1/devices', key: created.key })).statusCode).toBe(401);
    const listed = (await t.request({ method: 'GET', url: '/api/v1/api-keys' })).json().items.find((item: { id: number }) => item.id === created.id);
    expect(listed.revoked_at).not.toBeNull();
    // Revoking again changes nothing and is not an error.
    expect((await t.request({ method: 'DELETE', url: `/api/v1/api-keys/${created.id}` })).statusCode).toBe(204);
  });

  it('remembers valid keys for API_KEY_CACHE_TTL_MS: a revoke on another instance reaches this one within that time', async () => {
    // Two more gateways on the same database: one remembering keys (the default), one reading the database every time.
    const caching = await createTestApp({}, { database: t.database });
    const uncached = await createTestApp({ API_KEY_CACHE_TTL_MS: '0' }, { database: t.database });
    try {
      const created = (await t.request({ method: 'POST', url: '/api/v1/api-keys', payload: { role: 'admin', name: 'shared' } })).json();
      for (const instance of [caching, uncached]) {
        expect((await instance.request({ method: 'GET', url: '/api/v1/devices', key: created.key })).statusCode).toBe(200);
      }
      expect((await t.request({ method: 'DELETE', url: `/api/v1/api-keys/${created.id}` })).statusCode).toBe(204);
      // At once where it was revoked and where nothing is remembered; the caching instance still
      // knows the key as valid until its entry expires (10 s by default).
      expect((await t.request({ method: 'GET', url: '/api/v1/devices', key: created.key })).statusCode).toBe(401);
      expect((await uncached.request({ method: 'GET', url: '/api/v1/devices', key: created.key })).statusCode).toBe(401);
      expect((await caching.request({ method: 'GET', url: '/api/v1/devices', key: created.key })).statusCode).toBe(200);
      // A wrong key is never remembered: each attempt is checked (and logged) again.
      expect((await caching.request({ method: 'GET', url: '/api/v1/devices', key: `${created.key.slice(0, -2)}xx` })).statusCode).toBe(401);
    } finally {
      await caching.app.close();
      await uncached.app.close();
    }
  });

  it('answers 404 for an unknown key id and 422 for a malformed one', async () => {
    expect((await t.request({ method: 'DELETE', url: '/api/v1/api-keys/999999' })).json().code).toBe('api_key_not_found');
    expect((await t.request({ method: 'DELETE', url: '/api/v1/api-keys/abc' })).statusCode).toBe(422);
  });

  it('refuses an unknown role, a missing name and unknown fields with 422', async () => {
    for (const payload of [{ role: 'root', name: 'x' }, { role: 'admin' }, { role: 'admin', name: 'x', key: 'chosen' }, { role: 'admin', name: '' }]) {
      const response = await t.request({ method: 'POST', url: '/api/v1/api-keys', payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(422);
    }
  });

  it('pages through the keys', async () => {
    for (let i = 0; i < 4; i++) await createKey(t, 'webhook', `paged ${i}`);
    const ids: number[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string> = { limit: '2', ...(cursor ? { cursor } : {}) };
      const body = (await t.request({ method: 'GET', url: '/api/v1/api-keys', query })).json();
      ids.push(...body.items.map((item: { id: number }) => item.id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(ids.length).toBeGreaterThanOrEqual(8);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  });
});

describe('the first admin key', () => {
  it('is created on first start when ADMIN_API_KEY is unset, once, and the last one cannot be revoked', async () => {
    const bare = await createTestApp({ ADMIN_API_KEY: '' });
    try {
      const first = await bare.app.services.apiKeys.ensureAdminKey();
      expect(first).toMatch(/^tig_/);
      expect(await bare.app.services.apiKeys.ensureAdminKey()).toBeNull();
      const keys = (await bare.request({ method: 'GET', url: '/api/v1/api-keys', key: first })).json().items;
      expect(keys).toHaveLength(1);
      // The configured test key is not accepted when ADMIN_API_KEY is unset.
      expect((await bare.request({ method: 'GET', url: '/api/v1/api-keys' })).statusCode).toBe(401);
      const refused = await bare.request({ method: 'DELETE', url: `/api/v1/api-keys/${keys[0].id}`, key: first });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().code).toBe('last_admin_key');
      const second = await createKey({ ...bare, request: (options) => bare.request({ ...options, key: first }) }, 'admin');
      expect((await bare.request({ method: 'DELETE', url: `/api/v1/api-keys/${keys[0].id}`, key: second })).statusCode).toBe(204);
    } finally {
      await bare.close();
    }
  });

  it('is not created when ADMIN_API_KEY is set', async () => {
    expect(await t.app.services.apiKeys.ensureAdminKey()).toBeNull();
  });
});
