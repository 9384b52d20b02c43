import { sql } from 'kysely';
import type { DbOrTrx } from '../storage/database.js';
import type { NewRuleRow, RuleRow, RuleUpdate } from '../storage/schema.js';

export async function insertRule(db: DbOrTrx, row: NewRuleRow): Promise<RuleRow> {
  return db.insertInto('rules').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findRule(db: DbOrTrx, id: number, options: { forUpdate?: boolean } = {}): Promise<RuleRow | undefined> {
  const query = db.selectFrom('rules').selectAll().where('id', '=', id);
  return (options.forUpdate ? query.forUpdate() : query).executeTakeFirst();
}

export interface RuleFilter {
  eventType?: string | undefined;
  deviceId?: string | undefined;
  msisdn?: string | undefined;
  enabled?: boolean | undefined;
  afterId?: number | undefined;
  limit: number;
}

/** In creation order; one row more than asked so the caller can tell a next page exists. */
export async function listRules(db: DbOrTrx, filter: RuleFilter): Promise<RuleRow[]> {
  let query = db.selectFrom('rules').selectAll();
  if (filter.eventType !== undefined) query = query.where('event_type', '=', filter.eventType);
  if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId);
  if (filter.msisdn !== undefined) query = query.where('msisdn', '=', filter.msisdn);
  if (filter.enabled !== undefined) query = query.where('enabled', '=', filter.enabled);
  if (filter.afterId !== undefined) query = query.where('id', '>', filter.afterId);
  return query.orderBy('id').limit(filter.limit + 1).execute();
}

/** What a device event is matched on. */
export interface MatchableEvent {
  eventType: string;
  deviceId: string;
  /** The number the device is bound to (E.164). */
  msisdn: string;
}

/** A rule an event matches, with the rule's latest alarm for the event's device. */
export interface RuleMatch {
  /** The event's place in the list given. */
  event: number;
  rule: RuleRow;
  /** The rule's active alarm for the device if there is one (at most one can be), else its latest (for the cooldown). */
  latestAlarm: { id: string; status: string; startedAt: Date } | undefined;
}

/**
 * The enabled rules each event matches (its event type, and its device or the number the device
 * is bound to), each with the state of its alarm for the event's device, in one query for a whole
 * intake batch: the event's order, then the rules' ids. The rules are found by their indexes for
 * the batch as a whole, each alarm by an index lookup.
 */
export async function findMatches(db: DbOrTrx, events: readonly MatchableEvent[]): Promise<RuleMatch[]> {
  if (events.length === 0) return [];
  const unique = (values: string[]) => sql.join([...new Set(values)]);
  const given = sql.join(events.map((event, index) => sql`(${index}::integer, ${event.eventType}::text, ${event.deviceId}::text, ${event.msisdn}::text)`));
  const result = await sql<RuleRow & { ord: number; latest_id: string | null; latest_status: string | null; latest_started_at: Date | null }>`
    with matched as materialized (
      select * from rules
       where enabled and event_type in (${unique(events.map((event) => event.eventType))})
         and (device_id in (${unique(events.map((event) => event.deviceId))}) or msisdn in (${unique(events.map((event) => event.msisdn))}))
    )
    select given.ord, matched.*, latest.id as latest_id, latest.status as latest_status, latest.started_at as latest_started_at
      from (values ${given}) as given (ord, event_type, device_id, msisdn)
      join matched on matched.event_type = given.event_type and (matched.device_id = given.device_id or matched.msisdn = given.msisdn)
      left join lateral (
        select id, status, started_at from alarms
         where alarms.rule_id = matched.id and alarms.device_id = given.device_id
         order by status = 'active' desc, started_at desc
         limit 1
      ) as latest on true
     order by given.ord, matched.id`.execute(db);
  return result.rows.map(({ ord, latest_id, latest_status, latest_started_at, ...rule }) => ({
    event: ord,
    rule,
    latestAlarm: latest_id === null ? undefined : { id: latest_id, status: latest_status!, startedAt: latest_started_at! },
  }));
}

export async function updateRule(db: DbOrTrx, id: number, changes: RuleUpdate): Promise<RuleRow | undefined> {
  return db
    .updateTable('rules')
    .set({ ...changes, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteRule(db: DbOrTrx, id: number): Promise<RuleRow | undefined> {
  return db.deleteFrom('rules').where('id', '=', id).returningAll().executeTakeFirst();
}
