import type { Insertable, Selectable } from 'kysely';
import { announcingDeviceTypes } from '../devices/device-types.js';
import type { DbOrTrx } from '../storage/database.js';
import type { Database, DeviceRow } from '../storage/schema.js';

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

/** The devices that announce calls to a number: enabled, with an endpoint that has not answered 410 Gone. */
export async function announcingDevices(db: DbOrTrx, msisdn: string): Promise<DeviceRow[]> {
  return db
    .selectFrom('devices')
    .selectAll()
    .where('msisdn', '=', msisdn)
    .where('type', 'in', announcingDeviceTypes)
    .where('enabled', '=', true)
    .where('endpoint', 'is not', null)
    .where('endpoint_gone_at', 'is', null)
    .orderBy('id')
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

export async function insertNotifications(db: DbOrTrx, rows: Insertable<Database['notifications']>[]): Promise<number> {
  if (rows.length === 0) return 0;
  const inserted = await db
    .insertInto('notifications')
    .values(rows)
    .onConflict((conflict) => conflict.columns(['call_id', 'device_id', 'type']).doNothing())
    .returning('id')
    .execute();
  return inserted.length;
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
