import { sql, type Insertable, type Selectable } from 'kysely';
import { announcingDeviceTypes } from '../devices/device-types.js';
import type { DbOrTrx } from '../storage/database.js';
import type { Database } from '../storage/schema.js';

export type IncomingCallRow = Selectable<Database['incoming_calls']>;
export type NotificationRow = Selectable<Database['notifications']>;

/** `forUpdate` is FOR NO KEY UPDATE, so notification updates' key checks are not blocked (see findAlarm). */
export async function findIncomingCall(db: DbOrTrx, callId: string, options: { forUpdate?: boolean } = {}): Promise<IncomingCallRow | undefined> {
  const query = db.selectFrom('incoming_calls').selectAll().where('call_id', '=', callId);
  return (options.forUpdate ? query.forNoKeyUpdate() : query).executeTakeFirst();
}

/** Inserts the call unless another request inserted it first; undefined then. */
export async function insertIncomingCall(db: DbOrTrx, row: Insertable<Database['incoming_calls']>): Promise<IncomingCallRow | undefined> {
  return db.insertInto('incoming_calls').values(row).onConflict((conflict) => conflict.column('call_id').doNothing()).returningAll().executeTakeFirst();
}

export async function setIncomingCallState(db: DbOrTrx, callId: string, state: 'answered' | 'ended', at: Date): Promise<void> {
  await db
    .updateTable('incoming_calls')
    .set(state === 'answered' ? { state, answered_at: at } : { state, ended_at: at })
    .where('call_id', '=', callId)
    .execute();
}

export async function notificationsOfCall(db: DbOrTrx, callId: string): Promise<NotificationRow[]> {
  return db.selectFrom('notifications').selectAll().where('call_id', '=', callId).orderBy('device_id').orderBy('step').execute();
}

/** The notifications of several calls at once (a page of the call list). */
export async function notificationsOfCalls(db: DbOrTrx, callIds: string[]): Promise<NotificationRow[]> {
  if (callIds.length === 0) return [];
  return db.selectFrom('notifications').selectAll().where('call_id', 'in', callIds).orderBy('call_id').orderBy('device_id').orderBy('step').execute();
}

/** The rows inserted (a notification already written for that call, device and type is not). */
export async function insertNotifications(db: DbOrTrx, rows: Insertable<Database['notifications']>[]): Promise<NotificationRow[]> {
  if (rows.length === 0) return [];
  return db
    .insertInto('notifications')
    .values(rows)
    .onConflict((conflict) => conflict.columns(['call_id', 'device_id', 'type']).doNothing())
    .returningAll()
    .execute();
}

/** Ringing notifications not yet attempted or waiting for a retry: the state they announce is over. */
export async function supersedePendingRinging(db: DbOrTrx, callId: string): Promise<string[]> {
  const rows = await db
    .updateTable('notifications')
    .set({ status: 'superseded' })
    .where('call_id', '=', callId)
    .where('type', '=', 'incoming_call.ringing')
    .where('status', '=', 'pending')
    .returning('device_id')
    .execute();
  return rows.map((row) => row.device_id);
}

/** A call first reported ringing. */
export interface NewRingingCall {
  call_id: string;
  caller: string;
  caller_name: string | null;
  callee: string;
  source: 'api' | 'freeswitch';
  correlation_id: string;
  request_id: string | null;
}

export interface RingingCallsWritten {
  /** The calls inserted (the others existed already), with the devices announcing each. */
  calls: Map<string, { devices: string[] }>;
  /** Their notifications, with the device's signing secret (the device is enabled, its endpoint not gone). */
  notifications: { row: NotificationRow; signingSecret: string | null }[];
}

/**
 * Writes calls first reported ringing, in one statement: each call unless it exists already, a
 * ringing notification for every device that announces calls to its number (an announcing type,
 * enabled, with an endpoint that has not answered 410 Gone), claimed by `claimedBy` when given
 * (else pending), and each call's log row (`incoming_call.received`, or
 * `incoming_call.no_devices`). One statement is atomic without a transaction around it.
 */
export async function insertRingingCalls(
  db: DbOrTrx,
  calls: readonly NewRingingCall[],
  options: { now: Date; expiresAt: Date; claimedBy: string | null },
): Promise<RingingCallsWritten> {
  if (calls.length === 0) return { calls: new Map(), notifications: [] };
  const { now, expiresAt, claimedBy } = options;
  const input = sql.join(
    calls.map(
      (call, index) =>
        sql`(${index}::integer, ${call.call_id}::text, ${call.caller}::text, ${call.caller_name}::text, ${call.callee}::text, ${call.source}::text, ${call.correlation_id}::text, ${call.request_id}::text)`,
    ),
  );
  const result = await sql<NotificationRow & { new_call_id: string; signing_secret: string | null }>`
    with input (ord, call_id, caller, caller_name, callee, source, correlation_id, request_id) as (values ${input}),
    calls as (
      insert into incoming_calls (call_id, caller, caller_name, callee, state, source, correlation_id, received_at, ringing_at)
      select call_id, caller, caller_name, callee, 'ringing', source, correlation_id, ${now}, ${now} from input order by ord
      on conflict (call_id) do nothing
      returning call_id, caller, caller_name, callee, source, correlation_id
    ),
    speakers as (
      select c.call_id, d.device_id, d.endpoint, d.signing_secret, d.id
        from calls c join devices d on d.msisdn = c.callee
       where d.type = any(${[...announcingDeviceTypes]}::text[]) and d.enabled and d.endpoint is not null and d.endpoint_gone_at is null
    ),
    notes as (
      insert into notifications (id, call_id, device_id, type, step, endpoint, payload, status, claimed_by, attempts, due_at, expires_at, created_at, correlation_id)
      select gen_random_uuid(), c.call_id, s.device_id, 'incoming_call.ringing', 1, s.endpoint,
             jsonb_build_object('type', 'incoming_call.ringing', 'call_id', c.call_id, 'msisdn', c.callee, 'caller', c.caller, 'caller_name', c.caller_name,
                                'device_id', s.device_id, 'timestamp', ${now.toISOString()}::text, 'expires_at', ${expiresAt.toISOString()}::text),
             case when ${claimedBy}::text is null then 'pending' else 'delivering' end, ${claimedBy}::text, case when ${claimedBy}::text is null then 0 else 1 end,
             ${now}, ${expiresAt}, ${now}, c.correlation_id
        from speakers s join calls c on c.call_id = s.call_id join input i on i.call_id = c.call_id
       order by i.ord, s.id
      returning *
    ),
    logs as (
      insert into event_logs (type, status, msisdn, correlation_id, request_id, details)
      select case when a.devices is null then 'incoming_call.no_devices' else 'incoming_call.received' end,
             case when a.devices is null then 'info' else 'ok' end,
             c.callee, c.correlation_id, i.request_id,
             case when a.devices is null then jsonb_build_object('call_id', c.call_id, 'caller', c.caller, 'source', c.source)
                  else jsonb_build_object('call_id', c.call_id, 'caller', c.caller, 'caller_name', c.caller_name, 'source', c.source, 'devices', a.devices) end
        from calls c join input i on i.call_id = c.call_id
        left join (select call_id, jsonb_agg(device_id order by id) as devices from speakers group by call_id) a on a.call_id = c.call_id
       order by i.ord
    )
    select c.call_id as new_call_id, s.signing_secret, n.*
      from calls c left join notes n on n.call_id = c.call_id left join speakers s on s.call_id = n.call_id and s.device_id = n.device_id
     order by n.seq`.execute(db);
  const written: RingingCallsWritten = { calls: new Map(), notifications: [] };
  for (const { new_call_id, signing_secret, ...row } of result.rows) {
    const call = written.calls.get(new_call_id) ?? { devices: [] };
    written.calls.set(new_call_id, call);
    if (row.id === null) continue;
    call.devices.push(row.device_id);
    written.notifications.push({ row, signingSecret: signing_secret });
  }
  return written;
}
