/**
 * The intake's group commit: webhooks that arrive together are written by one transaction, and
 * each still gets the outcome it would have had alone.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlarmHarness, type AlarmHarness } from '../support/alarm-scenario.js';

let h: AlarmHarness;
beforeAll(async () => {
  h = await createAlarmHarness();
});
afterAll(async () => {
  await h.close();
});

const DEVICES = 20;
const deviceId = (n: number) => `gc-smoke-${n}`;

/** The transactions that wrote these events (xmin: the transaction that wrote the row's current version). */
async function transactionsOf(prefix: string): Promise<number> {
  const { rows } = await sql<{ count: number }>`select count(distinct xmin::text)::int as count from device_events where event_id like ${`${prefix}%`}`.execute(h.database.storage.db);
  return rows[0]!.count;
}

async function storyOf(correlationId: string): Promise<string[]> {
  const log = (await h.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: correlationId, limit: '100' } })).json<{ items: { type: string }[] }>();
  return log.items.map((row) => row.type).reverse();
}

describe('webhooks that arrive together', () => {
  beforeAll(async () => {
    for (let n = 0; n < DEVICES; n++) await h.sensorWithRule(deviceId(n), { to: ['+79161234567'], require_ack: false });
  });

  it('are written by a few transactions, each event answered with the outcome it would have had alone', async () => {
    // Two events per sensor, interleaved, and a repeat of every fourth first event: all at once.
    const sent: { eventId: string; device: number; repeat: boolean }[] = [];
    for (let round = 0; round < 2; round++) for (let n = 0; n < DEVICES; n++) sent.push({ eventId: `gc-${round}-${n}`, device: n, repeat: false });
    for (let n = 0; n < DEVICES; n += 4) sent.push({ eventId: `gc-0-${n}`, device: n, repeat: true });
    const answers = await Promise.all(sent.map(({ eventId, device }) => h.smoke(deviceId(device), eventId)));
    expect(answers.map((answer) => answer.statusCode)).toEqual(sent.map(() => 202));

    expect(await transactionsOf('gc-')).toBeLessThan(DEVICES);

    for (let n = 0; n < DEVICES; n++) {
      // Of an event sent twice, the copy written first is the accepted one (the repeat may win the race).
      const [first, second] = [0, 1].map(
        (round) => sent.flatMap((each, index) => (each.eventId === `gc-${round}-${n}` ? [answers[index]!.body] : [])).find((body) => body.status === 'accepted')!,
      );
      // One alarm per sensor: the other event of the pair is suppressed by it, whichever came first.
      const started = [first, second].filter((body) => (body!.alarm_ids as string[]).length === 1);
      const suppressed = [first, second].filter((body) => body!.suppressed === 1);
      expect(started).toHaveLength(1);
      expect(suppressed).toHaveLength(1);
      expect(suppressed[0]).toMatchObject({ status: 'accepted', matched_rules: 1, alarm_ids: [] });
    }
    // A repeat is a duplicate with the first outcome (or the first, if the repeat was written first).
    for (let n = 0; n < DEVICES; n += 4) {
      const pair = sent.flatMap((each, index) => (each.eventId === `gc-0-${n}` ? [answers[index]!.body] : []));
      expect(pair.map((body) => body.status).sort()).toEqual(['accepted', 'duplicate']);
      const { status: _a, ...one } = pair[0]!;
      const { status: _b, ...other } = pair[1]!;
      expect(one).toEqual(other);
    }

    // Each event's story is told in order, as if it had come alone.
    const startedAnswer = answers.find((answer) => (answer.body.alarm_ids as string[]).length === 1)!;
    const alarm = await h.alarm((startedAnswer.body.alarm_ids as string[])[0]!);
    expect((await storyOf(alarm.correlation_id as string)).slice(0, 4)).toEqual(['event.received', 'rule.matched', 'alarm.started', 'call.queued']);
    const { rows } = await sql<{ count: number }>`select count(*)::int as count from alarms where device_id like 'gc-smoke-%'`.execute(h.database.storage.db);
    expect(rows[0]!.count).toBe(DEVICES);
  });

  it('are written again one at a time when the database refuses their batch: only the refused event fails', async () => {
    const db = h.database.storage.db;
    // A database-side refusal of one event (as a constraint, a trigger or a storage fault would).
    await sql`create function gc_refuse() returns trigger language plpgsql as $$
      begin
        if new.event_id = 'gc-refused' then raise exception 'refused by the test'; end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger gc_refuse before insert on device_events for each row execute function gc_refuse()`.execute(db);
    try {
      await h.run(120_000); // past the cooldown of the first test's alarms
      const ids = Array.from({ length: 10 }, (_, n) => (n === 4 ? 'gc-refused' : `gc-ok-${n}`));
      const answers = await Promise.all(ids.map((eventId, n) => h.smoke(deviceId(n), eventId)));
      expect(answers.map((answer) => answer.statusCode)).toEqual(ids.map((id) => (id === 'gc-refused' ? 500 : 202)));
      expect(answers[4]!.body).toMatchObject({ code: 'internal_error' });
      const written = await sql<{ event_id: string }>`select event_id from device_events where event_id like 'gc-ok-%' or event_id = 'gc-refused'`.execute(db);
      expect(written.rows.map((row) => row.event_id).sort()).toEqual(ids.filter((id) => id !== 'gc-refused').sort());
      // The refused event started nothing; its retry, once the database accepts it, is accepted.
      await sql`drop trigger gc_refuse on device_events`.execute(db);
      const retry = await h.smoke(deviceId(4), 'gc-refused');
      expect(retry).toMatchObject({ statusCode: 202, body: { status: 'accepted', matched_rules: 1 } });
    } finally {
      await sql`drop trigger if exists gc_refuse on device_events`.execute(db);
      await sql`drop function if exists gc_refuse()`.execute(db);
    }
  });
});
