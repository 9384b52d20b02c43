/**
 * The escalation rules, as pure functions: what a call's end means, and what the alarm does next.
 * Call the first number; on busy, no answer, failure or (with require_ack) no confirmation, retry
 * it up to `attempts` times `retry_delay_s` apart, then go on to the next number; stop at the first
 * confirmed call. A deliberate decline is not retried on the same number but does move on.
 */

export type CallStatus = 'queued' | 'dialing' | 'ringing' | 'answered' | 'completed' | 'busy' | 'no_answer' | 'rejected' | 'failed' | 'canceled';

export const callStatuses: readonly CallStatus[] = ['queued', 'dialing', 'ringing', 'answered', 'completed', 'busy', 'no_answer', 'rejected', 'failed', 'canceled'];
export const inFlightStatuses = ['dialing', 'ringing', 'answered'] as const satisfies readonly CallStatus[];
export const finalStatuses = ['completed', 'busy', 'no_answer', 'rejected', 'failed', 'canceled'] as const satisfies readonly CallStatus[];
export type FinalCallStatus = (typeof finalStatuses)[number];

/** Hangup causes FreeSWITCH reports, grouped by what they mean for the escalation. */
const noAnswerCauses = new Set(['NO_ANSWER', 'NO_USER_RESPONSE', 'ALLOTTED_TIMEOUT', 'RECOVERY_ON_TIMER_EXPIRE', 'PROGRESS_TIMEOUT']);
const busyCauses = new Set(['USER_BUSY', 'NORMAL_CIRCUIT_CONGESTION']);
const declineCauses = new Set(['CALL_REJECTED']);
const cancelCauses = new Set(['ORIGINATOR_CANCEL']);

/** The status a call ends in, from how it ended. */
export function finalStatusOf(end: { cause: string; sipCode?: number | null | undefined; answered: boolean }): FinalCallStatus {
  if (end.answered) return 'completed';
  if (cancelCauses.has(end.cause)) return 'canceled';
  if (busyCauses.has(end.cause) || end.sipCode === 486) return 'busy';
  if (declineCauses.has(end.cause) || end.sipCode === 603) return 'rejected';
  if (noAnswerCauses.has(end.cause) || end.sipCode === 408 || end.sipCode === 480) return 'no_answer';
  return 'failed';
}

/** The parts of a `call` action the escalation reads. */
export interface EscalationPlan {
  to: string[];
  attempts: number;
  retry_delay_s: number;
  require_ack: boolean;
}

export interface EndedCall {
  position: number;
  attempt: number;
  status: FinalCallStatus;
  acknowledged: boolean;
  /** The outcome was lost (crash or dropped connection) and the switch no longer had the call. */
  outcomeUnknown?: boolean;
}

export type NextStep =
  | { kind: 'resolved' }
  | { kind: 'call'; position: number; attempt: number; delayS: number; redial: boolean }
  | { kind: 'exhausted' }
  | { kind: 'none' };

/** Whether a call confirmed the alarm: acknowledged, or answered when no acknowledgement is asked. */
export function isConfirmed(plan: EscalationPlan, call: Pick<EndedCall, 'status' | 'acknowledged'>): boolean {
  return call.acknowledged || (!plan.require_ack && call.status === 'completed');
}

export function nextStep(plan: EscalationPlan, call: EndedCall): NextStep {
  if (isConfirmed(plan, call)) return { kind: 'resolved' };
  if (call.status === 'canceled') return { kind: 'none' };
  // Nobody can tell whether this attempt rang: make it again, at once, rather than lose it.
  if (call.outcomeUnknown) return { kind: 'call', position: call.position, attempt: call.attempt, delayS: 0, redial: true };
  if (call.status !== 'rejected' && call.attempt < plan.attempts) {
    return { kind: 'call', position: call.position, attempt: call.attempt + 1, delayS: plan.retry_delay_s, redial: false };
  }
  if (call.position + 1 < plan.to.length) return { kind: 'call', position: call.position + 1, attempt: 1, delayS: 0, redial: false };
  return { kind: 'exhausted' };
}
