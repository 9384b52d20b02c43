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

/** Enabled rules for an event type that name the device, or the number it is bound to; by id. */
export async function findMatchingRules(db: DbOrTrx, event: { eventType: string; deviceId: string; msisdn: string }): Promise<RuleRow[]> {
  return db
    .selectFrom('rules')
    .selectAll()
    .where('enabled', '=', true)
    .where('event_type', '=', event.eventType)
    .where((eb) => eb.or([eb('device_id', '=', event.deviceId), eb('msisdn', '=', event.msisdn)]))
    .orderBy('id')
    .execute();
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
