import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvent, appendEvents } from '../../src/event-log/event-log.js';
import { createTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const types = (body: { items: { type: string }[] }) => body.items.map((item) => item.type);

describe('GET /api/v1/event-logs', () => {
  it('tells the story of a device, newest first, tied by the request id', async () => {
    const created = await t.request({
      method: 'POST',
      url: '/api/v1/devices',
      headers: { 'x-request-id': 'story-1' },
      payload: { device_id: 'story-speaker', type: 'speaker', msisdn: '+79161112233', endpoint: 'https://user:pa55word@127.0.0.1/n' },
    });
    expect(created.statusCode).toBe(201);
    await t.request({ method: 'PATCH', url: '/api/v1/devices/story-speaker', payload: { name: 'Hall' } });
    await t.request({ method: 'POST', url: '/api/v1/devices/story-speaker/rotate-secret' });

    const log = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { device_id: 'story-speaker' } })).json();
    expect(types(log)).toEqual(['device.secret_rotated', 'device.updated', 'device.created']);
    expect(log.items[2]).toMatchObject({ msisdn: '+79161112233', correlation_id: 'story-1', request_id: 'story-1', status: 'ok' });
    // Neither the signing secret nor the endpoint's password reaches the log.
    const text = JSON.stringify(log);
    expect(text).not.toContain(created.json().signing_secret);
    expect(text).not.toContain('pa55word');

    const byCorrelation = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: 'story-1' } })).json();
    expect(types(byCorrelation)).toEqual(['device.created']);
  });

  it('filters by number in any spelling, by exact type and by type family', async () => {
    const byNumber = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { msisdn: '8 916 111-22-33' } })).json();
    expect(byNumber.items.length).toBeGreaterThanOrEqual(3);
    const exact = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'device.updated' } })).json();
    expect(new Set(types(exact))).toEqual(new Set(['device.updated']));
    const family = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'device.*' } })).json();
    expect(new Set(types(family))).toEqual(new Set(['device.created', 'device.updated', 'device.secret_rotated']));
  });

  it('filters by time range', async () => {
    const db = t.database.storage.db;
    await db
      .insertInto('event_logs')
      .values([
        { type: 'test.old', status: 'info', at: new Date('2020-01-01T00:00:00Z'), details: '{}' },
        { type: 'test.old', status: 'info', at: new Date('2020-01-02T00:00:00Z'), details: '{}' },
      ])
      .execute();
    const response = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { since: '2020-01-01T12:00:00Z', until: '2020-01-03T00:00:00Z' } });
    expect(response.json().items.map((item: { at: string }) => item.at)).toEqual(['2020-01-02T00:00:00.000Z']);
  });

  it('reads a time range newest first by time, paged by (time, id) without a row lost or repeated', async () => {
    const db = t.database.storage.db;
    // Written out of time order (a later id may carry an earlier time), two rows in the same
    // microsecond, and rows outside the range on both sides.
    const times = ['2021-03-01T10:00:00.000001Z', '2021-03-01T09:00:00Z', '2021-03-01T11:30:00Z', '2021-03-01T09:00:00Z', '2021-03-01T10:59:59.999999Z', '2021-03-01T08:59:59Z', '2021-03-01T12:00:00Z'];
    for (const [index, at] of times.entries()) {
      await db.insertInto('event_logs').values({ type: 'test.range', status: 'info', at: sql<Date>`${at}::timestamptz`, details: JSON.stringify({ index }) }).execute();
    }
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string> = { type: 'test.range', since: '2021-03-01T09:00:00Z', until: '2021-03-01T12:00:00Z', limit: '2', ...(cursor ? { cursor } : {}) };
      const body = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query })).json<{ items: { details: { index: number } }[]; next_cursor: string | null }>();
      seen.push(...body.items.map((item) => item.details.index));
      cursor = body.next_cursor;
    } while (cursor);
    // 11:30, 10:59:59.999999, 10:00:00.000001, then the two at 09:00 (the later id first).
    expect(seen).toEqual([2, 4, 0, 3, 1]);
    // A cursor of the id-ordered list is not one of this list.
    const idCursor = Buffer.from('v1:5').toString('base64url');
    const refused = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { since: '2021-03-01T09:00:00Z', cursor: idCursor } });
    expect(refused.statusCode).toBe(422);
    expect(refused.json()).toMatchObject({ code: 'invalid_cursor' });
  });

  it('pages with a stable cursor while new rows keep arriving', async () => {
    await appendEvents(
      t.database.storage.db,
      Array.from({ length: 25 }, (_, i) => ({ type: 'test.paging', status: 'info' as const, correlationId: 'paging', details: { n: i } })),
    );
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string> = { correlation_id: 'paging', limit: '10', ...(cursor ? { cursor } : {}) };
      const body = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query })).json();
      seen.push(...body.items.map((item: { details: { n: number } }) => item.details.n));
      cursor = body.next_cursor;
      // Rows written between pages are newer than the cursor and do not shift later pages.
      await appendEvent(t.database.storage.db, { type: 'test.paging', status: 'info', correlationId: 'paging', details: { n: 1000 + seen.length } });
    } while (cursor);
    expect(seen.slice(0, 25)).toEqual(Array.from({ length: 25 }, (_, i) => 24 - i));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('never writes secret-looking fields', async () => {
    await appendEvent(t.database.storage.db, {
      type: 'test.secret',
      status: 'info',
      correlationId: 'secret-check',
      details: { key: 'tig_abc', nested: { signing_secret: 'whsec_x', password: 'p' }, list: [{ token: 't' }], kept: 'visible' },
    });
    const row = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: 'secret-check' } })).json().items[0];
    expect(row.details).toEqual({ key: '[redacted]', nested: { signing_secret: '[redacted]', password: '[redacted]' }, list: [{ token: '[redacted]' }], kept: 'visible' });
  });

  it('refuses bad filters with 422 and needs the admin role', async () => {
    const queries: Record<string, string>[] = [{ since: 'yesterday' }, { type: 'DROP TABLE' }, { msisdn: 'x' }, { cursor: 'x' }, { limit: '501' }, { level: 'debug' }];
    for (const query of queries) {
      const response = await t.request({ method: 'GET', url: '/api/v1/event-logs', query });
      expect(response.statusCode, JSON.stringify(query)).toBe(422);
    }
    expect((await t.request({ method: 'GET', url: '/api/v1/event-logs', key: null })).statusCode).toBe(401);
  });
});
