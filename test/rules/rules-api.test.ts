import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, createTestApp, type TestApp } from '../support/app.js';
import type { MatchableEvent } from '../../src/rules/rules-repository.js';
import type { DbOrTrx } from '../../src/storage/database.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  const devices = [
    { device_id: 'smoke-1', type: 'sensor_smoke', msisdn: '+7 916 123-45-67' },
    { device_id: 'spk-1', type: 'speaker', msisdn: '+7 916 123-45-67', endpoint: 'http://127.0.0.1:9/notify' },
  ];
  for (const payload of devices) {
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload })).statusCode).toBe(201);
  }
});
afterAll(async () => {
  await t.close();
});

const call = (extra: Record<string, unknown> = {}) => ({ type: 'call', to: ['+7 916 111-22-33'], message: 'Smoke in the kitchen!', ...extra });
const rule = (extra: Record<string, unknown> = {}) => ({ name: 'Kitchen smoke', event_type: 'smoke', device_id: 'smoke-1', action: call(), ...extra });

async function createRule(payload: Record<string, unknown>) {
  const response = await t.request({ method: 'POST', url: '/api/v1/rules', payload });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: number; [field: string]: unknown }>();
}

function fieldsOf(body: { errors?: { field: string }[] }): string[] {
  return (body.errors ?? []).map((error) => error.field);
}

describe('POST /api/v1/rules', () => {
  it('creates a device-bound rule and shows every default', async () => {
    const response = await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule() });
    expect(response.statusCode).toBe(201);
    const body = response.json();
    expect(response.headers.location).toBe(`/api/v1/rules/${body.id}`);
    expect(body).toEqual({
      id: expect.any(Number),
      name: 'Kitchen smoke',
      enabled: true,
      event_type: 'smoke',
      device_id: 'smoke-1',
      msisdn: null,
      action: {
        type: 'call',
        to: ['+79161112233'],
        message: 'Smoke in the kitchen!',
        caller_id: null,
        ring_timeout_s: 30,
        attempts: 2,
        retry_delay_s: 60,
        require_ack: true,
      },
      cooldown_s: 60,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const again = await t.request({ method: 'GET', url: `/api/v1/rules/${body.id}` });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(body);
  });

  it('creates a number-bound rule, every number in E.164', async () => {
    const payload = rule({
      device_id: undefined,
      msisdn: '8 (916) 123-45-67',
      event_type: 'test',
      enabled: false,
      cooldown_s: 0,
      action: call({
        to: ['+7 916 111-22-33', '8 (916) 765-43-21', '0044 20 7946 0958', 'tel:+79160001122'],
        caller_id: '8 495 123-45-67',
        ring_timeout_s: 5,
        attempts: 10,
        retry_delay_s: 0,
        require_ack: false,
      }),
    });
    const body = await createRule(payload);
    expect(body).toMatchObject({
      device_id: null,
      msisdn: '+79161234567',
      event_type: 'test',
      enabled: false,
      cooldown_s: 0,
      action: {
        type: 'call',
        to: ['+79161112233', '+79167654321', '+442079460958', '+79160001122'],
        caller_id: '+74951234567',
        ring_timeout_s: 5,
        attempts: 10,
        retry_delay_s: 0,
        require_ack: false,
      },
    });
  });

  it('accepts a Cyrillic message with the allowed punctuation', async () => {
    const message = 'Внимание: пожар на кухне! Квартира №12, подъезд 3. Нажмите 1 (подтвердить) или * - 100% / +7 @дом?';
    const body = await createRule(rule({ name: 'Пожар', action: call({ message: `  ${message} ` }) }));
    expect(body.name).toBe('Пожар');
    expect((body.action as { message: string }).message).toBe(message);
  });

  it('needs a key (401) of the admin role (403)', async () => {
    expect((await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule(), key: null })).statusCode).toBe(401);
    expect((await t.request({ method: 'GET', url: '/api/v1/rules', key: 'tig_not-a-real-key-at-all' })).statusCode).toBe(401);
    const webhookKey = await createKey(t, 'webhook');
    for (const [method, url] of [['POST', '/api/v1/rules'], ['GET', '/api/v1/rules'], ['GET', '/api/v1/rules/1'], ['PATCH', '/api/v1/rules/1'], ['DELETE', '/api/v1/rules/1']] as const) {
      const response = await t.request({ method, url, key: webhookKey, ...(method === 'POST' ? { payload: rule() } : method === 'PATCH' ? { payload: { name: 'x' } } : {}) });
      expect(response.statusCode, `${method} ${url}`).toBe(403);
      expect(response.json().code).toBe('forbidden');
    }
  });

  const eleven = Array.from({ length: 11 }, (_, i) => `+791611122${String(i).padStart(2, '0')}`);
  it.each([
    ['both device_id and msisdn', rule({ msisdn: '+79161234567' }), ['body.device_id', 'body.msisdn']],
    ['neither device_id nor msisdn', rule({ device_id: undefined }), ['body.device_id', 'body.msisdn']],
    ['an unknown device', rule({ device_id: 'no-such-device' }), ['body.device_id']],
    ['an event type the device does not report', rule({ device_id: 'spk-1' }), ['body.event_type']],
    ['an event type no device reports', rule({ event_type: 'fire' }), ['body.event_type']],
    ['a bad number to bind to', rule({ device_id: undefined, msisdn: '12345' }), ['body.msisdn']],
    ['a bad number in to', rule({ action: call({ to: ['+79161112233', '12345'] }) }), ['body.action.to.1']],
    ['letters in a number in to', rule({ action: call({ to: ['+7916abc2233'] }) }), ['body.action.to.0']],
    ['a number in to given as a JSON number', rule({ action: call({ to: [79161112233] }) }), ['body.action.to.0']],
    ['an empty to', rule({ action: call({ to: [] }) }), ['body.action.to']],
    ['11 numbers in to', rule({ action: call({ to: eleven }) }), ['body.action.to']],
    ['the same number twice, spelled differently', rule({ action: call({ to: ['+7 916 111-22-33', '+79167654321', '8 (916) 111 22 33'] }) }), ['body.action.to.2']],
    ['a bad caller_id', rule({ action: call({ caller_id: 'anonymous' }) }), ['body.action.caller_id']],
    ['a message with a quote', rule({ action: call({ message: "It's on fire" }) }), ['body.action.message']],
    ['a message with a double quote', rule({ action: call({ message: 'say "fire"' }) }), ['body.action.message']],
    ['a message with a brace', rule({ action: call({ message: 'fire ${hangup}' }) }), ['body.action.message']],
    ['a message with a newline', rule({ action: call({ message: 'fire\nhangup' }) }), ['body.action.message']],
    ['a message with a pipe', rule({ action: call({ message: 'fire | hangup' }) }), ['body.action.message']],
    ['a message with an ampersand', rule({ action: call({ message: 'fire & smoke' }) }), ['body.action.message']],
    ['a message with brackets', rule({ action: call({ message: 'fire [1]' }) }), ['body.action.message']],
    ['a message with a backslash', rule({ action: call({ message: 'fire \\ smoke' }) }), ['body.action.message']],
    ['a message with angle brackets', rule({ action: call({ message: '<speak>fire</speak>' }) }), ['body.action.message']],
    ['a message with a tab', rule({ action: call({ message: 'fire\tsmoke' }) }), ['body.action.message']],
    ['a message with no letter or digit', rule({ action: call({ message: ' ... ' }) }), ['body.action.message']],
    ['an empty message', rule({ action: call({ message: '' }) }), ['body.action.message']],
    ['a message of 501 characters', rule({ action: call({ message: 'а'.repeat(501) }) }), ['body.action.message']],
    ['attempts 0', rule({ action: call({ attempts: 0 }) }), ['body.action.attempts']],
    ['attempts 11', rule({ action: call({ attempts: 11 }) }), ['body.action.attempts']],
    ['ring_timeout_s 500', rule({ action: call({ ring_timeout_s: 500 }) }), ['body.action.ring_timeout_s']],
    ['ring_timeout_s 4', rule({ action: call({ ring_timeout_s: 4 }) }), ['body.action.ring_timeout_s']],
    ['retry_delay_s 3601', rule({ action: call({ retry_delay_s: 3601 }) }), ['body.action.retry_delay_s']],
    ['require_ack as a string', rule({ action: call({ require_ack: 'yes' }) }), ['body.action.require_ack']],
    ['an action without type', rule({ action: { to: ['+79161112233'], message: 'fire' } }), ['body.action.type']],
    ['an action without to', rule({ action: call({ to: undefined }) }), ['body.action.to']],
    ['a missing action', rule({ action: undefined }), ['body.action']],
    ['an unknown field in the action', rule({ action: call({ volume: 11 }) }), ['body.action.volume']],
    ['an unknown field in the rule', rule({ colour: 'red' }), ['body.colour']],
    ['an empty name', rule({ name: '' }), ['body.name']],
    ['a name of 201 characters', rule({ name: 'x'.repeat(201) }), ['body.name']],
    ['a negative cooldown', rule({ cooldown_s: -1 }), ['body.cooldown_s']],
    ['a cooldown over a day', rule({ cooldown_s: 86_401 }), ['body.cooldown_s']],
    ['enabled as a string', rule({ enabled: 'true' }), ['body.enabled']],
  ])('refuses %s with 422 naming the field', async (_name, payload, fields) => {
    const response = await t.request({ method: 'POST', url: '/api/v1/rules', payload });
    expect(response.statusCode, response.body).toBe(422);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = response.json();
    expect(body.code).toBe('validation_failed');
    expect(fieldsOf(body)).toEqual(expect.arrayContaining(fields));
  });

  it('explains what is wrong with the target', async () => {
    const unknown = (await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule({ device_id: 'no-such-device' }) })).json();
    expect(unknown.detail).toBe('body.device_id: no device no-such-device is registered');
    const speaker = (await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule({ device_id: 'spk-1' }) })).json();
    expect(speaker.errors).toEqual([{ field: 'body.event_type', message: 'device spk-1 (a speaker) reports no events, not smoke' }]);
    const duplicate = (await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule({ action: call({ to: ['+79161112233', '89161112233'] }) }) })).json();
    expect(duplicate.errors[0].message).toMatch(/\+79161112233 again \(already body\.action\.to\.0\)/);
  });

  it('says which action types exist when the type is unknown', async () => {
    for (const type of ['sms', 'CALL', 42, null, '__proto__']) {
      const response = await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule({ action: call({ type }) }) });
      expect(response.statusCode, String(type)).toBe(422);
      expect(response.json().errors).toEqual([{ field: 'body.action.type', message: 'must be one of: call' }]);
    }
  });

  it('stores nothing for a refused rule', async () => {
    const before = (await t.request({ method: 'GET', url: '/api/v1/rules', query: { limit: '500' } })).json().items.length;
    await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule({ device_id: 'spk-1' }) });
    await t.request({ method: 'POST', url: '/api/v1/rules', payload: rule({ action: call({ message: "it's" }) }) });
    expect((await t.request({ method: 'GET', url: '/api/v1/rules', query: { limit: '500' } })).json().items.length).toBe(before);
  });
});

describe('GET /api/v1/rules', () => {
  const pageNumber = '+44 20 7946 0958';
  beforeAll(async () => {
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'smoke-page', type: 'sensor_smoke', msisdn: pageNumber } })).statusCode).toBe(201);
    for (let i = 0; i < 7; i++) {
      await createRule(rule({ name: `page-${i}`, device_id: undefined, msisdn: pageNumber, event_type: i % 3 === 0 ? 'smoke_cleared' : 'smoke', enabled: i % 2 === 0 }));
    }
    await createRule(rule({ name: 'page-device', device_id: 'smoke-page' }));
  });

  async function listAll(query: Record<string, string>, limit: number) {
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await t.request({ method: 'GET', url: '/api/v1/rules', query: { ...query, limit: String(limit), ...(cursor ? { cursor } : {}) } });
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json();
      expect(body.items.length).toBeLessThanOrEqual(limit);
      names.push(...body.items.map((item: { name: string }) => item.name));
      cursor = body.next_cursor;
      pages++;
    } while (cursor);
    return { names, pages };
  }

  it('pages through the rules of a number, in order, without repeats', async () => {
    const { names, pages } = await listAll({ msisdn: '0044 20 7946 0958' }, 3);
    expect(pages).toBe(3);
    expect(names).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6']);
  });

  it('combines filters across pages', async () => {
    expect((await listAll({ msisdn: '+442079460958', event_type: 'smoke', enabled: 'true' }, 1)).names).toEqual(['page-2', 'page-4']);
    expect((await listAll({ msisdn: '+442079460958', enabled: 'false' }, 2)).names).toEqual(['page-1', 'page-3', 'page-5']);
    expect((await listAll({ msisdn: '+442079460958', event_type: 'smoke_cleared' }, 2)).names).toEqual(['page-0', 'page-3', 'page-6']);
    expect((await listAll({ device_id: 'smoke-page' }, 2)).names).toEqual(['page-device']);
  });

  it('refuses a bad cursor, limit or filter with 422', async () => {
    const queries: Record<string, string>[] = [
      { cursor: 'garbage' },
      { limit: '0' },
      { limit: '100000' },
      { event_type: 'fire' },
      { msisdn: 'not a number' },
      { enabled: 'maybe' },
      { device_id: 'bad id' },
      { colour: 'red' },
    ];
    for (const query of queries) {
      const response = await t.request({ method: 'GET', url: '/api/v1/rules', query });
      expect(response.statusCode, JSON.stringify(query)).toBe(422);
    }
  });
});

describe('GET, PATCH and DELETE /api/v1/rules/{id}', () => {
  it('answers 404 for an unknown rule on every route, and 422 for an id that cannot be one', async () => {
    for (const [method, payload] of [['GET', undefined], ['PATCH', { name: 'x' }], ['DELETE', undefined]] as const) {
      const response = await t.request({ method, url: '/api/v1/rules/999999', ...(payload ? { payload } : {}) });
      expect(response.statusCode, method).toBe(404);
      expect(response.json().code).toBe('rule_not_found');
    }
    for (const id of ['abc', '0', '-1', '1.5', '9007199254740992', '99999999999999999999']) {
      const response = await t.request({ method: 'GET', url: `/api/v1/rules/${id}` });
      expect(response.statusCode, id).toBe(422);
      expect(fieldsOf(response.json())).toEqual(['params.id']);
    }
    expect((await t.request({ method: 'GET', url: `/api/v1/rules/${Number.MAX_SAFE_INTEGER}` })).statusCode).toBe(404);
  });

  it('changes only the given fields', async () => {
    const created = await createRule(rule({ name: 'patch-me', action: call({ attempts: 5 }) }));
    const response = await t.request({ method: 'PATCH', url: `/api/v1/rules/${created.id}`, payload: { name: 'patched', enabled: false, cooldown_s: 300 } });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json();
    expect(body).toEqual({ ...created, name: 'patched', enabled: false, cooldown_s: 300, updated_at: expect.any(String) });
    expect(Date.parse(body.updated_at)).toBeGreaterThanOrEqual(Date.parse(created.updated_at as string));
    expect((await t.request({ method: 'GET', url: `/api/v1/rules/${created.id}` })).json()).toEqual(body);
  });

  it('replaces the action whole, defaults again included', async () => {
    const created = await createRule(rule({ action: call({ attempts: 5, caller_id: '+74951234567', require_ack: false }) }));
    const response = await t.request({ method: 'PATCH', url: `/api/v1/rules/${created.id}`, payload: { action: call({ to: ['8 916 765 43 21'], message: 'Дым' }) } });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json().action).toEqual({
      type: 'call',
      to: ['+79167654321'],
      message: 'Дым',
      caller_id: null,
      ring_timeout_s: 30,
      attempts: 2,
      retry_delay_s: 60,
      require_ack: true,
    });
  });

  it('switches a rule from a device to a number and back, one clearing the other', async () => {
    const created = await createRule(rule({ name: 'switch' }));
    const toNumber = await t.request({ method: 'PATCH', url: `/api/v1/rules/${created.id}`, payload: { msisdn: '8 916 123 45 67' } });
    expect(toNumber.statusCode, toNumber.body).toBe(200);
    expect(toNumber.json()).toMatchObject({ device_id: null, msisdn: '+79161234567', name: 'switch' });
    // A number-bound rule may match any event type some device reports.
    const speakerLess = await t.request({ method: 'PATCH', url: `/api/v1/rules/${created.id}`, payload: { event_type: 'smoke_cleared' } });
    expect(speakerLess.json()).toMatchObject({ event_type: 'smoke_cleared', msisdn: '+79161234567' });
    const toDevice = await t.request({ method: 'PATCH', url: `/api/v1/rules/${created.id}`, payload: { device_id: 'smoke-1', event_type: 'test' } });
    expect(toDevice.statusCode, toDevice.body).toBe(200);
    expect(toDevice.json()).toMatchObject({ device_id: 'smoke-1', msisdn: null, event_type: 'test' });

    const log = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { type: 'rule.updated', msisdn: '+79161234567' } });
    const rows = log.json().items.filter((item: { details: { rule_id: number } }) => item.details.rule_id === created.id);
    expect(rows.map((item: { details: { changed: string[] } }) => item.details.changed)).toEqual([['event_type'], ['msisdn']]);
    expect(rows[1]).toMatchObject({ device_id: null, msisdn: '+79161234567', details: { changed: ['msisdn'], previous_target: { device_id: 'smoke-1', msisdn: null } } });
  });

  it('checks the device against the event type whichever of them changes', async () => {
    const created = await createRule(rule({ name: 'checked' }));
    const url = `/api/v1/rules/${created.id}`;
    const cases: [Record<string, unknown>, string][] = [
      [{ device_id: 'spk-1' }, 'body.device_id'],
      [{ device_id: 'no-such-device' }, 'body.device_id'],
      [{ device_id: 'spk-1', event_type: 'test' }, 'body.event_type'],
      [{ event_type: 'fire' }, 'body.event_type'],
    ];
    for (const [payload, field] of cases) {
      const response = await t.request({ method: 'PATCH', url, payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(422);
      expect(fieldsOf(response.json()), JSON.stringify(payload)).toContain(field);
    }
    expect((await t.request({ method: 'GET', url })).json()).toMatchObject({ device_id: 'smoke-1', event_type: 'smoke' });
  });

  it('refuses an empty patch, both targets, unknown fields and a bad action', async () => {
    const created = await createRule(rule({ name: 'refuse-patch' }));
    const url = `/api/v1/rules/${created.id}`;
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'body'],
      [{ device_id: 'smoke-1', msisdn: '+79161234567' }, 'body.msisdn'],
      [{ colour: 'red' }, 'body.colour'],
      [{ id: 5 }, 'body.id'],
      [{ created_at: '2020-01-01T00:00:00Z' }, 'body.created_at'],
      [{ device_id: null }, 'body.device_id'],
      [{ action: call({ to: ['nope'] }) }, 'body.action.to.0'],
      [{ action: call({ message: 'a|b' }) }, 'body.action.message'],
      [{ action: call({ type: 'sms' }) }, 'body.action.type'],
      [{ action: { type: 'call' } }, 'body.action.to'],
      [{ cooldown_s: 86_401 }, 'body.cooldown_s'],
      [{ name: '' }, 'body.name'],
    ];
    for (const [payload, field] of cases) {
      const response = await t.request({ method: 'PATCH', url, payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(422);
      expect(fieldsOf(response.json()), JSON.stringify(payload)).toContain(field);
    }
    expect((await t.request({ method: 'GET', url })).json()).toEqual(created);
  });

  it('deletes a rule, even one with an alarm running on its snapshot', async () => {
    const created = await createRule(rule({ name: 'delete-me' }));
    const alarmId = randomUUID();
    await t.database.storage.db
      .insertInto('alarms')
      .values({
        id: alarmId,
        rule_id: created.id,
        device_id: 'smoke-1',
        msisdn: '+79161234567',
        event_id: `evt-${alarmId}`,
        event_type: 'smoke',
        status: 'active',
        action: JSON.stringify(created.action),
        correlation_id: alarmId,
        started_at: new Date(),
      })
      .execute();
    expect((await t.request({ method: 'DELETE', url: `/api/v1/rules/${created.id}` })).statusCode).toBe(204);
    expect((await t.request({ method: 'GET', url: `/api/v1/rules/${created.id}` })).statusCode).toBe(404);
    expect((await t.request({ method: 'DELETE', url: `/api/v1/rules/${created.id}` })).statusCode).toBe(404);
    const alarm = await t.database.storage.db.selectFrom('alarms').select(['status', 'action']).where('id', '=', alarmId).executeTakeFirstOrThrow();
    expect(alarm).toEqual({ status: 'active', action: created.action });
  });
});

describe('event log', () => {
  it('records rule.created, rule.updated and rule.deleted with the rule id, target and actor', async () => {
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'smoke-log', type: 'sensor_smoke', msisdn: '+79031112233' } })).statusCode).toBe(201);
    const created = await createRule(rule({ name: 'logged', device_id: 'smoke-log', action: call({ to: ['+79161112233', '+79167654321'] }) }));
    await t.request({ method: 'PATCH', url: `/api/v1/rules/${created.id}`, payload: { enabled: false, action: call({ attempts: 1 }) }, headers: { 'x-request-id': 'patch-rule-log' } });
    await t.request({ method: 'DELETE', url: `/api/v1/rules/${created.id}` });

    const log = await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { device_id: 'smoke-log', type: 'rule.*' } });
    const rows = log.json().items;
    expect(rows.map((row: { type: string }) => row.type)).toEqual(['rule.deleted', 'rule.updated', 'rule.created']);
    const [deleted, updated, createdRow] = rows;
    expect(createdRow).toMatchObject({
      status: 'ok',
      device_id: 'smoke-log',
      msisdn: null,
      details: {
        rule_id: created.id,
        name: 'logged',
        event_type: 'smoke',
        enabled: true,
        cooldown_s: 60,
        action: 'call +79161112233, +79167654321 (2 attempts each, ringing 30 s, 60 s apart, until acknowledged)',
        by: 'ADMIN_API_KEY',
      },
    });
    expect(updated).toMatchObject({
      request_id: 'patch-rule-log',
      correlation_id: 'patch-rule-log',
      details: { rule_id: created.id, changed: ['enabled', 'action'], action: 'call +79161112233 (1 attempt each, ringing 30 s, 60 s apart, until acknowledged)' },
    });
    expect(updated.details).not.toHaveProperty('previous_target');
    expect(deleted).toMatchObject({ details: { rule_id: created.id, name: 'logged', event_type: 'smoke' } });
  });
});

describe('RulesService.findMatching', () => {
  const number = '+79261112233';
  const ids: Record<string, number> = {};
  beforeAll(async () => {
    for (const device_id of ['match-a', 'match-b']) {
      expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id, type: 'sensor_smoke', msisdn: number } })).statusCode).toBe(201);
    }
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'match-other', type: 'sensor_smoke', msisdn: '+79267654321' } })).statusCode).toBe(201);
    const rules: [string, Record<string, unknown>][] = [
      ['by-number', { msisdn: '8 926 111 22 33' }],
      ['by-device-a', { device_id: 'match-a' }],
      ['by-device-a-disabled', { device_id: 'match-a', enabled: false }],
      ['by-device-a-cleared', { device_id: 'match-a', event_type: 'smoke_cleared' }],
      ['by-device-b', { device_id: 'match-b' }],
      ['by-other-device', { device_id: 'match-other' }],
      ['by-other-number', { msisdn: '+79267654321' }],
      ['by-number-disabled', { msisdn: number, enabled: false }],
      ['by-number-test', { msisdn: number, event_type: 'test' }],
    ];
    for (const [name, extra] of rules) {
      ids[name] = (await createRule(rule({ name, device_id: undefined, ...extra }))).id;
    }
  });

  /** Each event's rules, from one query for all of them (as the intake asks for a batch). */
  const matchingEach = async (db: DbOrTrx, events: MatchableEvent[]) => {
    const matches = await t.app.services.rules.findMatches(db, events);
    return events.map((_, index) => matches.filter((match) => match.event === index).map((match) => match.rule.name));
  };
  const matching = async (eventType: string, deviceId: string, msisdn = number) =>
    (await matchingEach(t.database.storage.db, [{ eventType, deviceId, msisdn }]))[0];

  it('finds the enabled rules of the device and of its number, in id order', async () => {
    expect(await matching('smoke', 'match-a')).toEqual(['by-number', 'by-device-a']);
    expect(await matching('smoke', 'match-b')).toEqual(['by-number', 'by-device-b']);
    expect(await matching('smoke_cleared', 'match-a')).toEqual(['by-device-a-cleared']);
    expect(await matching('test', 'match-a')).toEqual(['by-number-test']);
    expect(await matching('smoke', 'match-other', '+79267654321')).toEqual(['by-other-device', 'by-other-number']);
    expect(await matching('smoke', 'unknown-device', '+79000000000')).toEqual([]);
  });

  it('matches a batch of events with one query, each event its own rules', async () => {
    expect(
      await matchingEach(t.database.storage.db, [
        { eventType: 'smoke', deviceId: 'match-a', msisdn: number },
        { eventType: 'test', deviceId: 'match-b', msisdn: number },
        { eventType: 'smoke_cleared', deviceId: 'match-a', msisdn: number },
        { eventType: 'smoke', deviceId: 'match-other', msisdn: '+79267654321' },
        { eventType: 'smoke', deviceId: 'unknown-device', msisdn: '+79000000000' },
      ]),
    ).toEqual([['by-number', 'by-device-a'], ['by-number-test'], ['by-device-a-cleared'], ['by-other-device', 'by-other-number'], []]);
  });

  it('returns rows with the stored action and follows changes made through the API', async () => {
    const matches = await t.app.services.rules.findMatches(t.database.storage.db, [{ eventType: 'smoke', deviceId: 'match-b', msisdn: number }]);
    expect(matches[0]!.rule.action).toMatchObject({ type: 'call', to: ['+79161112233'], attempts: 2 });
    await t.request({ method: 'PATCH', url: `/api/v1/rules/${ids['by-number']}`, payload: { enabled: false } });
    await t.request({ method: 'PATCH', url: `/api/v1/rules/${ids['by-device-a-disabled']}`, payload: { enabled: true } });
    expect(await matching('smoke', 'match-a')).toEqual(['by-device-a', 'by-device-a-disabled']);
  });

  it('works inside the caller’s transaction', async () => {
    const names = await t.database.storage.db
      .transaction()
      .execute(async (trx) => matchingEach(trx, [{ eventType: 'smoke', deviceId: 'match-b', msisdn: number }]));
    expect(names).toEqual([['by-device-b']]);
  });
});

describe('OpenAPI', () => {
  it('documents the Rule schema and the action types', async () => {
    const doc = (await t.request({ method: 'GET', url: '/openapi.json', key: null })).json();
    expect(Object.keys(doc.components.schemas.Rule.properties)).toEqual([
      'id',
      'name',
      'enabled',
      'event_type',
      'device_id',
      'msisdn',
      'action',
      'cooldown_s',
      'created_at',
      'updated_at',
    ]);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/rules', '/api/v1/rules/{id}']));
    const action = doc.paths['/api/v1/rules'].post.requestBody.content['application/json'].schema.properties.action;
    // One branch per registered action type (the OpenAPI document writes the literal as a one-value enum).
    expect(action.anyOf.map((branch: { properties: { type: { enum: string[] } } }) => branch.properties.type.enum)).toEqual([['call']]);
  });
});
