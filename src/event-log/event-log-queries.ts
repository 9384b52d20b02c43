import type { Db } from '../storage/database.js';
import type { EventLogRow } from '../storage/schema.js';

export interface EventLogFilter {
  type?: string | undefined;
  deviceId?: string | undefined;
  msisdn?: string | undefined;
  correlationId?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Only rows older than this id (the cursor). */
  beforeId?: number | undefined;
  limit: number;
}

/** Newest first; fetches one row more than asked so the caller knows whether a next page exists. */
export async function findEvents(db: Db, filter: EventLogFilter): Promise<EventLogRow[]> {
  let query = db.selectFrom('event_logs').selectAll();
  if (filter.type !== undefined) {
    query = filter.type.endsWith('.*')
      ? query.where('type', 'like', `${filter.type.slice(0, -2).replace(/[\\%_]/g, '\\$&')}.%`)
      : query.where('type', '=', filter.type);
  }
  if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId);
  if (filter.msisdn !== undefined) query = query.where('msisdn', '=', filter.msisdn);
  if (filter.correlationId !== undefined) query = query.where('correlation_id', '=', filter.correlationId);
  if (filter.since !== undefined) query = query.where('at', '>=', filter.since);
  if (filter.until !== undefined) query = query.where('at', '<', filter.until);
  if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
  return query.orderBy('id', 'desc').limit(filter.limit + 1).execute();
}
