/** SQL of alarms and their calls. Every function takes the caller's transaction. */
import { sql } from 'kysely';
import type { DbOrTrx } from '../storage/database.js';
import type { Database } from '../storage/schema.js';
import type { Insertable, Selectable } from 'kysely';
import { inFlightStatuses, type CallStatus, type FinalCallStatus } from './escalation.js';

export type AlarmRow = Selectable<Database['alarms']>;
export type CallRow = Selectable<Database['calls']>;
export type NewCallRow = Insertable<Database['calls']>;

/** Inserts the alarm unless the rule already has an active one for this device; undefined then. */
export async function insertAlarmIfNoneActive(db: DbOrTrx, row: Insertable<Database['alarms']>): Promise<AlarmRow | undefined> {
  return db
    .insertInto('alarms')
    .values(row)
    .onConflict((conflict) => conflict.columns(['rule_id', 'device_id']).where('status', '=', 'active').doNothing())
    .returningAll()
    .executeTakeFirst();
}

/**
 * The active alarm of a rule for a device if there is one (at most one can be), else the latest
 * one (for the cooldown), in one query.
 */
export async function currentOrLatestAlarm(db: DbOrTrx, ruleId: number, deviceId: string): Promise<Pick<AlarmRow, 'id' | 'status' | 'started_at'> | undefined> {
  return db
    .selectFrom('alarms')
    .select(['id', 'status', 'started_at'])
    .where('rule_id', '=', ruleId)
    .where('device_id', '=', deviceId)
    .orderBy(sql`status = 'active'`, 'desc')
    .orderBy('started_at', 'desc')
    .limit(1)
    .executeTakeFirst();
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

/** Active alarms of a device started by events of the given types (for clearing events). */
export async function activeAlarmsOfDevice(db: DbOrTrx, deviceId: string, eventTypes: readonly string[]): Promise<AlarmRow[]> {
  if (eventTypes.length === 0) return [];
  return db
    .selectFrom('alarms')
    .selectAll()
    .where('device_id', '=', deviceId)
    .where('status', '=', 'active')
    .where('event_type', 'in', eventTypes)
    .orderBy('seq')
    .forNoKeyUpdate()
    .execute();
}

export async function endAlarm(db: DbOrTrx, id: string, status: 'resolved' | 'exhausted' | 'canceled', at: Date, reason: string): Promise<boolean> {
  const result = await db
    .updateTable('alarms')
    .set({ status, ended_at: at, end_reason: reason })
    .where('id', '=', id)
    .where('status', '=', 'active')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function insertCall(db: DbOrTrx, row: NewCallRow): Promise<CallRow> {
  return db.insertInto('calls').values(row).returningAll().executeTakeFirstOrThrow();
}

/** Cancels the calls of an alarm not dialed yet; returns them. */
export async function cancelQueuedCalls(db: DbOrTrx, alarmId: string, at: Date): Promise<CallRow[]> {
  return db
    .updateTable('calls')
    .set({ status: 'canceled', ended_at: at })
    .where('alarm_id', '=', alarmId)
    .where('status', '=', 'queued')
    .returningAll()
    .execute();
}

export async function inFlightCallsOfAlarm(db: DbOrTrx, alarmId: string): Promise<CallRow[]> {
  return db.selectFrom('calls').selectAll().where('alarm_id', '=', alarmId).where('status', 'in', inFlightStatuses).execute();
}

/**
 * Claims due calls for this instance: each moves queued -> dialing in a committed transaction
 * before anything is dialed, and SKIP LOCKED lets several instances claim side by side without
 * ever taking the same call.
 */
export async function claimDueCalls(db: DbOrTrx, instanceId: string, now: Date, limit: number): Promise<CallRow[]> {
  return db
    .updateTable('calls')
    .set({ status: 'dialing', claimed_by: instanceId, dialing_at: now })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('calls')
        .select('id')
        .where('status', '=', 'queued')
        .where('due_at', '<=', now)
        .orderBy('due_at')
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .returningAll()
    .execute();
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

export async function setDeadline(db: DbOrTrx, id: string, deadline: Date): Promise<void> {
  await db.updateTable('calls').set({ deadline_at: deadline }).where('id', '=', id).execute();
}

/**
 * Moves a call forward (ringing, answered) only from an earlier in-flight status; returns the call
 * with what its log row needs of the alarm, read by the same statement.
 */
export async function advanceCall(
  db: DbOrTrx,
  id: string,
  to: 'ringing' | 'answered',
  at: Date,
): Promise<{ call: CallRow; alarm: Pick<AlarmRow, 'id' | 'device_id' | 'msisdn' | 'correlation_id'> } | undefined> {
  const from: CallStatus[] = to === 'ringing' ? ['dialing'] : ['dialing', 'ringing'];
  const row = await db
    .updateTable('calls')
    .from('alarms')
    .set(to === 'ringing' ? { status: 'ringing', ringing_at: at } : { status: 'answered', answered_at: at })
    .where('calls.id', '=', id)
    .where('calls.status', 'in', from)
    .whereRef('alarms.id', '=', 'calls.alarm_id')
    .returningAll('calls')
    .returning(['alarms.device_id as alarm_device_id', 'alarms.msisdn as alarm_msisdn', 'alarms.correlation_id as alarm_correlation_id'])
    .executeTakeFirst();
  if (!row) return undefined;
  const { alarm_device_id, alarm_msisdn, alarm_correlation_id, ...call } = row;
  return { call, alarm: { id: call.alarm_id, device_id: alarm_device_id, msisdn: alarm_msisdn, correlation_id: alarm_correlation_id } };
}

export async function markAcknowledged(db: DbOrTrx, id: string): Promise<CallRow | undefined> {
  return db
    .updateTable('calls')
    .set({ acknowledged: true })
    .where('id', '=', id)
    .where('acknowledged', '=', false)
    .where('status', 'in', [...inFlightStatuses, 'completed'])
    .returningAll()
    .executeTakeFirst();
}

/** Records how a call ended, once: a second report of the same end (another instance, a late event) changes nothing. */
export async function finishCall(
  db: DbOrTrx,
  id: string,
  end: { status: FinalCallStatus; cause: string | null; sipCode: number | null; acknowledged: boolean; at: Date },
): Promise<CallRow | undefined> {
  return db
    .updateTable('calls')
    .set({
      status: end.status,
      hangup_cause: end.cause,
      sip_code: end.sipCode,
      ended_at: end.at,
      acknowledged: end.acknowledged ? true : sql<boolean>`acknowledged`,
      // An answer nobody heard (a dropped connection) is still known from how the call ended.
      ...(end.status === 'completed' ? { answered_at: sql<Date>`coalesce(answered_at, ${end.at})` } : {}),
    })
    .where('id', '=', id)
    .where('status', 'in', inFlightStatuses)
    .returningAll()
    .executeTakeFirst();
}

export async function findCall(db: DbOrTrx, id: string): Promise<CallRow | undefined> {
  return db.selectFrom('calls').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The next time a queued call falls due, to wake up for it. */
export async function nextDueAt(db: DbOrTrx): Promise<Date | undefined> {
  const row = await db.selectFrom('calls').select((eb) => eb.fn.min('due_at').as('next')).where('status', '=', 'queued').executeTakeFirst();
  return row?.next ?? undefined;
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
