/**
 * The built-in mock telephony: what the gateway dials through when no FreeSWITCH is configured.
 * It behaves like FreeSWITCH in time (the call rings, is answered, the message plays, the callee
 * is asked to press 1, the call hangs up) and, through magic numbers, lets every branch of the
 * alarm escalation be reached from the API: busy, no answer, rejected, failure, answered but not
 * confirmed, ringing until cancelled.
 *
 * The outcome is chosen by the LAST 7 DIGITS of the dialled E.164 number (see `mockMagicNumbers`),
 * so any country's number can be used, e.g. +1 202 555-0101 (a fictional US number) is busy.
 *
 * Rules shared with FreeSWITCH (so the engine cannot tell the two apart):
 * - `placeCall` resolves as soon as the call is accepted; everything else arrives as progress,
 *   in order `ringing`, `answered`, `acknowledged`, `ended`, with exactly one `ended` per call.
 * - The ring timeout (`ringTimeoutS`, FreeSWITCH's originate_timeout) counts from the dial: a call
 *   not answered by then ends NO_ANSWER, whatever its number. A step due exactly at the ring
 *   timeout loses to it.
 * - Placing a call id that is already live dials again (a second, independent call): nothing
 *   hides a duplicate. `placed` records the calls dialled (the latest `historyLimit`) so tests can
 *   assert exactly-once; a gateway that runs on the mock for days does not keep them all.
 * - Calls live only in memory: after a restart (or `stop()`) no call exists any more.
 *
 * All timing goes through the injected Clock, so tests drive it with a ManualClock.
 */
import { systemClock, type Clock } from '../../clock/clock.js';
import { isE164 } from '../../phone-numbers/msisdn.js';
import {
  CallNotPlacedError,
  type CallOutcomeUnknownError,
  type CallProgress,
  type CallRequest,
  type ProgressListener,
  type Telephony,
  type TelephonyStatus,
} from '../telephony.js';

/** How long each step of a mock call takes, in milliseconds. */
export interface MockTimings {
  /** Dial → ringing. */
  setupMs: number;
  /** Ringing → answered (also how long a person takes to decline a call: 5550103). */
  answerAfterMs: number;
  /** How long the message plays once answered. */
  messageMs: number;
  /** After the message, until the callee presses 1 (when the request asks for a confirmation). */
  ackAfterMs: number;
  /** After the last step (message or digit), until the hangup. */
  hangupAfterMs: number;
  /** Failures that need no person: busy after ringing, temporary failure after the dial. */
  failAfterMs: number;
}

export const DEFAULT_MOCK_TIMINGS: Readonly<MockTimings> = Object.freeze({
  setupMs: 300,
  answerAfterMs: 2000,
  messageMs: 3000,
  ackAfterMs: 1500,
  hangupAfterMs: 500,
  failAfterMs: 200,
});

export type MockOutcome =
  | 'busy'
  | 'no-answer'
  | 'rejected'
  | 'failure'
  | 'answered-not-confirmed'
  | 'ring-forever'
  | 'answered';

export interface MockMagicNumber {
  /** The last 7 digits of the dialled E.164 number. */
  suffix: string;
  outcome: MockOutcome;
  /** An example that passes the gateway's phone number validation. */
  example: string;
  /** FreeSWITCH hangup cause carried by `ended`. */
  cause: string;
  /** SIP status carried by `ended`, when the switch would report one. */
  sipCode?: number | undefined;
  /** What happens, in time (with the default timings). */
  description: string;
}

/**
 * The magic numbers, in suffix order. Any number whose last 7 digits are not listed here is
 * answered: the message plays, the callee presses 1 when asked to, and hangs up (NORMAL_CLEARING).
 */
export const mockMagicNumbers: readonly MockMagicNumber[] = Object.freeze([
  {
    suffix: '5550101',
    outcome: 'busy',
    example: '+12025550101',
    cause: 'USER_BUSY',
    sipCode: 486,
    description: 'Rings briefly (setupMs, then failAfterMs), then busy.',
  },
  {
    suffix: '5550102',
    outcome: 'no-answer',
    example: '+12025550102',
    cause: 'NO_ANSWER',
    description: 'Rings until the ring timeout (ringTimeoutS from the dial), then no answer.',
  },
  {
    suffix: '5550103',
    outcome: 'rejected',
    example: '+12025550103',
    cause: 'CALL_REJECTED',
    sipCode: 603,
    description: 'Rings, then the callee declines the call (after answerAfterMs of ringing).',
  },
  {
    suffix: '5550104',
    outcome: 'failure',
    example: '+12025550104',
    cause: 'NORMAL_TEMPORARY_FAILURE',
    sipCode: 503,
    description: 'Fails without ringing (failAfterMs after the dial).',
  },
  {
    suffix: '5550105',
    outcome: 'answered-not-confirmed',
    example: '+12025550105',
    cause: 'NORMAL_CLEARING',
    description:
      'Answered, the message plays, no digit is ever pressed; hangs up when the confirmed call would have ' +
      '(answered=true, acknowledged=false).',
  },
  {
    suffix: '5550106',
    outcome: 'ring-forever',
    example: '+12025550106',
    cause: 'NO_ANSWER',
    description:
      'Rings with no early end, for cancel tests: ends ORIGINATOR_CANCEL on hangup(), otherwise NO_ANSWER at ' +
      'the ring timeout, like 5550102 (FreeSWITCH always applies originate_timeout).',
  },
] satisfies MockMagicNumber[]);

/** The outcome the mock plays for a number (by its last 7 digits). */
export function mockOutcomeFor(to: string): MockOutcome {
  const suffix = to.replace(/\D/g, '').slice(-7);
  return mockMagicNumbers.find((entry) => entry.suffix === suffix)?.outcome ?? 'answered';
}

export interface MockTelephonyLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface MockTelephonyOptions {
  clock?: Clock | undefined;
  timings?: Partial<MockTimings> | undefined;
  logger?: MockTelephonyLogger | undefined;
  /** How many of the latest calls `placed` and `attempts` keep (default 1,000). */
  historyLimit?: number | undefined;
}

const DEFAULT_HISTORY_LIMIT = 1_000;

/** The error a placeCall should reject with (see `failNextPlace`). */
export type MockPlaceFailure = CallNotPlacedError | CallOutcomeUnknownError;

interface LiveCall {
  /** Sequence number, to tell two calls with the same id apart in logs. */
  seq: number;
  request: CallRequest;
  outcome: MockOutcome;
  answered: boolean;
  acknowledged: boolean;
  timers: Set<() => void>;
  cancelRingTimeout?: (() => void) | undefined;
}

const noopLogger: MockTelephonyLogger = { debug: () => {}, info: () => {}, warn: () => {} };

export class MockTelephony implements Telephony {
  readonly name = 'mock' as const;
  /** The calls dialled, in order (duplicates included; calls refused by failNextPlace excluded): the latest `historyLimit`. */
  readonly placed: CallRequest[] = [];
  /** The placeCall invocations, in order, including the ones that rejected: the latest `historyLimit`. */
  readonly attempts: CallRequest[] = [];
  readonly #historyLimit: number;
  readonly timings: Readonly<MockTimings>;

  readonly #clock: Clock;
  readonly #logger: MockTelephonyLogger;
  readonly #progressListeners: ProgressListener[] = [];
  readonly #reconnectListeners: (() => void)[] = [];
  readonly #failures: MockPlaceFailure[] = [];
  /** Live calls in the order they were placed (an id may appear twice: a duplicate dial). */
  #live: LiveCall[] = [];
  #seq = 0;
  #stopped = false;

  constructor(options: MockTelephonyOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? noopLogger;
    this.#historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    const timings = { ...DEFAULT_MOCK_TIMINGS };
    for (const [key, value] of Object.entries(options.timings ?? {})) {
      if (value === undefined) continue;
      if (!(key in DEFAULT_MOCK_TIMINGS)) throw new RangeError(`Unknown mock timing ${key}`);
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw new RangeError(`Mock timing ${key} must be a non-negative number of milliseconds`);
      }
      timings[key as keyof MockTimings] = value;
    }
    this.timings = Object.freeze(timings);
  }

  async start(): Promise<void> {
    this.#stopped = false;
  }

  /** Cancels every timer and forgets the live calls (as a restart would); no `ended` is emitted. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const call of this.#live) this.#cancelTimers(call);
    this.#live = [];
  }

  async placeCall(request: CallRequest): Promise<void> {
    remember(this.attempts, request, this.#historyLimit);
    if (this.#stopped) throw new CallNotPlacedError('mock telephony is stopped');
    if (!isE164(request.to)) throw new CallNotPlacedError(`not an E.164 number: ${request.to}`);
    if (request.callerId !== undefined && !isE164(request.callerId)) {
      throw new CallNotPlacedError(`caller id is not an E.164 number: ${request.callerId}`);
    }
    const failure = this.#failures.shift();
    if (failure instanceof CallNotPlacedError) throw failure;
    this.#dial(request);
    // Unknown outcome: the command reached the switch (the call above is real) but the answer was lost.
    if (failure) throw failure;
  }

  /** The mock's calls live in this process only, so a live one is already driven here. */
  async adoptCall(_request: CallRequest): Promise<void> {}

  async callExists(callId: string): Promise<boolean> {
    return this.#live.some((call) => call.request.callId === callId);
  }

  /** Ends every live call with this id now (ORIGINATOR_CANCEL); an unknown id is fine. */
  async hangup(callId: string): Promise<void> {
    for (const call of this.#live.filter((live) => live.request.callId === callId)) {
      this.#end(call, 'ORIGINATOR_CANCEL', call.answered ? undefined : 487);
    }
  }

  onProgress(listener: ProgressListener): void {
    this.#progressListeners.push(listener);
  }

  /** Stored only: the mock never disconnects. See `simulateReconnect` for tests. */
  onReconnect(listener: () => void): void {
    this.#reconnectListeners.push(listener);
  }

  status(): TelephonyStatus {
    return { ok: true, detail: 'mock telephony (no FreeSWITCH configured)' };
  }

  // ---- test hooks ----

  /** Ids of the live calls, in the order they were placed (a duplicate dial appears twice). */
  liveCalls(): string[] {
    return this.#live.map((call) => call.request.callId);
  }

  /**
   * Makes the next placeCall reject with `error` (queued: call it twice to fail the next two).
   * CallNotPlacedError: nobody is dialled. CallOutcomeUnknownError: the call IS dialled (and
   * recorded in `placed`) but the caller is told the outcome is unknown, so reconciliation
   * (`callExists`) has something to find.
   */
  failNextPlace(error: MockPlaceFailure): void {
    this.#failures.push(error);
  }

  /** Calls the onReconnect listeners, as the FreeSWITCH adapter does after a reconnection. */
  simulateReconnect(): void {
    for (const listener of [...this.#reconnectListeners]) listener();
  }

  // ---- the call's life ----

  #dial(request: CallRequest): void {
    const call: LiveCall = {
      seq: ++this.#seq,
      request: { ...request },
      outcome: mockOutcomeFor(request.to),
      answered: false,
      acknowledged: false,
      timers: new Set(),
    };
    remember(this.placed, call.request, this.#historyLimit);
    this.#live.push(call);
    this.#logger.info(
      { callId: request.callId, seq: call.seq, to: request.to, outcome: call.outcome, correlationId: request.correlationId },
      'Mock call placed',
    );

    // FreeSWITCH's originate_timeout: counted from the dial, scheduled first so it wins a tie.
    call.cancelRingTimeout = this.#schedule(call, request.ringTimeoutS * 1000, () => {
      this.#end(call, 'NO_ANSWER', undefined);
    });

    const t = this.timings;
    switch (call.outcome) {
      case 'failure':
        this.#schedule(call, t.failAfterMs, () => this.#end(call, 'NORMAL_TEMPORARY_FAILURE', 503));
        return;
      case 'busy':
        this.#ring(call, () => {
          this.#schedule(call, t.failAfterMs, () => this.#end(call, 'USER_BUSY', 486));
        });
        return;
      case 'rejected':
        this.#ring(call, () => {
          this.#schedule(call, t.answerAfterMs, () => this.#end(call, 'CALL_REJECTED', 603));
        });
        return;
      case 'no-answer':
      case 'ring-forever':
        this.#ring(call, () => {});
        return;
      case 'answered':
      case 'answered-not-confirmed':
        this.#ring(call, () => {
          this.#schedule(call, t.answerAfterMs, () => this.#answer(call));
        });
        return;
    }
  }

  #ring(call: LiveCall, then: () => void): void {
    this.#schedule(call, this.timings.setupMs, () => {
      this.#emit({ callId: call.request.callId, kind: 'ringing', at: this.#clock.now() });
      then();
    });
  }

  #answer(call: LiveCall): void {
    const t = this.timings;
    call.answered = true;
    call.cancelRingTimeout?.();
    this.#emit({ callId: call.request.callId, kind: 'answered', at: this.#clock.now() });
    // The message plays.
    this.#schedule(call, t.messageMs, () => {
      if (!call.request.requireAck) {
        this.#schedule(call, t.hangupAfterMs, () => this.#end(call, 'NORMAL_CLEARING', undefined));
        return;
      }
      this.#schedule(call, t.ackAfterMs, () => {
        if (call.outcome === 'answered') {
          call.acknowledged = true;
          this.#emit({ callId: call.request.callId, kind: 'acknowledged', at: this.#clock.now() });
        }
        this.#schedule(call, t.hangupAfterMs, () => this.#end(call, 'NORMAL_CLEARING', undefined));
      });
    });
  }

  /** Runs `step` after `ms` unless the call has ended by then; returns the timer's cancel. */
  #schedule(call: LiveCall, ms: number, step: () => void): () => void {
    const timer = this.#clock.setTimer(() => {
      call.timers.delete(cancel);
      if (this.#live.includes(call)) step();
    }, ms);
    const cancel = (): void => {
      call.timers.delete(cancel);
      timer();
    };
    call.timers.add(cancel);
    return cancel;
  }

  #end(call: LiveCall, cause: string, sipCode: number | undefined): void {
    const index = this.#live.indexOf(call);
    if (index === -1) return; // already ended: exactly one `ended` per call
    this.#live.splice(index, 1);
    this.#cancelTimers(call);
    this.#logger.info(
      { callId: call.request.callId, seq: call.seq, cause, sipCode, answered: call.answered, acknowledged: call.acknowledged },
      'Mock call ended',
    );
    this.#emit({
      callId: call.request.callId,
      kind: 'ended',
      at: this.#clock.now(),
      cause,
      sipCode,
      answered: call.answered,
      acknowledged: call.acknowledged,
    });
  }

  #cancelTimers(call: LiveCall): void {
    for (const cancel of [...call.timers]) cancel();
    call.timers.clear();
  }

  #emit(progress: CallProgress): void {
    if (progress.kind !== 'ended') this.#logger.debug({ callId: progress.callId, kind: progress.kind }, 'Mock call progress');
    for (const listener of [...this.#progressListeners]) {
      try {
        listener(progress);
      } catch (error) {
        // A failing listener must not stop the call's timeline nor the other listeners.
        this.#logger.warn({ err: { message: (error as Error).message }, callId: progress.callId }, 'Progress listener threw');
      }
    }
  }
}

/** Appends to a history that keeps only its latest `limit` entries. */
function remember<T>(history: T[], entry: T, limit: number): void {
  history.push(entry);
  if (history.length > limit) history.splice(0, history.length - limit);
}
