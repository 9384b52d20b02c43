import type { DbOrTrx } from '../storage/database.js';
import type { DeviceRow, DeviceUpdate, NewDeviceRow } from '../storage/schema.js';

export async function insertDevice(db: DbOrTrx, row: NewDeviceRow): Promise<DeviceRow> {
  return db.insertInto('devices').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findDevice(db: DbOrTrx, deviceId: string, options: { forUpdate?: boolean } = {}): Promise<DeviceRow | undefined> {
  const query = db.selectFrom('devices').selectAll().where('device_id', '=', deviceId);
  return (options.forUpdate ? query.forUpdate() : query).executeTakeFirst();
}

/** The devices of these ids that exist, by id: one query for a whole intake batch. */
export async function findDevices(db: DbOrTrx, deviceIds: readonly string[]): Promise<Map<string, DeviceRow>> {
  if (deviceIds.length === 0) return new Map();
  const rows = await db.selectFrom('devices').selectAll().where('device_id', 'in', [...new Set(deviceIds)]).execute();
  return new Map(rows.map((row) => [row.device_id, row]));
}

export interface DeviceFilter {
  type?: string | undefined;
  msisdn?: string | undefined;
  afterId?: number | undefined;
  limit: number;
}

/** In registration order; one row more than asked so the caller can tell a next page exists. */
export async function listDevices(db: DbOrTrx, filter: DeviceFilter): Promise<DeviceRow[]> {
  let query = db.selectFrom('devices').selectAll();
  if (filter.type !== undefined) query = query.where('type', '=', filter.type);
  if (filter.msisdn !== undefined) query = query.where('msisdn', '=', filter.msisdn);
  if (filter.afterId !== undefined) query = query.where('id', '>', filter.afterId);
  return query.orderBy('id').limit(filter.limit + 1).execute();
}

export async function updateDevice(db: DbOrTrx, deviceId: string, changes: DeviceUpdate): Promise<DeviceRow | undefined> {
  return db
    .updateTable('devices')
    .set({ ...changes, updated_at: new Date() })
    .where('device_id', '=', deviceId)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteDevice(db: DbOrTrx, deviceId: string): Promise<DeviceRow | undefined> {
  return db.deleteFrom('devices').where('device_id', '=', deviceId).returningAll().executeTakeFirst();
}
