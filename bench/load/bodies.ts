/** The requests the bench sends: device events for bench sensors, incoming calls to bench numbers. */

export const pad7 = (n: number) => String(n).padStart(7, '0');

/** The bench's registered sensors are smoke-0000000 .. smoke-<N-1>, bound to +7900<7 digits>. */
export const sensorId = (index: number) => `smoke-${pad7(index)}`;
export const sensorMsisdn = (index: number) => `+7900${pad7(index)}`;
/** Every sensor's rule calls +7901<7 digits> (an ordinary number: answered by the mock too). */
export const alarmNumber = (index: number) => `+7901${pad7(index)}`;
/** Subscriber numbers with speakers: +7902<7 digits>, speakers spk-<n>-<k>. */
export const subscriberNumber = (index: number) => `+7902${pad7(index)}`;
export const speakerId = (index: number, k: number) => `spk-${pad7(index)}-${k}`;

export function webhookBody(eventId: string, deviceIndex: number): string {
  return JSON.stringify({
    event_id: eventId,
    device_id: sensorId(deviceIndex),
    event_type: 'smoke',
    occurred_at: new Date().toISOString(),
    data: { smoke_level: 3, battery: 87 },
  });
}

export function incomingCallBody(callId: string, numberIndex: number): string {
  return JSON.stringify({ call_id: callId, caller: '+74951234567', callee: subscriberNumber(numberIndex), caller_name: 'Bench' });
}

export interface LoadTarget {
  kind: 'webhook' | 'incoming-call';
  /** Base URL of the server under load. */
  url: string;
  /** API key sent as X-API-Key (the baseline ignores it). */
  key: string;
  /** Ids are `<prefix>-<n>`. */
  idPrefix: string;
  /** Devices (webhook) or numbers (incoming call) to spread the load over. */
  population: number;
  /** Index of the first device or number used; then one after the other, wrapping around. */
  offset: number;
}

export function requestFor(target: LoadTarget, n: number): { path: string; id: string; body: string } {
  const id = `${target.idPrefix}-${n}`;
  const index = (target.offset + n) % target.population;
  return target.kind === 'webhook'
    ? { path: '/api/v1/webhooks/events', id, body: webhookBody(id, index) }
    : { path: '/api/v1/incoming-calls', id, body: incomingCallBody(id, index) };
}
