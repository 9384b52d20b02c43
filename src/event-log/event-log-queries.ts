import { sql, type SelectQueryBuilder } from 'kysely';
import type { Db } from '../storage/database.js';
import type { Database, EventLogRow } from '../storage/schema.js';

/** What a row must match: the same filters for the list and the live stream. */
export interface EventMatch {
  type?: string | undefined;
  deviceId?: string | undefined;
  msisdn?: string | undefined;
  correlationId?: string | undefined;
}

export interface EventLogFilter extends EventMatch {
  limit: number;
}

/** Newest first by id: the whole log, or rows matching filters, paged by id. */
export interface EventLogByIdFilter extends EventLogFilter {
  /** Only rows older than this id (the cursor). */
  beforeId?: number | undefined;
}

/** Newest first by time: rows in a time range, paged by (time, id). */
export interface EventLogByTimeFilter extends EventLogFilter {
  since?: Date | undefined;
  until?: Date | undefined;
  /** Only rows before this (time, id) (the cursor). */
  before?: { atMicros: string; id: number } | undefined;
}

type EventQuery = SelectQueryBuilder<Database, 'event_logs', EventLogRow>;

function whereMatches(query: EventQuery, filter: EventMatch): EventQuery {
  if (filter.type !== undefined) {
    query = filter.type.endsWith('.*')
      ? query.where('type', 'like', `${filter.type.slice(0, -2).replace(/[\\%_]/g, '\\$&')}.%`)
      : query.where('type', '=', filter.type);
  }
  if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId);
  if (filter.msisdn !== undefined) query = query.where('msisdn', '=', filter.msisdn);
  if (filter.correlationId !== undefined) query = query.where('correlation_id', '=', filter.correlationId);
  return query;
}

/** Newest first; fetches one row more than asked so the caller knows whether a next page exists. */
export async function findEvents(db: Db, filter: EventLogByIdFilter): Promise<EventLogRow[]> {
  let query = whereMatches(db.selectFrom('event_logs').selectAll(), filter);
  if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
  return query.orderBy('id', 'desc').limit(filter.limit + 1).execute();
}

/**
 * Rows in a time range, newest first by time (then id), each with its time in microseconds for
 * the cursor. Sorted by id instead, PostgreSQL walks the primary key back from the newest row and
 * filters by time: with 10,000,000 rows, an hour a week ago took 1.7 s; through (at, id) it is an
 * index range read.
 */
export async function findEventsInTime(db: Db, filter: EventLogByTimeFilter): Promise<(EventLogRow & { at_us: string })[]> {
  let query = whereMatches(db.selectFrom('event_logs').selectAll(), filter);
  if (filter.since !== undefined) query = query.where('at', '>=', filter.since);
  if (filter.until !== undefined) query = query.where('at', '<', filter.until);
  if (filter.before !== undefined) {
    const { atMicros, id } = filter.before;
    query = query.where(sql<boolean>`(at, id) < (timestamptz 'epoch' + ${atMicros}::bigint * interval '1 microsecond', ${id})`);
  }
  return query
    .select(sql<string>`(extract(epoch from at) * 1000000)::bigint::text`.as('at_us'))
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
}

/** Oldest first, the rows with `afterId < id <= uptoId` (a stream catching up after `Last-Event-ID`). */
export async function findEventsBetween(db: Db, filter: EventMatch, afterId: number, uptoId: number, limit: number): Promise<EventLogRow[]> {
  const query = whereMatches(db.selectFrom('event_logs').selectAll(), filter).where('id', '>', afterId).where('id', '<=', uptoId);
  return query.orderBy('id').limit(limit).execute();
}

/** The same test in memory, for rows the live stream fans out. */
export function eventMatches(row: EventLogRow, filter: EventMatch): boolean {
  if (filter.type !== undefined) {
    if (filter.type.endsWith('.*')) {
      if (!row.type.startsWith(filter.type.slice(0, -1))) return false;
    } else if (row.type !== filter.type) return false;
  }
  if (filter.deviceId !== undefined && row.device_id !== filter.deviceId) return false;
  if (filter.msisdn !== undefined && row.msisdn !== filter.msisdn) return false;
  if (filter.correlationId !== undefined && row.correlation_id !== filter.correlationId) return false;
  return true;
}
