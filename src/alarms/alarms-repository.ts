/** SQL of alarms and their calls. Every function takes the caller's transaction. */
import { sql } from 'kysely';
import type { DbOrTrx, Nullable } from '../storage/database.js';
import type { Database } from '../storage/schema.js';
import type { Insertable, Selectable } from 'kysely';
import { inFlightStatuses, type FinalCallStatus } from './escalation.js';

export type AlarmRow = Selectable<Database['alarms']>;
export type CallRow = Selectable<Database['calls']>;
export type NewCallRow = Insertable<Database['calls']>;

export type NewAlarmRow = Insertable<Database['alarms']> & { id: string };

/**
 * Inserts the alarms, each unless its rule already has an active one for its device, and the first
 * call of each one inserted (queued, or already claimed: dialing), in one statement; returns the
 * alarms inserted. The alarms must name distinct (rule, device) pairs; each call names its alarm.
 */
export async function insertAlarmsWithFirstCalls(db: DbOrTrx, alarms: readonly NewAlarmRow[], calls: readonly NewCallRow[]): Promise<AlarmRow[]> {
  if (alarms.length === 0) return [];
  const alarmRows = sql.join(
    alarms.map(
      (alarm) =>
        sql`(${alarm.id}::uuid, ${alarm.rule_id}::bigint, ${alarm.device_id}::text, ${alarm.msisdn ?? null}::text, ${alarm.event_id}::text, ${alarm.event_type}::text,
             ${alarm.status}::text, ${alarm.action}::jsonb, ${alarm.correlation_id}::text, ${alarm.started_at}::timestamptz)`,
    ),
  );
  const callRows = sql.join(
    calls.map(
      (call) =>
        sql`(${call.id}::uuid, ${call.alarm_id}::uuid, ${call.position}::integer, ${call.attempt}::integer, ${call.to_number}::text, ${call.status}::text,
             ${call.due_at}::timestamptz, ${call.queued_at}::timestamptz, ${call.correlation_id}::text, ${call.redial_of ?? null}::uuid,
             ${call.claimed_by ?? null}::text, ${call.dialing_at ?? null}::timestamptz, ${call.deadline_at ?? null}::timestamptz)`,
    ),
  );
  const result = await sql<AlarmRow>`
    with started as (
      insert into alarms (id, rule_id, device_id, msisdn, event_id, event_type, status, action, correlation_id, started_at)
      values ${alarmRows}
      on conflict (rule_id, device_id) where status = 'active' do nothing
      returning *
    ), queued as (
      insert into calls (id, alarm_id, position, attempt, to_number, status, due_at, queued_at, correlation_id, redial_of, claimed_by, dialing_at, deadline_at)
      select given.* from (values ${callRows}) as given (id, alarm_id, position, attempt, to_number, status, due_at, queued_at, correlation_id, redial_of, claimed_by, dialing_at, deadline_at)
       where given.alarm_id in (select id from started)
    )
    select * from started`.execute(db);
  return result.rows;
}

/**
 * `forUpdate` locks the alarm with FOR NO KEY UPDATE: enough to serialise changes to it, and it
 * does not block the foreign-key checks (FOR KEY SHARE) of a concurrent transaction updating one
 * of its calls, which FOR UPDATE did: a cancel locking the alarm then its calls, and a call
 * claim locking a call then (by its key check) the alarm, deadlocked.
 */
export async function findAlarm(db: DbOrTrx, id: string, options: { forUpdate?: boolean } = {}): Promise<AlarmRow | undefined> {
  const query = db.selectFrom('alarms').selectAll().where('id', '=', id);
  return (options.forUpdate ? query.forNoKeyUpdate() : query).executeTakeFirst();
}

/**
 * Active alarms of the devices started by events of the given types (for clearing events),
 * locked, in the order they started; the caller picks each device's.
 */
export async function activeAlarmsOfDevices(db: DbOrTrx, deviceIds: readonly string[], eventTypes: readonly string[]): Promise<AlarmRow[]> {
  if (deviceIds.length === 0 || eventTypes.length === 0) return [];
  return db
    .selectFrom('alarms')
    .selectAll()
    .where('device_id', 'in', deviceIds)
    .where('status', '=', 'active')
    .where('event_type', 'in', eventTypes)
    .orderBy('seq')
    .forNoKeyUpdate()
    .execute();
}

/** An alarm to end, and how. */
export interface AlarmEnd {
  id: string;
  status: 'resolved' | 'exhausted' | 'canceled';
  reason: string;
}

/**
 * Ends active alarms and cancels their calls not dialed yet, in one statement whatever their
 * number; returns, by alarm id, the calls canceled and the ids of those in flight (to hang up).
 * An alarm that was not active is left out. Each alarm at most once.
 */
export async function endAlarms(db: DbOrTrx, ends: readonly AlarmEnd[], at: Date): Promise<Map<string, { canceled: CallRow[]; inFlight: string[] }>> {
  if (ends.length === 0) return new Map();
  const given = sql.join(ends.map((end) => sql`(${end.id}::uuid, ${end.status}::text, ${end.reason}::text)`));
  const result = await sql<{ id: string; canceled: CallRow[] | null; in_flight: string[] | null }>`
    with ended as (
      update alarms set status = given.status, ended_at = ${at}, end_reason = given.reason
        from (values ${given}) as given (id, status, reason)
       where alarms.id = given.id and alarms.status = 'active'
       returning alarms.id
    ), canceled as (
      update calls set status = 'canceled', ended_at = ${at}
       where alarm_id in (select id from ended) and status = 'queued'
       returning calls.*
    )
    select ended.id,
      (select json_agg(canceled order by canceled.seq) from canceled where canceled.alarm_id = ended.id) as canceled,
      -- An alarm has a few calls: read them by alarm and filter here. The status in WHERE led the
      -- planner to AND in the in-flight index, which under load holds every call's dead entries
      -- (20,000 read per alarm in a quick S1: 0.4 ms each).
      (select array_agg(calls.id::text) filter (where calls.status in (${sql.join(inFlightStatuses)})) from calls
        where calls.alarm_id = ended.id) as in_flight
      from ended`.execute(db);
  return new Map(result.rows.map((row) => [row.id, { canceled: (row.canceled ?? []).map(callFromJson), inFlight: row.in_flight ?? [] }]));
}

/** A call row read back from JSON (timestamps are strings there). */
function callFromJson(json: CallRow): CallRow {
  const time = (value: Date | string | null) => (value === null ? null : new Date(value));
  return {
    ...json,
    due_at: time(json.due_at)!,
    queued_at: time(json.queued_at)!,
    dialing_at: time(json.dialing_at),
    ringing_at: time(json.ringing_at),
    answered_at: time(json.answered_at),
    ended_at: time(json.ended_at),
    deadline_at: time(json.deadline_at),
  };
}

/** Inserts the calls. */
export async function insertCalls(db: DbOrTrx, rows: readonly NewCallRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.insertInto('calls').values([...rows]).execute();
}

/** A call claimed for dialing, with what placing it and its log row need of its alarm. */
export interface ClaimedCall {
  call: CallRow;
  alarm: Pick<AlarmRow, 'id' | 'device_id' | 'msisdn' | 'correlation_id' | 'action'>;
}

/**
 * Claims due queued calls for this instance (queued -> dialing, with their deadline: the rule's
 * ring timeout plus `deadlineMarginS`) and writes their `call.dialing` log rows, in one statement
 * that commits before anything is dialed; SKIP LOCKED lets several instances claim side by side.
 * Also returns when the earliest call left queued falls due (undefined: none), for the wake timer.
 */
export async function claimDueCalls(
  db: DbOrTrx,
  options: { instanceId: string; now: Date; limit: number; deadlineMarginS: number },
): Promise<{ claimed: ClaimedCall[]; nextDueAt: Date | undefined }> {
  const { instanceId, now, limit, deadlineMarginS } = options;
  const result = await sql<Nullable<CallRow> & { next_due: Date | null; alarm_action: AlarmRow['action'] | null; alarm_device_id: string | null; alarm_msisdn: string | null; alarm_correlation_id: string | null }>`
    with picked as (
      select id from calls where status = 'queued' and due_at <= ${now} order by due_at limit ${limit} for update skip locked
    ),
    claimed as (
      update calls
         set status = 'dialing', claimed_by = ${instanceId}, dialing_at = ${now},
             deadline_at = ${now}::timestamptz + make_interval(secs => (select (a.action->>'ring_timeout_s')::int + ${deadlineMarginS} from alarms a where a.id = calls.alarm_id))
        from picked where calls.id = picked.id
      returning calls.*
    ),
    logged as (
      -- As dialingEntry (alarm-escalation.ts) shapes it for the process log and the intake's claims.
      insert into event_logs (type, status, device_id, msisdn, correlation_id, details)
      select 'call.dialing', 'info', a.device_id, a.msisdn, a.correlation_id,
             jsonb_build_object('alarm_id', a.id, 'call_id', c.id, 'to', c.to_number, 'position', c.position, 'attempt', c.attempt, 'instance', ${instanceId}::text)
        from claimed c join alarms a on a.id = c.alarm_id
       order by c.due_at, c.seq
    ),
    next as (
      select min(due_at) as next_due from calls where status = 'queued' and id not in (select id from picked)
    )
    select next.next_due, c.*, a.action as alarm_action, a.device_id as alarm_device_id, a.msisdn as alarm_msisdn, a.correlation_id as alarm_correlation_id
      from next left join claimed c on true left join alarms a on a.id = c.alarm_id
     order by c.due_at, c.seq`.execute(db);
  const claimed: ClaimedCall[] = [];
  for (const { next_due: _next, alarm_action, alarm_device_id, alarm_msisdn, alarm_correlation_id, ...call } of result.rows) {
    if (call.id === null) continue; // nothing claimed: the one row says when the next call falls due
    claimed.push({
      call: call as CallRow,
      alarm: { id: call.alarm_id!, device_id: alarm_device_id!, msisdn: alarm_msisdn!, correlation_id: alarm_correlation_id!, action: alarm_action! },
    });
  }
  return { claimed, nextDueAt: result.rows[0]?.next_due ?? undefined };
}

/** Puts a claimed call back in the queue: it could not be handed to the switch, nobody was dialed. */
export async function requeueCall(db: DbOrTrx, id: string, dueAt: Date): Promise<boolean> {
  const result = await db
    .updateTable('calls')
    .set({ status: 'queued', claimed_by: null, dialing_at: null, due_at: dueAt })
    .where('id', '=', id)
    .where('status', '=', 'dialing')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export type CallAlarm = Pick<AlarmRow, 'id' | 'device_id' | 'msisdn' | 'correlation_id'>;

/**
 * Moves calls forward (ringing, answered), each only from an earlier in-flight status, in one
 * statement; returns the calls moved, by id, with what their log rows need of their alarms. Each
 * call at most once.
 */
export async function advanceCalls(
  db: DbOrTrx,
  moves: readonly { id: string; to: 'ringing' | 'answered'; at: Date }[],
  options: { log?: boolean } = {},
): Promise<Map<string, { call: CallRow; alarm: CallAlarm }>> {
  if (moves.length === 0) return new Map();
  const given = sql.join(moves.map((move, index) => sql`(${index}::integer, ${move.id}::uuid, ${move.to}::text, ${move.at}::timestamptz)`));
  // With `log`, the same statement writes each moved call's `call.ringing` / `call.answered` row,
  // in the order given, as callEntry in alarm-escalation.ts shapes it.
  const logged = options.log
    ? sql`, logged as (
        insert into event_logs (type, status, device_id, msisdn, correlation_id, details)
        select 'call.' || status, 'info', alarm_device_id, alarm_msisdn, alarm_correlation_id,
               jsonb_build_object('alarm_id', alarm_id, 'call_id', id, 'to', to_number, 'position', position, 'attempt', attempt)
          from moved order by ord)`
    : sql``;
  const result = await sql<CallRow & { ord: number; alarm_device_id: string; alarm_msisdn: string; alarm_correlation_id: string }>`
    with moved as (
      update calls set status = given.status,
        ringing_at = case when given.status = 'ringing' then given.at else calls.ringing_at end,
        answered_at = case when given.status = 'answered' then given.at else calls.answered_at end
      from (values ${given}) as given (ord, id, status, at), alarms
      where calls.id = given.id and alarms.id = calls.alarm_id
        and (calls.status = 'dialing' or (given.status = 'answered' and calls.status = 'ringing'))
      returning calls.*, given.ord, alarms.device_id as alarm_device_id, alarms.msisdn as alarm_msisdn, alarms.correlation_id as alarm_correlation_id
    )${logged}
    select * from moved`.execute(db);
  return new Map(
    result.rows.map(({ ord: _ord, alarm_device_id, alarm_msisdn, alarm_correlation_id, ...call }) => [
      call.id,
      { call, alarm: { id: call.alarm_id, device_id: alarm_device_id, msisdn: alarm_msisdn, correlation_id: alarm_correlation_id } },
    ]),
  );
}

/** Marks calls confirmed (1 pressed), each once, in flight or completed; returns those marked, by id. */
export async function markAcknowledged(db: DbOrTrx, ids: readonly string[]): Promise<Map<string, CallRow>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .updateTable('calls')
    .set({ acknowledged: true })
    .where('id', 'in', [...ids])
    .where('acknowledged', '=', false)
    .where('status', 'in', [...inFlightStatuses, 'completed'])
    .returningAll()
    .execute();
  return new Map(rows.map((call) => [call.id, call]));
}

export interface CallEnd {
  id: string;
  status: FinalCallStatus;
  cause: string | null;
  sipCode: number | null;
  acknowledged: boolean;
  at: Date;
}

/**
 * Records how calls ended, each once, in one statement: a second report of the same end (another
 * instance, a late event) changes nothing. Returns the calls ended, by id. Each call at most once.
 */
export async function finishCalls(db: DbOrTrx, ends: readonly CallEnd[]): Promise<Map<string, CallRow>> {
  if (ends.length === 0) return new Map();
  const given = sql.join(
    ends.map((end) => sql`(${end.id}::uuid, ${end.status}::text, ${end.cause}::text, ${end.sipCode}::integer, ${end.acknowledged}::boolean, ${end.at}::timestamptz)`),
  );
  const result = await sql<CallRow>`
    update calls set status = given.status, hangup_cause = given.cause, sip_code = given.sip_code, ended_at = given.at,
      acknowledged = calls.acknowledged or given.acknowledged,
      -- An answer nobody heard (a dropped connection) is still known from how the call ended.
      answered_at = case when given.status = 'completed' then coalesce(calls.answered_at, given.at) else calls.answered_at end
    from (values ${given}) as given (id, status, cause, sip_code, acknowledged, at)
    where calls.id = given.id and calls.status in (${sql.join(inFlightStatuses)})
    returning calls.*`.execute(db);
  return new Map(result.rows.map((call) => [call.id, call]));
}

/** The alarms of these ids, locked as `findAlarm` locks one (in id order), by id. */
export async function findAlarmsForUpdate(db: DbOrTrx, ids: readonly string[]): Promise<Map<string, AlarmRow>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('alarms').selectAll().where('id', 'in', [...new Set(ids)]).orderBy('id').forNoKeyUpdate().execute();
  return new Map(rows.map((alarm) => [alarm.id, alarm]));
}

export async function findCall(db: DbOrTrx, id: string): Promise<CallRow | undefined> {
  return db.selectFrom('calls').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Calls in flight that nobody is watching: claimed by this instance in an earlier life, by an
 * instance that stopped beating, or past their deadline.
 */
export async function orphanedCalls(db: DbOrTrx, instanceId: string, staleBefore: Date, now: Date, startedAt: Date): Promise<CallRow[]> {
  return db
    .selectFrom('calls')
    .selectAll()
    .where('status', 'in', inFlightStatuses)
    .where((eb) =>
      eb.or([
        eb.and([eb('claimed_by', '=', instanceId), eb('dialing_at', '<', startedAt)]),
        eb('claimed_by', 'in', eb.selectFrom('gateway_instances').select('id').where('heartbeat_at', '<', staleBefore)),
        eb('claimed_by', 'not in', eb.selectFrom('gateway_instances').select('id')),
        eb('deadline_at', '<', now),
      ]),
    )
    .orderBy('seq')
    .limit(500)
    .execute();
}

export async function adoptCall(db: DbOrTrx, id: string, instanceId: string, deadline: Date): Promise<void> {
  await db.updateTable('calls').set({ claimed_by: instanceId, deadline_at: deadline }).where('id', '=', id).execute();
}

export async function heartbeat(db: DbOrTrx, instanceId: string, now: Date, startedAt: Date): Promise<void> {
  await db
    .insertInto('gateway_instances')
    .values({ id: instanceId, started_at: startedAt, heartbeat_at: now })
    .onConflict((conflict) => conflict.column('id').doUpdateSet({ heartbeat_at: now, started_at: startedAt }))
    .execute();
}

export async function retireInstance(db: DbOrTrx, instanceId: string): Promise<void> {
  await db.deleteFrom('gateway_instances').where('id', '=', instanceId).execute();
}
