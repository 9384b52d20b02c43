/**
 * Inbound calls heard on the switch (FreeSWITCH's Event Socket), fed into the same intake as the
 * REST reports. Events of one call are applied one after another, in arrival order, so an answer
 * that follows the ringing within milliseconds is never recorded before it.
 */
import type { InboundCallReport } from '../telephony/telephony.js';
import type { IncomingCallsService } from './incoming-calls-service.js';

export interface FeedLogger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export class SwitchCallFeed {
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly incomingCalls: IncomingCallsService,
    private readonly logger: FeedLogger,
  ) {}

  accept(report: InboundCallReport): void {
    const previous = this.#chains.get(report.callId) ?? Promise.resolve();
    const next = previous
      .then(() => this.apply(report))
      .finally(() => {
        if (this.#chains.get(report.callId) === next) this.#chains.delete(report.callId);
      });
    this.#chains.set(report.callId, next);
  }

  /** Resolves when every event received so far is applied (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.#chains.size > 0) await Promise.allSettled([...this.#chains.values()]);
  }

  private async apply(report: InboundCallReport): Promise<void> {
    try {
      await this.incomingCalls.report(
        { call_id: report.callId, caller: report.caller, callee: report.callee, state: report.state, caller_name: report.callerName },
        { correlationId: `freeswitch-${report.callId}`, actor: 'FreeSWITCH event socket' },
        'freeswitch',
      );
    } catch (error) {
      // An extension or service number is not a subscriber's MSISDN: nothing to announce.
      const code = (error as { code?: string }).code;
      if (code === 'validation_failed') this.logger.debug({ call_id: report.callId }, 'inbound call to a number that is not an MSISDN; not announced');
      else this.logger.warn({ err: error, call_id: report.callId, state: report.state }, 'could not record an inbound call from the switch');
    }
  }
}
