/**
 * Each test file gets a database of its own: a fresh schema on the real PostgreSQL
 * (TEST_DB=postgres, from TEST_DATABASE_URL) or a fresh in-memory PGlite (TEST_DB=pglite).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openStorage, quoteIdent, type Storage } from '../../src/storage/database.js';
import { migrate } from '../../src/storage/migrate.js';

export const onPostgres = process.env.TEST_DB === 'postgres';
export const testDatabaseUrl = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

let preflightDone = false;

async function preflight(): Promise<void> {
  if (preflightDone) return;
  const client = new pg.Client({ connectionString: testDatabaseUrl, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('select 1');
    preflightDone = true;
  } catch (error) {
    throw new Error(
      `PostgreSQL at ${testDatabaseUrl.replace(/:[^:@/]*@/, ':***@')} is unreachable (${(error as Error).message}).\n` +
        'Start it (on Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), ' +
        'point TEST_DATABASE_URL at a reachable server, or unset TEST_DATABASE_URL to test on PGlite only.',
    );
  } finally {
    await client.end().catch(() => {});
  }
}

export interface TestDatabase {
  storage: Storage;
  /** The PostgreSQL schema (postgres only): other processes can be pointed at the same data. */
  schema?: string;
  /** A URL + schema pair for spawning gateway processes on the same data (postgres only). */
  close(): Promise<void>;
}

/** A migrated, empty database for one test file. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  if (onPostgres) {
    await preflight();
    const schema = `test_${randomBytes(6).toString('hex')}`;
    const storage = await openStorage({ databaseUrl: testDatabaseUrl, schema, poolSize: 5 });
    if (options.migrate !== false) await migrate(storage);
    return {
      storage,
      schema,
      async close() {
        await storage.withSession((session) => session.script(`drop schema if exists ${quoteIdent(schema)} cascade`));
        await storage.close();
      },
    };
  }
  const storage = await openStorage({});
  if (options.migrate !== false) await migrate(storage);
  return { storage, close: () => storage.close() };
}
