/**
 * Forward-only numbered SQL migrations (`migrations/NNNN_name.sql`), the same files for
 * PostgreSQL and PGlite. A session-level advisory lock makes concurrent starts of several
 * gateways take turns: the first applies what is missing, the others then find nothing to do.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ScriptSession, Storage } from './database.js';

const migrationsDir = fileURLToPath(new URL('./migrations/', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function listMigrations(dir = migrationsDir): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ''),
      sql: readFileSync(new URL(file, `file://${dir}/`), 'utf8'),
    }));
}

/** Applies every migration not yet applied; returns the names it applied. */
export async function migrate(storage: Storage, migrations = listMigrations()): Promise<string[]> {
  return storage.withSession(async (session) => {
    await session.query(`select pg_advisory_lock(hashtext(current_schema() || ':tas-iot-gateway:migrations'))`);
    try {
      await session.script(
        `create table if not exists schema_migrations (
           version integer primary key,
           name text not null,
           applied_at timestamptz not null default now()
         )`,
      );
      const applied = new Set(
        (await session.query<{ version: number }>('select version from schema_migrations')).map((row) => row.version),
      );
      const done: string[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.version)) continue;
        await applyOne(session, migration);
        done.push(migration.name);
      }
      return done;
    } finally {
      await session.query(`select pg_advisory_unlock(hashtext(current_schema() || ':tas-iot-gateway:migrations'))`);
    }
  });
}

async function applyOne(session: ScriptSession, migration: Migration): Promise<void> {
  await session.script('begin');
  try {
    await session.script(migration.sql);
    await session.query('insert into schema_migrations (version, name) values ($1, $2)', [migration.version, migration.name]);
    await session.script('commit');
  } catch (error) {
    await session.script('rollback');
    throw new Error(`Migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
  }
}
