/**
 * The live event log over server-sent events, read the way the console reads it: fetch with the
 * key in a header and a stream reader, on a real port.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvent } from '../../src/event-log/event-log.js';
import { ADMIN_KEY, createKey, createTestApp, type TestApp } from '../support/app.js';

interface StreamEvent {
  id: string;
  data: { id: number; type: string; device_id: string | null; msisdn: string | null; correlation_id: string | null };
}

/** An open stream: events as they are parsed, and a way to wait for some. */
class OpenStream {
  readonly events: StreamEvent[] = [];
  comments: string[] = [];
  #buffer = '';
  #waiters: (() => void)[] = [];
  ended = false;

  constructor(
    readonly response: Response,
    readonly abort: AbortController,
  ) {
    void this.#read();
  }

  async #read(): Promise<void> {
    const reader = this.response.body!.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#buffer += value;
        let end: number;
        while ((end = this.#buffer.indexOf('\n\n')) >= 0) {
          const block = this.#buffer.slice(0, end);
          this.#buffer = this.#buffer.slice(end + 2);
          let id = '';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) this.comments.push(line);
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) this.events.push({ id, data: JSON.parse(data) });
        }
        this.#wake();
      }
    } catch {
      // aborted
    }
    this.ended = true;
    this.#wake();
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Waits until `predicate` holds for the events read so far (the test's timeout bounds it). */
  async until(predicate: (events: StreamEvent[]) => boolean): Promise<StreamEvent[]> {
    while (!predicate(this.events)) {
      if (this.ended) throw new Error(`the stream ended; read ${JSON.stringify(this.events.map((event) => event.data.type))}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return this.events;
  }

  close(): void {
    this.abort.abort();
  }
}

let t: TestApp;
let baseUrl: string;
const streams: OpenStream[] = [];

beforeAll(async () => {
  t = await createTestApp({}, { eventStream: { heartbeatMs: 200 } });
  baseUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  for (const stream of streams) stream.close();
  await t.close();
});

async function open(query = '', headers: Record<string, string> = {}): Promise<OpenStream> {
  const abort = new AbortController();
  const response = await fetch(`${baseUrl}/api/v1/event-logs/stream${query}`, {
    headers: { 'x-api-key': ADMIN_KEY, ...headers },
    signal: abort.signal,
  });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  const stream = new OpenStream(response, abort);
  streams.push(stream);
  return stream;
}

const types = (events: StreamEvent[]) => events.map((event) => event.data.type);

describe('GET /api/v1/event-logs/stream', () => {
  it('sends the rows written from now on, as they happen, each with its row id', async () => {
    await appendEvent(t.database.storage.db, { type: 'test.before', status: 'info' });
    const stream = await open();
    const created = await t.request({
      method: 'POST',
      url: '/api/v1/devices',
      payload: { device_id: 'live-smoke', type: 'sensor_smoke', msisdn: '+79161110001' },
    });
    expect(created.statusCode).toBe(201);
    const events = await stream.until((seen) => seen.some((event) => event.data.type === 'device.created'));
    expect(types(events)).not.toContain('test.before');
    const row = events.find((event) => event.data.type === 'device.created')!;
    expect(row.id).toBe(String(row.data.id));
    expect(row.data).toMatchObject({ device_id: 'live-smoke', msisdn: '+79161110001', status: 'ok' });
    // The same row the list shows.
    const listed = (await t.request({ method: 'GET', url: '/api/v1/event-logs', query: { device_id: 'live-smoke' } })).json();
    expect(listed.items[0]).toEqual(row.data);
    // Heartbeats keep idle connections open.
    await stream.until(() => stream.comments.includes(': keep-alive'));
  });

  it('filters by type family, device, number in any spelling and correlation id', async () => {
    const byFamily = await open('?type=device.*');
    const byDevice = await open('?device_id=filter-b');
    const byNumber = await open(`?msisdn=${encodeURIComponent('8 916 111-00-03')}`);
    const byCorrelation = await open('?correlation_id=chain-7');
    const db = t.database.storage.db;
    await appendEvent(db, { type: 'device.updated', status: 'ok', deviceId: 'filter-a', msisdn: '+79161110002' });
    await appendEvent(db, { type: 'event.received', status: 'ok', deviceId: 'filter-b', msisdn: '+79161110002' });
    await appendEvent(db, { type: 'call.queued', status: 'ok', msisdn: '+79161110003', correlationId: 'chain-7' });
    await appendEvent(db, { type: 'test.done', status: 'info', deviceId: 'filter-b', msisdn: '+79161110003', correlationId: 'chain-7' });

    const done = (events: StreamEvent[]) => events.some((event) => event.data.type === 'test.done');
    expect(types(await byDevice.until(done))).toEqual(['event.received', 'test.done']);
    expect(types(await byNumber.until(done))).toEqual(['call.queued', 'test.done']);
    expect(types(await byCorrelation.until(done))).toEqual(['call.queued', 'test.done']);
    await appendEvent(db, { type: 'device.deleted', status: 'ok', deviceId: 'filter-a' });
    expect(types(await byFamily.until((events) => types(events).includes('device.deleted')))).toEqual(['device.updated', 'device.deleted']);
  });

  it('resumes after Last-Event-ID with what was missed first, then goes on live, without duplicates', async () => {
    const db = t.database.storage.db;
    const first = await open('?correlation_id=resume-1');
    await appendEvent(db, { type: 'resume.one', status: 'info', correlationId: 'resume-1' });
    const [seen] = await first.until((events) => events.length === 1);
    first.close();
    // Written while nobody listened.
    await appendEvent(db, { type: 'resume.two', status: 'info', correlationId: 'resume-1' });
    await appendEvent(db, { type: 'resume.three', status: 'info', correlationId: 'resume-1' });

    const resumed = await open('?correlation_id=resume-1', { 'last-event-id': seen!.id });
    await resumed.until((events) => events.length === 2);
    await appendEvent(db, { type: 'resume.four', status: 'info', correlationId: 'resume-1' });
    const events = await resumed.until((all) => all.length >= 3);
    expect(types(events)).toEqual(['resume.two', 'resume.three', 'resume.four']);
    const ids = events.map((event) => event.data.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);

    // EventSource reconnects cannot set the header: the query parameter does the same.
    const byQuery = await open(`?correlation_id=resume-1&last_event_id=${seen!.id}`);
    expect(types(await byQuery.until((all) => all.length === 3))).toEqual(['resume.two', 'resume.three', 'resume.four']);
  });

  it('starts a stream opened after every other one closed from the end of the log, not from where they left', async () => {
    for (const stream of streams) stream.close();
    const feed = t.app.services.eventFeed;
    while (feed.subscriberCount > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    // Written while nobody follows the log.
    await appendEvent(t.database.storage.db, { type: 'nobody.listening', status: 'info', correlationId: 'quiet' });
    const fresh = await open();
    await appendEvent(t.database.storage.db, { type: 'someone.listening', status: 'info', correlationId: 'quiet' });
    const events = await fresh.until((all) => types(all).includes('someone.listening'));
    expect(types(events)).not.toContain('nobody.listening');
  });

  it('refuses a missing or wrong key (401) and a key of another role (403), as problem+json', async () => {
    const url = `${baseUrl}/api/v1/event-logs/stream`;
    const none = await fetch(url);
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    expect((await fetch(url, { headers: { 'x-api-key': 'tig_wrong-key-0123456789' } })).status).toBe(401);
    const webhookKey = await createKey(t, 'webhook');
    const forbidden = await fetch(url, { headers: { 'x-api-key': webhookKey } });
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ code: 'forbidden' });
  });

  it('names a bad filter or a bad Last-Event-ID (422)', async () => {
    const badNumber = await t.request({ method: 'GET', url: '/api/v1/event-logs/stream', query: { msisdn: 'not a number' } });
    expect(badNumber.statusCode).toBe(422);
    expect(badNumber.json().errors[0].field).toBe('querystring.msisdn');
    const badId = await t.request({ method: 'GET', url: '/api/v1/event-logs/stream', headers: { 'last-event-id': 'abc' } });
    expect(badId.statusCode).toBe(422);
    expect(badId.json().errors[0].field).toBe('headers.last-event-id');
  });

  it('ends open streams when the gateway closes (they do not hold it open)', async () => {
    const other = await createTestApp();
    const url = await other.app.listen({ port: 0, host: '127.0.0.1' });
    const abort = new AbortController();
    const response = await fetch(`${url}/api/v1/event-logs/stream`, { headers: { 'x-api-key': ADMIN_KEY }, signal: abort.signal });
    const stream = new OpenStream(response, abort);
    await other.close();
    await stream.until(() => stream.ended);
    expect(stream.ended).toBe(true);
    // A gateway of its own starts (migrations included) inside the test: slow on a busy machine.
  }, 120_000);
});
