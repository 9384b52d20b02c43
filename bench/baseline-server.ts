/**
 * The baseline: the least a webhook intake can do. A minimal Fastify server that validates the
 * same webhook body with the same JSON schema as the gateway, commits one INSERT per request with
 * the same durability (PostgreSQL's default synchronous commit, or PGlite's own), and answers 202.
 * The gateway does far more per request and must still keep up with it.
 *
 * Usage: tsx bench/baseline-server.ts <postgresql-url | pglite-data-dir> [schema]
 * Prints `READY {"url": ...}`.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import { sql } from 'kysely';
import { DeviceEventBody } from '../src/device-events/device-events-routes.js';
import { openStorage } from '../src/storage/database.js';
import { announce } from './support/child.js';

const [target, schema] = process.argv.slice(2);
if (!target) throw new Error('usage: baseline-server.ts <postgresql-url | pglite-data-dir> [schema]');
const isUrl = target.startsWith('postgres');
const storage = await openStorage({
  ...(isUrl ? { databaseUrl: target } : { dataDir: target }),
  poolSize: 10,
  ...(schema ? { schema } : {}),
});
const db = storage.db;
await sql`create table if not exists bench_baseline_events (
  event_id text primary key,
  device_id text not null,
  event_type text not null,
  occurred_at timestamptz,
  data jsonb not null,
  received_at timestamptz not null default now()
)`.execute(db);

const app = Fastify({ logger: false }).withTypeProvider<TypeBoxTypeProvider>();
app.post('/api/v1/webhooks/events', { schema: { body: DeviceEventBody } }, async (request, reply) => {
  const body = request.body;
  await sql`insert into bench_baseline_events (event_id, device_id, event_type, occurred_at, data)
            values (${body.event_id}, ${body.device_id}, ${body.event_type}, ${body.occurred_at ?? null}, ${JSON.stringify(body.data ?? {})})`.execute(db);
  return reply.code(202).send({ event_id: body.event_id, status: 'accepted' });
});
const url = await app.listen({ port: 0, host: '127.0.0.1' });
announce('READY', { url });

process.on('SIGTERM', () => {
  void app.close().then(async () => {
    await storage.close();
    process.exit(0);
  });
});
