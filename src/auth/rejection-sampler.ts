/**
 * Refusals (a missing or wrong key, a key of the wrong role) go to the event log, but a flood of
 * them must not write one row per request. Per client and kind of refusal, the first refusal of
 * each window writes a row; the next ones in the window are only counted, and the next row that is
 * written says how many were left out since the previous one (`unlogged_before`). Memory is
 * bounded: at most `maxTracked` clients are followed; when more are seen at once, the others share
 * one window, so a flood writes at most `maxTracked + 1` rows per window, whatever its size.
 */
export interface SamplerOptions {
  windowMs: number;
  maxTracked: number;
  now: () => number;
}

export type Admission = { write: true; unloggedBefore: number } | { write: false };

const OVERFLOW = '\u0000overflow';

export class RejectionSampler {
  readonly #options: SamplerOptions;
  /** Insertion order is the order windows started in, so expired ones are at the front. */
  readonly #windows = new Map<string, { startedAt: number; unlogged: number }>();

  constructor(options: Partial<SamplerOptions> = {}) {
    this.#options = { windowMs: 60_000, maxTracked: 10_000, now: () => Date.now(), ...options };
  }

  /** Whether this refusal gets an event-log row, and how many of the same were left out before it. */
  admit(client: string): Admission {
    const now = this.#options.now();
    let key = client;
    if (!this.#windows.has(key) && this.#windows.size >= this.#options.maxTracked) {
      this.#dropExpired(now);
      if (this.#windows.size >= this.#options.maxTracked) key = OVERFLOW;
    }
    const window = this.#windows.get(key);
    if (window && now - window.startedAt < this.#options.windowMs) {
      window.unlogged++;
      return { write: false };
    }
    this.#windows.delete(key);
    this.#windows.set(key, { startedAt: now, unlogged: 0 });
    return { write: true, unloggedBefore: window?.unlogged ?? 0 };
  }

  #dropExpired(now: number): void {
    for (const [key, window] of this.#windows) {
      if (now - window.startedAt < this.#options.windowMs) break;
      this.#windows.delete(key);
    }
  }
}
