/**
 * A pg-Pool lookalike over one embedded PGlite database, so Kysely's own PostgresDialect drives
 * PGlite exactly as it drives PostgreSQL. PGlite is a single session: a connection handed out by
 * connect() owns the database until release(), which is what keeps one transaction's statements
 * from interleaving with another's.
 */
import type { PGlite } from '@electric-sql/pglite';
import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';

export class PGlitePool implements PostgresPool {
  #tail: Promise<void> = Promise.resolve();
  #waiting = 0;
  #inUse = false;

  constructor(readonly database: PGlite) {}

  /** How many callers wait for the session: the embedded database's "pool usage". */
  get waiting(): number {
    return this.#waiting;
  }

  /** Whether a caller holds the session now. */
  get inUse(): boolean {
    return this.#inUse;
  }

  async connect(): Promise<PostgresPoolClient & { script(sql: string): Promise<void> }> {
    let release!: () => void;
    const turn = new Promise<void>((resolve) => (release = resolve));
    const previous = this.#tail;
    this.#tail = previous.then(() => turn);
    this.#waiting++;
    await previous;
    this.#waiting--;
    this.#inUse = true;
    const database = this.database;
    const free = () => {
      this.#inUse = false;
    };
    let released = false;
    return {
      async query<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
        const result = await database.query<R>(sql, parameters as unknown[]);
        return { command: commandOf(sql), rowCount: result.affectedRows ?? result.rows.length, rows: result.rows };
      },
      async script(sql: string): Promise<void> {
        await database.exec(sql);
      },
      release() {
        if (released) return;
        released = true;
        free();
        release();
      },
    } as PostgresPoolClient & { script(sql: string): Promise<void> };
  }

  async end(): Promise<void> {
    await this.#tail;
    await this.database.close();
  }
}

type Command = PostgresQueryResult<unknown>['command'];

/** The command tag pg would report; Kysely reads it to count affected rows. */
function commandOf(sql: string): Command {
  const word = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase();
  if (word === 'WITH') {
    const main = /\)\s*(insert|update|delete|merge|select)\b[^()]*$/i.exec(sql)?.[1]?.toUpperCase();
    return (main as Command | undefined) ?? 'SELECT';
  }
  return word === 'INSERT' || word === 'UPDATE' || word === 'DELETE' || word === 'MERGE' || word === 'COMMIT' || word === 'ROLLBACK'
    ? word
    : 'SELECT';
}
