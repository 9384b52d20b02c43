/**
 * The live event log: one poller per process reads new `event_logs` rows (by id) and fans them
 * out to every subscriber, so a hundred open consoles cost one query per tick, not a hundred.
 * Reading the table (rather than an in-process emitter) shows what every gateway instance sharing
 * the database writes.
 *
 * Ids are taken when a row is inserted and become visible when its transaction commits, so on
 * PostgreSQL id 11 may be seen before id 10. The poller remembers such holes for a while and
 * asks for them again; a hole that never fills (a rolled-back insert) is forgotten after
 * `holeTtlMs`.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../storage/database.js';
import type { EventLogRow } from '../storage/schema.js';

export interface FeedOptions {
  pollIntervalMs: number;
  /** Rows read per query. */
  batchSize: number;
  /** How long an id seen missing is asked for again. */
  holeTtlMs: number;
  /** Most holes remembered at once. */
  maxHoles: number;
}

const defaults: FeedOptions = { pollIntervalMs: 300, batchSize: 500, holeTtlMs: 10_000, maxHoles: 1_000 };

/** One open stream: told of new rows, and ended when the feed stops (the gateway closing). */
export interface FeedSubscriber {
  deliver(rows: EventLogRow[]): void;
  end(): void;
}

export class EventLogFeed {
  readonly #db: Db;
  readonly #log: FastifyBaseLogger;
  readonly #options: FeedOptions;
  readonly #listeners = new Set<FeedSubscriber>();
  /** Highest id read so far (undefined until the first read). */
  #watermark: number | undefined;
  /** Ids below the watermark not seen yet, with when they were first missed. */
  readonly #holes = new Map<number, number>();
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #stopped = false;
  /** Bumped when the last subscriber leaves: a poll begun before then must not set the watermark. */
  #generation = 0;

  constructor(deps: { db: Db; logger: FastifyBaseLogger }, options: Partial<FeedOptions> = {}) {
    this.#db = deps.db;
    this.#log = deps.logger;
    this.#options = { ...defaults, ...options };
  }

  get subscriberCount(): number {
    return this.#listeners.size;
  }

  /**
   * Starts listening; returns the id up to which the subscriber will *not* be told (rows with a
   * greater id, and late rows filling holes, arrive through `deliver`). The caller reads older
   * rows itself when resuming.
   */
  async subscribe(listener: FeedSubscriber): Promise<{ watermark: number; unsubscribe: () => void }> {
    if (this.#stopped) throw new Error('the event-log feed has stopped');
    if (this.#watermark === undefined) {
      const row = await this.#db.selectFrom('event_logs').select((eb) => eb.fn.max('id').as('max')).executeTakeFirst();
      // Another subscriber may have set it meanwhile; never move it back.
      this.#watermark ??= Number(row?.max ?? 0);
    }
    this.#listeners.add(listener);
    this.#schedule();
    return {
      watermark: this.#watermark,
      unsubscribe: () => {
        this.#listeners.delete(listener);
        if (this.#listeners.size === 0) {
          // Nobody follows the log now: the next subscriber starts from the table's end, not from
          // where this one left (which would replay everything written meanwhile).
          this.#watermark = undefined;
          this.#holes.clear();
          this.#generation += 1;
        }
      },
    };
  }

  /** Stops polling and ends every open stream (before the server closes: they would hold it open). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#polling;
    for (const listener of this.#listeners) listener.end();
    this.#listeners.clear();
  }

  #schedule(): void {
    if (this.#timer || this.#polling || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#polling = this.#poll().finally(() => {
        this.#polling = undefined;
        if (this.#listeners.size > 0) this.#schedule();
      });
    }, this.#options.pollIntervalMs);
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    if (this.#listeners.size === 0 || this.#watermark === undefined) return;
    const from = this.#watermark;
    const generation = this.#generation;
    const now = Date.now();
    for (const [id, since] of this.#holes) if (now - since > this.#options.holeTtlMs) this.#holes.delete(id);
    const holes = [...this.#holes.keys()];
    let rows: EventLogRow[];
    try {
      rows = await this.#db
        .selectFrom('event_logs')
        .selectAll()
        .where((eb) => (holes.length > 0 ? eb.or([eb('id', '>', from), eb('id', 'in', holes)]) : eb('id', '>', from)))
        .orderBy('id')
        .limit(this.#options.batchSize)
        .execute();
    } catch (error) {
      // The next tick tries again; the consoles just see nothing new for a moment.
      this.#log.warn({ err: error }, 'could not read new event-log rows for the live stream');
      return;
    }
    if (rows.length === 0 || generation !== this.#generation) return;
    let expected = from + 1;
    for (const row of rows) {
      if (this.#holes.delete(row.id)) continue;
      for (let missing = expected; missing < row.id && this.#holes.size < this.#options.maxHoles; missing += 1) this.#holes.set(missing, now);
      expected = row.id + 1;
    }
    this.#watermark = Math.max(from, ...rows.map((row) => row.id));
    for (const listener of this.#listeners) {
      try {
        listener.deliver(rows);
      } catch (error) {
        this.#log.error({ err: error }, 'an event-log stream listener failed');
      }
    }
  }
}
