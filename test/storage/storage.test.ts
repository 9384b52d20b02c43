import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirInUseError, openStorage } from '../../src/storage/database.js';
import { listMigrations, migrate } from '../../src/storage/migrate.js';
import { createTestDatabase, onPostgres, testDatabaseUrl } from '../support/database.js';

const folders: string[] = [];
afterAll(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

describe('migrations', () => {
  it('are numbered, and applying them again does nothing', async () => {
    const migrations = listMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    migrations.forEach((migration, index) => expect(migration.version).toBe(index + 1));
    const database = await createTestDatabase();
    try {
      expect(await migrate(database.storage)).toEqual([]);
      const applied = await database.storage.db.selectFrom('schema_migrations').select('version').orderBy('version').execute();
      expect(applied.map((row) => row.version)).toEqual(migrations.map((migration) => migration.version));
    } finally {
      await database.close();
    }
  });

  it('take turns when several gateways start at once', async () => {
    const database = await createTestDatabase({ migrate: false });
    // On PostgreSQL each contender has its own pool (its own "gateway"); PGlite serves one process.
    const others = onPostgres
      ? await Promise.all([1, 2, 3].map(() => openStorage({ databaseUrl: testDatabaseUrl, schema: database.schema!, poolSize: 2 })))
      : [];
    try {
      const results = await Promise.all([database.storage, ...others, database.storage].map((storage) => migrate(storage)));
      const appliedTotal = results.flat();
      expect(appliedTotal.sort()).toEqual(listMigrations().map((migration) => migration.name).sort());
      const rows = await database.storage.db.selectFrom('schema_migrations').select('version').execute();
      expect(rows).toHaveLength(listMigrations().length);
    } finally {
      await Promise.all(others.map((storage) => storage.close()));
      await database.close();
    }
  });
});

describe('the embedded database', () => {
  it('keeps its data across restarts and lets only one process use a folder', async () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'gateway-data-'));
    folders.push(folder);
    const first = await openStorage({ dataDir: folder });
    await migrate(first);
    await first.db.insertInto('devices').values({ device_id: 'persisted', type: 'sensor_smoke', msisdn: '+79161234567', metadata: '{}' }).execute();
    await expect(openStorage({ dataDir: folder })).rejects.toBeInstanceOf(DataDirInUseError);
    await first.close();

    const second = await openStorage({ dataDir: folder });
    try {
      expect(await migrate(second)).toEqual([]);
      const row = await second.db.selectFrom('devices').select(['device_id', 'msisdn']).executeTakeFirst();
      expect(row).toEqual({ device_id: 'persisted', msisdn: '+79161234567' });
    } finally {
      await second.close();
    }
  });
});
