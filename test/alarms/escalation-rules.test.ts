import { describe, expect, it } from 'vitest';
import { finalStatusOf, nextStep, type EscalationPlan } from '../../src/alarms/escalation.js';

const plan: EscalationPlan = { to: ['+79161111111', '+79162222222'], attempts: 2, retry_delay_s: 60, require_ack: true };

describe('how a call ended', () => {
  it.each([
    [{ cause: 'NORMAL_CLEARING', answered: true }, 'completed'],
    [{ cause: 'USER_BUSY', answered: false }, 'busy'],
    [{ cause: 'NO_ANSWER', answered: false }, 'no_answer'],
    [{ cause: 'NO_USER_RESPONSE', answered: false }, 'no_answer'],
    [{ cause: 'CALL_REJECTED', answered: false }, 'rejected'],
    [{ cause: 'NORMAL_CLEARING', sipCode: 603, answered: false }, 'rejected'],
    [{ cause: 'ORIGINATOR_CANCEL', answered: false }, 'canceled'],
    [{ cause: 'NORMAL_TEMPORARY_FAILURE', sipCode: 503, answered: false }, 'failed'],
    [{ cause: 'NO_ROUTE_DESTINATION', answered: false }, 'failed'],
  ] as const)('%j -> %s', (end, status) => {
    expect(finalStatusOf(end)).toBe(status);
  });
});

describe('what the alarm does next', () => {
  const ended = (status: 'completed' | 'busy' | 'no_answer' | 'rejected' | 'failed' | 'canceled', extra: Partial<{ position: number; attempt: number; acknowledged: boolean; outcomeUnknown: boolean }> = {}) => ({
    position: 0,
    attempt: 1,
    acknowledged: false,
    status,
    ...extra,
  });

  it('stops at a confirmation', () => {
    expect(nextStep(plan, ended('completed', { acknowledged: true }))).toEqual({ kind: 'resolved' });
  });

  it('treats an answer without the digit as unconfirmed when an acknowledgement is required, as confirmed otherwise', () => {
    expect(nextStep(plan, ended('completed'))).toMatchObject({ kind: 'call', position: 0, attempt: 2, delayS: 60 });
    expect(nextStep({ ...plan, require_ack: false }, ended('completed'))).toEqual({ kind: 'resolved' });
  });

  it('retries busy, no answer and failures on the same number, then moves on at once, then gives up', () => {
    for (const status of ['busy', 'no_answer', 'failed'] as const) {
      expect(nextStep(plan, ended(status))).toEqual({ kind: 'call', position: 0, attempt: 2, delayS: 60, redial: false });
      expect(nextStep(plan, ended(status, { attempt: 2 }))).toEqual({ kind: 'call', position: 1, attempt: 1, delayS: 0, redial: false });
      expect(nextStep(plan, ended(status, { position: 1, attempt: 2 }))).toEqual({ kind: 'exhausted' });
    }
  });

  it('does not retry a deliberate decline but moves on', () => {
    expect(nextStep(plan, ended('rejected'))).toEqual({ kind: 'call', position: 1, attempt: 1, delayS: 0, redial: false });
    expect(nextStep(plan, ended('rejected', { position: 1 }))).toEqual({ kind: 'exhausted' });
  });

  it('makes an attempt whose outcome was lost again, at once, without counting it', () => {
    expect(nextStep(plan, ended('failed', { attempt: 2, outcomeUnknown: true }))).toEqual({ kind: 'call', position: 0, attempt: 2, delayS: 0, redial: true });
  });

  it('does nothing after a canceled call (the alarm ended)', () => {
    expect(nextStep(plan, ended('canceled'))).toEqual({ kind: 'none' });
  });
});
