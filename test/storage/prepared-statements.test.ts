/**
 * Statements prepared by use on PostgreSQL (src/storage/prepared-statements.ts): prepared on their
 * second run, bounded per connection, and a connection whose prepared statement a migration broke
 * is replaced after one failure.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage, quoteIdent, type Storage } from '../../src/storage/database.js';
import { onPostgres, testDatabaseUrl } from '../support/database.js';

if (!onPostgres) console.log('skipping test/storage/prepared-statements.test.ts: prepared statements are a PostgreSQL connection feature (set TEST_DATABASE_URL); PGlite runs statements in process');

describe.skipIf(!onPostgres)('statements prepared by use on PostgreSQL', () => {
  const schema = `test_prep_${randomBytes(5).toString('hex')}`;
  let admin: Storage;
  const opened: Storage[] = [];
  /** A pool of one connection, so every statement runs on the same one. */
  const single = async (preparedStatements: number) => {
    const storage = await openStorage({ databaseUrl: testDatabaseUrl, schema, poolSize: 1, preparedStatements });
    opened.push(storage);
    return storage;
  };
  const prepared = async (storage: Storage) =>
    (await sql<{ statement: string }>`select statement from pg_prepared_statements order by prepare_time`.execute(storage.db)).rows.map((row) => row.statement);

  beforeAll(async () => {
    admin = await openStorage({ databaseUrl: testDatabaseUrl, schema, poolSize: 1, preparedStatements: 0 });
    await admin.withSession((s) => s.script('create table sensors (id int primary key, name text not null); insert into sensors values (1, $$hall$$), (2, $$kitchen$$)'));
  });
  afterAll(async () => {
    for (const storage of opened) await storage.close();
    await admin.withSession((s) => s.script(`drop schema if exists ${quoteIdent(schema)} cascade`));
    await admin.close();
  });

  it('prepares a statement on its second run on a connection, and answers the same', async () => {
    const storage = await single(200);
    const read = (id: number) => sql<{ name: string }>`select name from sensors where id = ${id}`.execute(storage.db);
    expect((await read(1)).rows).toEqual([{ name: 'hall' }]);
    expect(await prepared(storage)).toEqual([]);
    expect((await read(2)).rows).toEqual([{ name: 'kitchen' }]);
    expect(await prepared(storage)).toEqual(['select name from sensors where id = $1']);
    expect((await read(1)).rows).toEqual([{ name: 'hall' }]);
    expect(await prepared(storage)).toHaveLength(1);
  });

  it('prepares no more than the limit per connection, and none with 0', async () => {
    const limited = await single(2);
    const none = await single(0);
    for (const storage of [limited, none]) {
      for (let round = 0; round < 2; round++) {
        for (const column of ['id', 'name', 'id + 1']) {
          await sql`select ${sql.raw(column)} from sensors where id = ${1}`.execute(storage.db);
        }
      }
    }
    expect(await prepared(limited)).toEqual(['select id from sensors where id = $1', 'select name from sensors where id = $1']);
    expect(await prepared(none)).toEqual([]);
  });

  it('after a migration changes the columns a prepared statement returns: one failure, then a fresh connection answers', async () => {
    const storage = await single(200);
    const readAll = () => sql<Record<string, unknown>>`select * from sensors where id = ${1}`.execute(storage.db);
    await readAll();
    await readAll();
    // Another instance's migration, on another connection.
    await admin.withSession((s) => s.script('alter table sensors add column floor int not null default 0'));
    await expect(readAll()).rejects.toThrow(/cached plan must not change result type/);
    expect((await readAll()).rows).toEqual([{ id: 1, name: 'hall', floor: 0 }]);
  });
});
