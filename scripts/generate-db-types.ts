/**
 * Regenerates src/storage/schema.generated.ts from the migrations: applies them to a scratch
 * schema of a PostgreSQL server and lets kysely-codegen describe the result. With --check it
 * only verifies that the committed file matches the migrations (CI runs this: no drift).
 *
 *   npm run db:codegen             # rewrite the file
 *   npm run db:codegen -- --check  # fail if it is out of date
 * Uses TEST_DATABASE_URL, DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres.
 */
import { execFileSync } from 'node:child_process';
import { sql } from 'kysely';
import { openStorage } from '../src/storage/database.js';
import { migrate } from '../src/storage/migrate.js';

const url = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const check = process.argv.includes('--check');
const schema = `codegen_${process.pid}_${Date.now()}`;
const storage = await openStorage({ databaseUrl: url, schema });
let exitCode = 0;
try {
  await migrate(storage);
  const args = [
    'kysely-codegen',
    '--dialect', 'postgres',
    '--url', url,
    '--default-schema', schema,
    '--include-pattern', `${schema}.*`,
    '--type-mapping', JSON.stringify({ int8: 'number', timestamptz: 'Date' }),
    '--overrides', JSON.stringify({
      columns: {
        'devices.metadata': 'ColumnType<Record<string, unknown>, string | undefined, string>',
        'event_logs.details': 'ColumnType<Record<string, unknown>, string | undefined, string>',
        'rules.action': 'ColumnType<Record<string, unknown>, string, string>',
        'alarms.action': 'ColumnType<Record<string, unknown>, string, string>',
        'device_events.data': 'ColumnType<Record<string, unknown>, string | undefined, string>',
        'device_events.outcome': 'ColumnType<Record<string, unknown>, string | undefined, string>',
        'notifications.payload': 'ColumnType<Record<string, unknown>, string, string>',
      },
    }),
    '--out-file', 'src/storage/schema.generated.ts',
    ...(check ? ['--verify'] : []),
  ];
  try {
    execFileSync('npx', args, { stdio: 'inherit' });
  } catch {
    exitCode = 1;
    if (check) console.error('src/storage/schema.generated.ts does not match the migrations: run `npm run db:codegen` and commit the result.');
  }
} finally {
  await sql.raw(`drop schema "${schema}" cascade`).execute(storage.db);
  await storage.close();
}
process.exit(exitCode);
