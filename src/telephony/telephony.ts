/**
 * The telephony port: what the alarm escalation needs from a phone switch. Two adapters implement
 * it: FreeSWITCH over the Event Socket (./freeswitch) and a mock that behaves like it in time
 * (./mock). The domain never imports either.
 */

/** What to dial. Every field has been validated: numbers are strict E.164, the message safe text. */
export interface CallRequest {
  /** Our call id (a uuid); on FreeSWITCH it is also the channel uuid (origination_uuid). */
  callId: string;
  /** Strict E.164, e.g. +79161234567. */
  to: string;
  /** Strict E.164, or undefined for the switch's default. */
  callerId?: string | undefined;
  ringTimeoutS: number;
  /** Spoken (or played) once the call is answered. */
  message: string;
  /** Ask "press 1 to confirm" after the message. */
  requireAck: boolean;
  correlationId: string;
}

/**
 * What the switch says about a call, in order. `ended` is always the last word about a call and
 * carries everything needed to judge it, even if earlier progress was missed.
 */
export type CallProgress =
  | { callId: string; kind: 'ringing'; at: Date }
  | { callId: string; kind: 'answered'; at: Date }
  /** The callee pressed 1 after the message. */
  | { callId: string; kind: 'acknowledged'; at: Date }
  | {
      callId: string;
      kind: 'ended';
      at: Date;
      /** FreeSWITCH hangup cause (NORMAL_CLEARING, USER_BUSY, NO_ANSWER, CALL_REJECTED...). */
      cause: string;
      sipCode?: number | undefined;
      answered: boolean;
      acknowledged: boolean;
    };

export type ProgressListener = (progress: CallProgress) => void;

/** The switch refused the call before dialing anyone (bad gateway, not connected): safe to retry. */
export class CallNotPlacedError extends Error {
  override name = 'CallNotPlacedError';
}

/** The command may or may not have reached the switch: reconcile before dialing again. */
export class CallOutcomeUnknownError extends Error {
  override name = 'CallOutcomeUnknownError';
}

export interface TelephonyStatus {
  ok: boolean;
  detail: string;
}

export interface Telephony {
  readonly name: 'freeswitch' | 'mock';
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Starts dialing. Resolves once the switch has taken the call; everything after arrives as
   * progress. Rejects with CallNotPlacedError when nobody was dialed, CallOutcomeUnknownError when
   * that cannot be known.
   */
  placeCall(request: CallRequest): Promise<void>;
  /**
   * Takes charge of a call still live on the switch that this process did not place (a restart,
   * or an instance that died): it is driven (message, confirmation) like one placed here,
   * at once if it was answered meanwhile.
   */
  adoptCall(request: CallRequest): Promise<void>;
  /** Whether the call's channel still exists on the switch. Throws when the switch cannot be asked. */
  callExists(callId: string): Promise<boolean>;
  /** Hangs a call up (cancel). Resolves whether or not the call still existed. */
  hangup(callId: string): Promise<void>;
  onProgress(listener: ProgressListener): void;
  /** Called after the connection to the switch comes back, to reconcile calls in flight. */
  onReconnect(listener: () => void): void;
  status(): TelephonyStatus;
}

/** A call to a subscriber heard on the switch itself (not one the gateway placed). */
export interface InboundCallReport {
  callId: string;
  caller: string;
  callerName?: string | undefined;
  callee: string;
  state: 'ringing' | 'answered' | 'ended';
}

/** A switch that can also tell about inbound calls (FreeSWITCH's Event Socket can). */
export interface InboundCallSource {
  onInboundCall(listener: (report: InboundCallReport) => void): void;
}

export function isInboundCallSource(telephony: Telephony): telephony is Telephony & InboundCallSource {
  return typeof (telephony as Partial<InboundCallSource>).onInboundCall === 'function';
}
