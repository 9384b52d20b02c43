/**
 * The work loop both dispatchers (alarm calls, speaker notifications) share: one round at a time,
 * and a request that arrives during a round runs exactly one more round after it, so no request
 * is lost and none piles up. It also keeps the background promises it started, so `settle()` can
 * wait for all of them (tests, shutdown).
 */
export class SingleFlight {
  #active = false;
  #again = false;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(
    private readonly round: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Whether another round was requested while this one runs (it may skip work that round redoes). */
  get requestedAgain(): boolean {
    return this.#again;
  }

  request(): void {
    if (this.#active) {
      this.#again = true;
      return;
    }
    this.#active = true;
    this.track(
      (async () => {
        try {
          do {
            this.#again = false;
            await this.round();
          } while (this.#again);
        } catch (error) {
          this.onError(error);
        } finally {
          this.#active = false;
        }
      })(),
    );
  }

  /** Keeps a background promise so settle() waits for it. */
  track<T>(promise: Promise<T>): void {
    this.#pending.add(promise);
    void promise.finally(() => this.#pending.delete(promise));
  }

  /** Resolves when every round and tracked promise has finished, including those they started. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }
}
