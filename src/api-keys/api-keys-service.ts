import { sql } from 'kysely';
import type { Principal, Role } from '../auth/roles.js';
import { appendEvent, type Trace } from '../event-log/event-log.js';
import { ApiProblem } from '../http/problems.js';
import type { Db } from '../storage/database.js';
import type { ApiKeyRow } from '../storage/schema.js';
import { generateApiKey, hashApiKey, keyPrefix, looksLikeApiKey, sameHash } from './api-key-secrets.js';
import * as repository from './api-keys-repository.js';

export interface CreatedApiKey {
  row: ApiKeyRow;
  /** The key itself: shown once, never stored. */
  key: string;
}

export class ApiKeyService {
  readonly #db: Db;
  readonly #environmentKeyHash: Buffer | undefined;

  constructor(db: Db, environmentAdminKey?: string) {
    this.#db = db;
    this.#environmentKeyHash = environmentAdminKey ? hashApiKey(environmentAdminKey) : undefined;
  }

  async create(input: { role: Role; name: string }, trace: Trace): Promise<CreatedApiKey> {
    const { key, prefix, hash } = generateApiKey();
    const row = await this.#db.transaction().execute(async (trx) => {
      const inserted = await repository.insertApiKey(trx, { role: input.role, name: input.name, key_prefix: prefix, key_hash: hash, revoked_at: null });
      await appendEvent(trx, {
        type: 'api_key.created',
        status: 'ok',
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { api_key_id: inserted.id, role: inserted.role, name: inserted.name, key_prefix: prefix, by: trace.actor },
      });
      return inserted;
    });
    return { row, key };
  }

  list(afterId: number | undefined, limit: number): Promise<ApiKeyRow[]> {
    return repository.listApiKeys(this.#db, afterId, limit);
  }

  /** Revokes a key at once. The last admin key is kept when no ADMIN_API_KEY could let anyone back in. */
  async revoke(id: number, trace: Trace): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('tas-iot-gateway:admin-keys'))`.execute(trx);
      const row = await repository.findApiKey(trx, id);
      if (!row) throw new ApiProblem('api_key_not_found', `No API key has id ${id}.`);
      if (row.revoked_at) return;
      if (row.role === 'admin' && !this.#environmentKeyHash && (await repository.countActiveAdminKeys(trx)) <= 1) {
        throw new ApiProblem(
          'last_admin_key',
          'This is the only admin key and ADMIN_API_KEY is not set: revoking it would lock every administrator out. Create another admin key first.',
        );
      }
      await repository.revokeApiKey(trx, id);
      await appendEvent(trx, {
        type: 'api_key.revoked',
        status: 'ok',
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { api_key_id: id, role: row.role, name: row.name, key_prefix: row.key_prefix, by: trace.actor },
      });
    });
  }

  /** The principal a presented key stands for, or null when it is unknown or revoked. */
  async authenticate(presented: string): Promise<Principal | null> {
    if (!looksLikeApiKey(presented)) return null;
    const hash = hashApiKey(presented);
    if (this.#environmentKeyHash && sameHash(hash, this.#environmentKeyHash)) {
      return { role: 'admin', keyId: null, name: 'ADMIN_API_KEY' };
    }
    const candidates = await repository.findActiveKeysByPrefix(this.#db, keyPrefix(presented));
    let match: ApiKeyRow | undefined;
    // Compare against every candidate so the time taken does not depend on which one matched.
    for (const row of candidates) if (sameHash(hash, row.key_hash)) match = row;
    return match ? { role: match.role as Role, keyId: match.id, name: match.name } : null;
  }

  /**
   * With no ADMIN_API_KEY and no admin key stored, creates the first admin key and returns it
   * (to be printed once). Several gateways starting together create only one.
   */
  async ensureAdminKey(): Promise<string | null> {
    if (this.#environmentKeyHash) return null;
    return this.#db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('tas-iot-gateway:admin-keys'))`.execute(trx);
      if ((await repository.countActiveAdminKeys(trx)) > 0) return null;
      const { key, prefix, hash } = generateApiKey();
      const row = await repository.insertApiKey(trx, { role: 'admin', name: 'first admin key', key_prefix: prefix, key_hash: hash, revoked_at: null });
      await appendEvent(trx, {
        type: 'api_key.created',
        status: 'ok',
        correlationId: `bootstrap-${row.id}`,
        details: { api_key_id: row.id, role: 'admin', name: row.name, key_prefix: prefix, by: 'first start' },
      });
      return key;
    });
  }
}
