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

/**
 * Enabled rules for any of the events: of its event type, naming its device or the number the
 * device is bound to. One query for a whole intake batch, by id; `rulesOf` picks each event's.
 */
export async function findRulesMatchingAny(db: DbOrTrx, events: readonly MatchableEvent[]): Promise<RuleRow[]> {
  if (events.length === 0) return [];
  const unique = (values: string[]) => [...new Set(values)];
  return db
    .selectFrom('rules')
    .selectAll()
    .where('enabled', '=', true)
    .where('event_type', 'in', unique(events.map((event) => event.eventType)))
    .where((eb) =>
      eb.or([eb('device_id', 'in', unique(events.map((event) => event.deviceId))), eb('msisdn', 'in', unique(events.map((event) => event.msisdn)))]),
    )
    .orderBy('id')
    .execute();
}

/** The rules (of `findRulesMatchingAny`) that match one event: its event type, and the device or its number; in id order. */
export function rulesOf(rules: readonly RuleRow[], event: MatchableEvent): RuleRow[] {
  return rules.filter((rule) => rule.event_type === event.eventType && (rule.device_id === event.deviceId || rule.msisdn === event.msisdn));
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
