/**
 * Prepared statements on PostgreSQL, chosen by use: a statement with parameters that runs a second
 * time on a connection is prepared there (a named statement), so PostgreSQL parses and analyses it
 * once per connection, and plans it once it settles on a generic plan, instead of at every run.
 * The gateway's statements are few and run thousands of times a second under load: their parse
 * and plan were a fifth of PostgreSQL's time per smoke event, and a millisecond of each webhook's
 * latency (bench/notes.md). Npgsql's automatic preparation works the same way.
 *
 * Bounded: at most `maxPerConnection` statements per connection (the rest run unnamed, as
 * before), so batch statements whose text varies with the batch's size cannot fill a server's
 * memory (each prepared statement holds about 70 KB of its server connection's memory). Two
 * failures only a prepared statement has end the connection, and the pool opens a fresh one for
 * the next transaction:
 * - "cached plan must not change result type": a migration (by another instance, during a rolling
 *   deploy) changed the columns a prepared `select *` or `returning *` reads;
 * - "prepared statement ... does not exist": something between the gateway and PostgreSQL (a
 *   connection pooler) dropped it.
 * The statement that met it fails once, like any statement on a lost connection.
 *
 * `maxPerConnection` 0 (the default, DATABASE_PREPARED_STATEMENTS) prepares nothing. Measured in
 * the benchmark (bench/notes.md, change 29): the webhooks' median latency fell, the tail of the
 * speaker notifications rose; the likely cause is the batch statements whose text varies with the
 * batch's size, each size prepared and given a generic plan of its own, which is work, not a
 * saving. Also off for a pooler in transaction mode that cannot keep prepared statements
 * (PgBouncer before 1.21, or without `max_prepared_statements`).
 */
import type pg from 'pg';

/** Texts seen once, per connection, before their second run prepares them; forgotten past this. */
const MAX_SEEN = 1_000;

type Query = (...args: unknown[]) => unknown;

export function prepareRepeatedStatements(client: pg.PoolClient, maxPerConnection: number): void {
  if (maxPerConnection <= 0) return;
  const seen = new Set<string>();
  const named = new Map<string, string>();
  const query = client.query.bind(client) as Query;

  const nameFor = (text: string): string | undefined => {
    const name = named.get(text);
    if (name !== undefined || named.size >= maxPerConnection) return name;
    if (!seen.has(text)) {
      if (seen.size >= MAX_SEEN) seen.clear();
      seen.add(text);
      return undefined;
    }
    seen.delete(text);
    const fresh = `tig_${named.size + 1}`;
    named.set(text, fresh);
    return fresh;
  };

  (client as { query: Query }).query = (...args: unknown[]) => {
    const [text, values] = args;
    // Kysely's form: (sql, parameters), promise returned. Anything else passes through untouched.
    if (args.length !== 2 || typeof text !== 'string' || !Array.isArray(values) || values.length === 0) return query(...args);
    const name = nameFor(text);
    if (name === undefined) return query(text, values);
    return (query({ name, text, values }) as Promise<unknown>).catch((error: unknown) => {
      if (preparedStatementLost(error)) void client.end().catch(() => {});
      throw error;
    });
  };
}

function preparedStatementLost(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code === '26000') return true; // invalid_sql_statement_name: the prepared statement is gone
  return code === '0A000' && typeof message === 'string' && message.includes('cached plan must not change result type');
}
