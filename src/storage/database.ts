/**
 * The one database seam. PostgreSQL when a URL is given, otherwise an embedded PGlite database in
 * a folder; both are driven by Kysely's PostgresDialect and get the same migrations, so the rest
 * of the code never knows which one it runs on.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import lockfile from 'proper-lockfile';
import { prepareRepeatedStatements } from './prepared-statements.js';
import { PGlitePool } from './pglite-pool.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
/** A repository method's `db` argument: the whole database or the caller's transaction. */
export type DbOrTrx = Kysely<Database> | Transaction<Database>;

/** A row read through an outer join that matched nothing: every column may be null. */
export type Nullable<T> = { [K in keyof T]: T[K] | null };

export interface StorageOptions {
  /** PostgreSQL URL; unset means embedded PGlite. */
  databaseUrl?: string | undefined;
  /** Folder of the embedded database; `undefined` (tests) keeps it in memory. */
  dataDir?: string | undefined;
  poolSize?: number;
  /** PostgreSQL schema to work in (tests give each file its own). */
  schema?: string;
  /** Most statements prepared per PostgreSQL connection; unset or 0 prepares none (see prepared-statements.ts). */
  preparedStatements?: number;
}

/** Runs SQL scripts (several statements, no parameters) on one pinned session. */
export interface ScriptSession {
  query<R = Record<string, unknown>>(text: string, parameters?: unknown[]): Promise<R[]>;
  script(text: string): Promise<void>;
}

export interface Storage {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /** Where the data lives, for the start-up banner (a URL without its password, or a folder). */
  readonly location: string;
  /** One session for the caller alone (migrations, advisory locks). */
  withSession<T>(work: (session: ScriptSession) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  /** Connections in use, idle and waited for, read at metrics scrape time. */
  poolUsage(): PoolUsage;
  close(): Promise<void>;
}

export interface PoolUsage {
  /** The pool size (DATABASE_POOL_SIZE; 1 for the embedded database, a single session). */
  max: number;
  inUse: number;
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
}

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
  constructor(readonly dataDir: string) {
    super(
      `The embedded database in ${dataDir} is in use by another gateway process. ` +
        'PGlite allows one process per folder: stop the other one, choose another DATA_DIR, or set DATABASE_URL to share PostgreSQL.',
    );
  }
}

const INT8 = 20;

/** bigint columns (ids, counts) arrive as JS numbers, as PGlite is set to give them. */
const typeParser = ((oid: number, format: 'text' | 'binary' = 'text'): unknown =>
  oid === INT8 ? Number : (pg.types.getTypeParser(oid, format) as unknown)) as typeof pg.types.getTypeParser;

export async function openStorage(options: StorageOptions): Promise<Storage> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPGlite(options);
}

async function openPostgres(databaseUrl: string, options: StorageOptions): Promise<Storage> {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    // A statement that waits longer than this is stuck (a lock, an outage): fail it instead of hanging the request.
    statement_timeout: 15_000,
    ...(options.schema ? { options: `-c search_path=${quoteIdent(options.schema)}` } : {}),
    types: { getTypeParser: typeParser },
  });
  // A client losing its server connection must not crash the process. Idle: the pool replaces it.
  // Checked out: its queries fail (503 for a request) and it is discarded on release; without a
  // listener of its own, the 'error' it also emits would be an uncaught exception.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    prepareRepeatedStatements(client, options.preparedStatements ?? 0);
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const storage: Storage = {
    kind: 'postgres',
    db,
    location: redactUrl(databaseUrl),
    async withSession(work) {
      const client = await pool.connect();
      try {
        return await work({
          async query<R>(text: string, parameters: unknown[] = []) {
            return (await client.query<R & pg.QueryResultRow>(text, parameters)).rows;
          },
          async script(text: string) {
            await client.query(text);
          },
        });
      } finally {
        client.release();
      }
    },
    async ping() {
      await sql`select 1`.execute(db);
    },
    poolUsage: () => ({ max: pool.options.max ?? 10, inUse: pool.totalCount - pool.idleCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async close() {
      await db.destroy();
    },
  };
  if (options.schema) {
    await storage.withSession((session) => session.script(`create schema if not exists ${quoteIdent(options.schema!)}`));
  }
  return storage;
}

async function openPGlite(options: StorageOptions): Promise<Storage> {
  let releaseLock: (() => Promise<void>) | undefined;
  let dataDir: string | undefined;
  if (options.dataDir) {
    dataDir = path.resolve(options.dataDir);
    mkdirSync(dataDir, { recursive: true });
    releaseLock = await lockDataDir(dataDir);
  }
  let database: PGlite;
  try {
    database = await PGlite.create({
      ...(dataDir ? { dataDir: path.join(dataDir, 'pgdata') } : {}),
      parsers: {
        [pgliteTypes.INT8]: (value: string) => Number(value),
        // bytea as a Buffer, as pg gives it (PGlite's own parser returns a plain Uint8Array).
        [pgliteTypes.BYTEA]: (value: string) => Buffer.from(value.slice(2), 'hex'),
      },
    });
  } catch (error) {
    await releaseLock?.();
    throw error;
  }
  const pool = new PGlitePool(database);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    kind: 'pglite',
    db,
    location: dataDir ?? '(in memory)',
    async withSession(work) {
      const client = await pool.connect();
      try {
        return await work({
          async query<R>(text: string, parameters: unknown[] = []) {
            return (await client.query<R>(text, parameters)).rows;
          },
          script: (text) => client.script(text),
        });
      } finally {
        client.release();
      }
    },
    async ping() {
      await sql`select 1`.execute(db);
    },
    poolUsage: () => ({ max: 1, inUse: pool.inUse ? 1 : 0, idle: pool.inUse ? 0 : 1, waiting: pool.waiting }),
    async close() {
      await db.destroy();
      await releaseLock?.();
    },
  };
}

/**
 * One process per embedded data folder. The lock records its holder's pid, so a gateway that
 * restarts after a crash (SIGKILL leaves the lock behind) takes the folder at once instead of
 * waiting for the lock to go stale, while a live holder still keeps it.
 */
const heldDataDirs = new Set<string>();

async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  if (heldDataDirs.has(dataDir)) throw new DataDirInUseError(dataDir);
  const lockPath = path.join(dataDir, 'gateway.lock');
  const pidPath = path.join(dataDir, 'gateway.pid');
  const take = () => lockfile.lock(dataDir, { lockfilePath: lockPath, stale: 15_000, update: 5_000 });
  let release: () => Promise<void>;
  try {
    release = await take();
  } catch (error) {
    if ((error as { code?: string }).code !== 'ELOCKED') throw error;
    if (holderIsAlive(pidPath)) throw new DataDirInUseError(dataDir);
    rmSync(lockPath, { recursive: true, force: true });
    try {
      release = await take();
    } catch (retryError) {
      if ((retryError as { code?: string }).code === 'ELOCKED') throw new DataDirInUseError(dataDir);
      throw retryError;
    }
  }
  writeFileSync(pidPath, String(process.pid));
  heldDataDirs.add(dataDir);
  return async () => {
    heldDataDirs.delete(dataDir);
    await release();
  };
}

function holderIsAlive(pidPath: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(pidPath, 'utf8').trim());
  } catch {
    return true; // no record of the holder: trust the lock
  }
  // Our own pid in the file, for a folder this process does not hold, is a previous life of the
  // same pid (a container restart).
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgresql://(unparseable URL)';
  }
}
