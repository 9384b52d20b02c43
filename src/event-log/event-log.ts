/**
 * The event log: one row for everything that happens, written in the same transaction as the
 * change it describes, so the log never claims what did not happen nor misses what did.
 */
import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Db, DbOrTrx } from '../storage/database.js';
import type { Database } from '../storage/schema.js';

/** What kind of outcome a row records. */
export type EventStatus = 'ok' | 'rejected' | 'failed' | 'suppressed' | 'duplicate' | 'info';

export interface EventLogEntry {
  /** Dotted name: `device.created`, `auth.rejected`, `event.received`, `call.failed`... */
  type: string;
  status: EventStatus;
  deviceId?: string | null;
  msisdn?: string | null;
  /** Ties one chain of work together, from the request that started it to its last step. */
  correlationId?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

/** Keys whose values are never written to the log, at any depth. */
const secretKeys = /^(key|api_key|secret|signing_secret|password|authorization|token)$/i;

function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [key, secretKeys.test(key) ? '[redacted]' : withoutSecrets(inner)]),
    );
  }
  return value;
}

export async function appendEvent(db: DbOrTrx, entry: EventLogEntry): Promise<void> {
  await appendEvents(db, [entry]);
}

/** Transactions whose log rows are held and written in one INSERT before their commit. */
const deferred = new WeakMap<DbOrTrx, EventLogEntry[]>();

/**
 * Runs `work` in a transaction whose event-log rows are written together, in order, by one
 * multi-row INSERT just before the commit, instead of one INSERT each: a busy transaction (the
 * webhook intake writes four rows or more) saves a round trip to the database per row. Nothing
 * inside may read the log rows it wrote.
 */
export async function transactionWithEventLog<T>(db: Db, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    const entries: EventLogEntry[] = [];
    deferred.set(trx, entries);
    try {
      const result = await work(trx);
      deferred.delete(trx);
      await appendEvents(trx, entries);
      return result;
    } finally {
      deferred.delete(trx);
    }
  });
}

/**
 * Takes the rows a `transactionWithEventLog` transaction holds so far, for a statement of the
 * caller's that writes them with its own last change (`eventLogInsert`): one round trip fewer.
 * Rows recorded later are still written before the commit. Empty outside such a transaction.
 */
export function takeHeldEntries(trx: DbOrTrx): EventLogEntry[] {
  const held = deferred.get(trx);
  return held ? held.splice(0) : [];
}

/** An INSERT of log rows, in order, to run as a data-modifying WITH of another statement. */
export function eventLogInsert(entries: readonly EventLogEntry[]): RawBuilder<unknown> {
  const rows = entries.map((entry) => {
    const row = eventLogRow(entry);
    return sql`(${row.type}::text, ${row.status}::text, ${row.device_id}::text, ${row.msisdn}::text, ${row.correlation_id}::text, ${row.request_id}::text, ${row.details}::jsonb)`;
  });
  return sql`insert into event_logs (type, status, device_id, msisdn, correlation_id, request_id, details) values ${sql.join(rows)}`;
}

export async function appendEvents(db: DbOrTrx, entries: EventLogEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const held = deferred.get(db);
  if (held) {
    held.push(...entries);
    return;
  }
  await db.insertInto('event_logs').values(entries.map(eventLogRow)).execute();
}

/** The columns of an entry's row, secrets left out (for statements that write log rows themselves). */
export function eventLogRow(entry: EventLogEntry) {
  return {
    type: entry.type,
    status: entry.status,
    device_id: entry.deviceId ?? null,
    msisdn: entry.msisdn ?? null,
    correlation_id: entry.correlationId ?? null,
    request_id: entry.requestId ?? null,
    details: JSON.stringify(withoutSecrets(entry.details ?? {})),
  };
}

/** Where a piece of work came from, carried into every log row it writes. */
export interface Trace {
  correlationId: string;
  requestId?: string | null;
  /** Who asked: an API key's name and id, never the key. */
  actor?: string;
}

export interface StepLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/**
 * Writes event-log rows to the process log as well, once their transaction has committed: one JSON
 * line per domain step, carrying its correlation id (and request id), so that one `grep` on a
 * correlation id shows the whole story in the process log, as `?correlation_id=` does in the
 * event log. Failed and rejected steps are warnings.
 */
export function logSteps(logger: StepLogger, entries: readonly EventLogEntry[]): void {
  for (const entry of entries) {
    const line = {
      correlationId: entry.correlationId ?? null,
      ...(entry.requestId ? { requestId: entry.requestId } : {}),
      step: entry.type,
      status: entry.status,
      ...(entry.deviceId ? { deviceId: entry.deviceId } : {}),
      details: withoutSecrets(entry.details ?? {}),
    };
    if (entry.status === 'failed' || entry.status === 'rejected') logger.warn(line, entry.type);
    else logger.info(line, entry.type);
  }
}
