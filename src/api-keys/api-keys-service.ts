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

/** Most keys remembered at once; the least recently used is forgotten first. */
const CACHE_ENTRIES = 1_000;

export class ApiKeyService {
  readonly #db: Db;
  readonly #environmentKeyHash: Buffer | undefined;
  readonly #cacheTtlMs: number;
  /**
   * Keys that authenticated recently, by the hex SHA-256 of the key: every request otherwise reads
   * the database before anything else. Only valid keys are kept (an unknown key is looked up every
   * time, so a flood of wrong keys cannot fill it), for at most API_KEY_CACHE_TTL_MS; a revoke in
   * this process forgets the key at once, a revoke on another instance is seen within the TTL.
   */
  readonly #cache = new Map<string, { principal: Principal; expiresAt: number }>();

  constructor(db: Db, environmentAdminKey?: string, options: { cacheTtlMs?: number } = {}) {
    this.#db = db;
    this.#environmentKeyHash = environmentAdminKey ? hashApiKey(environmentAdminKey) : undefined;
    this.#cacheTtlMs = options.cacheTtlMs ?? 0;
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
      this.#forget(id);
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
    const cacheKey = hash.toString('hex');
    const cached = this.#cache.get(cacheKey);
    if (cached) {
      this.#cache.delete(cacheKey);
      if (cached.expiresAt > Date.now()) {
        this.#cache.set(cacheKey, cached); // most recently used last
        return cached.principal;
      }
    }
    const candidates = await repository.findActiveKeysByPrefix(this.#db, keyPrefix(presented));
    let match: ApiKeyRow | undefined;
    // Compare against every candidate so the time taken does not depend on which one matched.
    for (const row of candidates) if (sameHash(hash, row.key_hash)) match = row;
    if (!match) return null;
    const principal: Principal = { role: match.role as Role, keyId: match.id, name: match.name };
    if (this.#cacheTtlMs > 0) {
      this.#cache.set(cacheKey, { principal, expiresAt: Date.now() + this.#cacheTtlMs });
      if (this.#cache.size > CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return principal;
  }

  /** Drops a revoked key from the cache (a revoke takes effect at once in this process). */
  #forget(keyId: number): void {
    for (const [cacheKey, entry] of this.#cache) if (entry.principal.keyId === keyId) this.#cache.delete(cacheKey);
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
