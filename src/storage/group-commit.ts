/**
 * Group commit: work that arrives while earlier work is being written is written together, by one
 * transaction of a few multi-row statements, instead of one transaction each. Each piece of work
 * still gets its own outcome, and only after the commit that made it durable.
 *
 * On this kind of machine a statement's cost is mostly its round trip (a socket write and a wake-up
 * of the database), so a batch of fifty costs little more than one: see bench/notes.md.
 */

/** What the batch writer says of one item: its result, or the error it alone gets (a 4xx). */
export type ItemOutcome<Result> = { value: Result } | { error: unknown };

export interface GroupCommitOptions<Item, Result> {
  /** Most items in one batch. */
  maxBatch: number;
  /** Most batches written at once: the next one is assembled while these commit. */
  maxRunning: number;
  /**
   * Keys an item holds while its batch is written. An item whose key is held, by an item of the
   * batch being assembled or of one being written, waits for a later batch: work on one key (a
   * device, an event id) is written one item after the other, as it arrived.
   */
  keys: (item: Item) => readonly string[];
  /**
   * Writes a batch in one transaction; one outcome per item, in order. A throw (the database
   * refused the batch: a deadlock, a lost connection) rolls the whole batch back, and its items
   * are written again one at a time, so that one bad item costs only itself.
   */
  write: (items: Item[]) => Promise<ItemOutcome<Result>[]>;
  /** Told when a batch of several items failed and is retried one item at a time. */
  onRetry?: (error: unknown, size: number) => void;
}

interface Waiting<Item, Result> {
  item: Item;
  keys: readonly string[];
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit<Item, Result> {
  #waiting: Waiting<Item, Result>[] = [];
  readonly #held = new Set<string>();
  #running = 0;
  #scheduled = false;

  constructor(private readonly options: GroupCommitOptions<Item, Result>) {}

  /** Resolves with the item's result once its batch has committed; rejects with its own error. */
  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.#waiting.push({ item, keys: this.options.keys(item), resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // After this turn's I/O callbacks: requests read from the sockets together go together.
    setImmediate(() => {
      this.#scheduled = false;
      this.#start();
    });
  }

  #start(): void {
    while (this.#running < this.options.maxRunning && this.#waiting.length > 0) {
      const batch = this.#take();
      if (batch.length === 0) return; // every waiting item's key is held: a running batch ends soon
      this.#running++;
      void this.#write(batch).finally(() => {
        this.#running--;
        for (const entry of batch) for (const key of entry.keys) this.#held.delete(key);
        if (this.#waiting.length > 0) this.#schedule();
      });
    }
  }

  /** The next batch, in arrival order, skipping items whose key is held. */
  #take(): Waiting<Item, Result>[] {
    const batch: Waiting<Item, Result>[] = [];
    const rest: Waiting<Item, Result>[] = [];
    for (const entry of this.#waiting) {
      if (batch.length < this.options.maxBatch && entry.keys.every((key) => !this.#held.has(key))) {
        for (const key of entry.keys) this.#held.add(key);
        batch.push(entry);
      } else {
        rest.push(entry);
      }
    }
    this.#waiting = rest;
    return batch;
  }

  async #write(batch: Waiting<Item, Result>[]): Promise<void> {
    let outcomes: ItemOutcome<Result>[];
    try {
      outcomes = await this.options.write(batch.map((entry) => entry.item));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      this.options.onRetry?.(error, batch.length);
      for (const entry of batch) await this.#write([entry]);
      return;
    }
    outcomes.forEach((outcome, index) => {
      const entry = batch[index]!;
      if ('error' in outcome) entry.reject(outcome.error);
      else entry.resolve(outcome.value);
    });
  }
}
