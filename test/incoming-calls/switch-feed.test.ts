import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FreeSwitchTelephony } from '../../src/telephony/freeswitch/freeswitch-telephony.js';
import { createKey, createTestApp, type TestApp } from '../support/app.js';
import { startEslPeer, type EslPeer } from '../support/esl-peer.js';
import { SpeakerReceivers } from '../support/speaker-receivers.js';

const SUBSCRIBER = '+79167771122';
const quiet = () => {};
let peer: EslPeer;
let t: TestApp;
let receivers: SpeakerReceivers;

beforeAll(async () => {
  peer = await startEslPeer({ onOriginate: () => ({ outcome: 'answer', dtmf: '1', answerAfterMs: 50, hangupAfterMs: 100 }) });
  const telephony = new FreeSwitchTelephony({
    host: '127.0.0.1',
    port: peer.port,
    password: 'ClueCon',
    dialStringTemplate: 'sofia/gateway/tas/{number}',
    ttsEngine: 'flite',
    ttsVoice: 'kal',
    logger: { debug: quiet, info: quiet, warn: quiet, error: quiet },
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
  });
  t = await createTestApp({}, { telephony });
  receivers = await SpeakerReceivers.start();
  const created = await t.request({
    method: 'POST',
    url: '/api/v1/devices',
    payload: { device_id: 'kitchen-speaker', type: 'speaker', msisdn: SUBSCRIBER, endpoint: `${receivers.baseUrl}/speakers/kitchen` },
  });
  receivers.add('kitchen', created.json().signing_secret);
});
afterAll(async () => {
  await t.close();
  await receivers.close();
  await peer.close();
});

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The headers FreeSWITCH puts on the events of an inbound leg (loopback.jsonl's `-b` leg has this shape). */
function inboundLeg(uuid: string, extra: Record<string, string> = {}) {
  return {
    'Unique-ID': uuid,
    'Call-Direction': 'inbound',
    'Caller-Caller-ID-Number': '+74951234567',
    'Caller-Caller-ID-Name': 'Front door',
    'Caller-Destination-Number': SUBSCRIBER,
    'Channel-Name': `sofia/external/${SUBSCRIBER}@10.0.0.1`,
    ...extra,
  };
}

describe('inbound calls heard on the FreeSWITCH Event Socket', () => {
  it('announces ringing, answered and ended to the speakers of the called number', async () => {
    await until(() => t.app.services.telephony.status().ok, 'the Event Socket connection');
    const speaker = receivers.get('kitchen');
    const uuid = randomUUID();
    peer.emitEvent('CHANNEL_CREATE', inboundLeg(uuid, { 'Channel-State': 'CS_INIT' }));
    peer.emitEvent('CHANNEL_PARK', inboundLeg(uuid));
    await until(() => speaker.delivered.length === 1, 'the ringing notification');
    peer.emitEvent('CHANNEL_ANSWER', inboundLeg(uuid, { 'Answer-State': 'answered' }));
    peer.emitEvent('CHANNEL_HANGUP_COMPLETE', inboundLeg(uuid, { 'Hangup-Cause': 'NORMAL_CLEARING' }));
    await until(() => speaker.delivered.length === 3, 'answered and ended');
    expect(speaker.delivered.map((request) => request.body.type)).toEqual(['incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended']);
    expect(speaker.delivered[0]!.body).toMatchObject({ call_id: uuid, msisdn: SUBSCRIBER, caller: '+74951234567', caller_name: 'Front door' });
    const call = (await t.request({ method: 'GET', url: `/api/v1/incoming-calls/${uuid}` })).json();
    expect(call).toMatchObject({ source: 'freeswitch', state: 'ended', correlation_id: `freeswitch-${uuid}` });
  });

  it('does not announce calls to numbers that are not subscribers, nor outbound legs', async () => {
    peer.emitEvent('CHANNEL_CREATE', inboundLeg(randomUUID(), { 'Caller-Destination-Number': '1000' }));
    peer.emitEvent('CHANNEL_CREATE', inboundLeg(randomUUID(), { 'Call-Direction': 'outbound' }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await t.app.services.switchFeed!.settle();
    const calls = (await t.request({ method: 'GET', url: '/api/v1/incoming-calls' })).json();
    expect(calls.items).toHaveLength(1);
  });

  it('never announces the alarm calls the gateway places itself', async () => {
    const before = receivers.get('kitchen').requests.length;
    await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'hall-smoke', type: 'sensor_smoke', msisdn: SUBSCRIBER } });
    await t.request({
      method: 'POST',
      url: '/api/v1/rules',
      payload: { name: 'smoke', event_type: 'smoke', device_id: 'hall-smoke', action: { type: 'call', to: [SUBSCRIBER], message: 'Smoke at home' } },
    });
    const webhookKey = await createKey(t, 'webhook');
    const accepted = await t.request({ method: 'POST', url: '/api/v1/webhooks/events', key: webhookKey, payload: { event_id: 'feed-smoke-1', device_id: 'hall-smoke', event_type: 'smoke' } });
    const alarmId = accepted.json().alarm_ids[0] as string;
    // The peer echoes our call as a channel; a FreeSWITCH loopback would add an inbound B leg carrying tig_call_id.
    await until(async () => (await t.request({ method: 'GET', url: `/api/v1/alarms/${alarmId}` })).json().status === 'resolved', 'the alarm to resolve');
    const callId = peer.originates[0]!.variables.origination_uuid!;
    peer.emitEvent('CHANNEL_CREATE', inboundLeg(randomUUID(), { variable_tig_call_id: callId, 'Caller-Destination-Number': SUBSCRIBER }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await t.app.services.switchFeed!.settle();
    expect(receivers.get('kitchen').requests.length).toBe(before);
    expect((await t.request({ method: 'GET', url: '/api/v1/incoming-calls' })).json().items).toHaveLength(1);
  });
});
