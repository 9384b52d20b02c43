import type { DbOrTrx } from '../storage/database.js';
import type { ApiKeyRow, NewApiKeyRow } from '../storage/schema.js';

export async function insertApiKey(db: DbOrTrx, row: NewApiKeyRow): Promise<ApiKeyRow> {
  return db.insertInto('api_keys').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findActiveKeysByPrefix(db: DbOrTrx, prefix: string): Promise<ApiKeyRow[]> {
  return db.selectFrom('api_keys').selectAll().where('key_prefix', '=', prefix).where('revoked_at', 'is', null).execute();
}

export async function listApiKeys(db: DbOrTrx, afterId: number | undefined, limit: number): Promise<ApiKeyRow[]> {
  let query = db.selectFrom('api_keys').selectAll();
  if (afterId !== undefined) query = query.where('id', '>', afterId);
  return query.orderBy('id').limit(limit + 1).execute();
}

export async function findApiKey(db: DbOrTrx, id: number): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function revokeApiKey(db: DbOrTrx, id: number): Promise<void> {
  await db.updateTable('api_keys').set({ revoked_at: new Date() }).where('id', '=', id).where('revoked_at', 'is', null).execute();
}

export async function countActiveAdminKeys(db: DbOrTrx): Promise<number> {
  const row = await db
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('role', '=', 'admin')
    .where('revoked_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}
