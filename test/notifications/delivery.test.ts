import { randomUUID } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningSecret } from '../../src/devices/devices-service.js';
import { closeHttpAgent, deliverHttp } from '../../src/notifications/http-delivery.js';
import { MqttPublisher } from '../../src/notifications/mqtt-delivery.js';
import { OutboundPolicy } from '../../src/notifications/outbound-policy.js';
import { closedPort, startTestBroker, type TestBroker } from '../support/mqtt-broker.js';
import { SpeakerReceivers, type ReceiverMode } from '../support/speaker-receivers.js';

const policy = new OutboundPolicy('127.0.0.1');
const payload = { type: 'incoming_call.ringing', call_id: 'call-1', caller: '+79165550101', callee: '+79161234567', caller_name: 'Анна' };

describe('deliverHttp', () => {
  let receivers: SpeakerReceivers;
  let counter = 0;

  beforeAll(async () => {
    receivers = await SpeakerReceivers.start();
  });
  afterAll(async () => {
    await closeHttpAgent(policy);
    await receivers.close();
  });

  function speaker(mode: ReceiverMode = { kind: 'ok' }) {
    return receivers.add(`speaker-${++counter}`, generateSigningSecret(), mode);
  }

  function send(url: string, secret: string, options: { timeoutMs?: number; policy?: OutboundPolicy; messageId?: string } = {}) {
    return deliverHttp({
      url,
      secret,
      messageId: options.messageId ?? randomUUID(),
      payload,
      timeoutMs: options.timeoutMs ?? 2_000,
      policy: options.policy ?? policy,
      now: new Date(),
    });
  }

  it('posts the JSON signed as Standard Webhooks; the receiver verifies it', async () => {
    const receiver = speaker();
    const messageId = randomUUID();
    expect(await send(receiver.url, receiver.secret, { messageId })).toEqual({ outcome: 'delivered', statusCode: 200 });
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.delivered).toHaveLength(1);
    expect(receiver.delivered[0]).toMatchObject({ webhookId: messageId, body: payload });
    expect(Math.abs(Number(receiver.delivered[0]!.timestamp) - Date.now() / 1000)).toBeLessThan(5);
  });

  it('a signature made with another secret is refused by the receiver (401: failed)', async () => {
    const receiver = speaker();
    const result = await send(receiver.url, generateSigningSecret());
    expect(result).toEqual({ outcome: 'failed', reason: 'HTTP 401' });
    expect(receiver.badSignatures).toBe(1);
    expect(receiver.delivered).toHaveLength(0);
  });

  it('503 is retried; 410 is gone; 404 fails', async () => {
    const unavailable = speaker({ kind: 'status', status: 503 });
    expect(await send(unavailable.url, unavailable.secret)).toEqual({ outcome: 'retry', reason: 'HTTP 503' });
    const gone = speaker({ kind: 'status', status: 410 });
    expect(await send(gone.url, gone.secret)).toMatchObject({ outcome: 'gone' });
    const missing = speaker({ kind: 'status', status: 404 });
    expect(await send(missing.url, missing.secret)).toEqual({ outcome: 'failed', reason: 'HTTP 404' });
    const throttled = speaker({ kind: 'status', status: 429 });
    expect(await send(throttled.url, throttled.secret)).toMatchObject({ outcome: 'retry' });
  });

  it('a 302 is not followed: a permanent failure', async () => {
    const receiver = speaker({ kind: 'redirect' });
    const result = await send(receiver.url, receiver.secret);
    expect(result).toMatchObject({ outcome: 'failed' });
    if (result.outcome === 'failed') expect(result.reason).toMatch(/redirect not followed/);
    expect(receivers.redirectTargetHits).toBe(0);
  });

  it('a receiver that never answers is given up after timeoutMs (retry)', async () => {
    const receiver = speaker({ kind: 'hang' });
    const started = performance.now();
    const result = await send(receiver.url, receiver.secret, { timeoutMs: 300 });
    const elapsed = performance.now() - started;
    expect(result).toMatchObject({ outcome: 'retry' });
    if (result.outcome === 'retry') expect(result.reason).toMatch(/timeout/);
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1_500);
    expect(receiver.requests).toHaveLength(1);
    receivers.releaseHeld();
  });

  it('a refused connection is retried', async () => {
    const port = await closedPort();
    const result = await send(`http://127.0.0.1:${port}/speaker`, generateSigningSecret());
    expect(result).toMatchObject({ outcome: 'retry' });
    if (result.outcome === 'retry') expect(result.reason).toMatch(/ECONNREFUSED/);
  });

  it('an address the policy refuses is never contacted: failed, naming the policy', async () => {
    const receiver = speaker();
    const result = await send(receiver.url, receiver.secret, { policy: new OutboundPolicy('') });
    expect(result).toMatchObject({ outcome: 'failed' });
    if (result.outcome === 'failed') expect(result.reason).toMatch(/127\.0\.0\.1 is a loopback address, refused by the outbound policy/);
    expect(receiver.requests).toHaveLength(0);
  });

  it('a name that comes to resolve to a refused address is refused at connect time', async () => {
    const receiver = speaker();
    let lookups = 0;
    // Unresolvable when first looked at, loopback when connecting.
    const resolve = async (): Promise<LookupAddress[]> => {
      if (lookups++ === 0) throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const rebinding = new OutboundPolicy('', { resolve });
    const url = receiver.url.replace('127.0.0.1', 'rebind.test');
    expect(await rebinding.checkUrl(url)).toEqual({ ok: true, unresolved: true });
    const result = await send(url, receiver.secret, { policy: rebinding });
    expect(result).toMatchObject({ outcome: 'failed' });
    if (result.outcome === 'failed') expect(result.reason).toMatch(/rebind\.test resolves to 127\.0\.0\.1 is a loopback address, refused by the outbound policy/);
    expect(receiver.requests).toHaveLength(0);
    await closeHttpAgent(rebinding);
  });

  it('the shared agent reuses connections: many deliveries in a row all arrive', async () => {
    const receiver = speaker();
    const results = await Promise.all(Array.from({ length: 20 }, () => send(receiver.url, receiver.secret)));
    expect(results.every((result) => result.outcome === 'delivered')).toBe(true);
    expect(receiver.delivered).toHaveLength(20);
  });
});

describe('MqttPublisher', () => {
  let broker: TestBroker;
  let publisher: MqttPublisher;

  beforeAll(async () => {
    broker = await startTestBroker();
    publisher = new MqttPublisher({ policy, reconnectPeriodMs: 200, connectTimeoutMs: 1_000 });
  });
  afterAll(async () => {
    await publisher.close();
    await broker.close();
  });

  it(`publishes the exact JSON at QoS 1 to the endpoint's topic (${process.env.TEST_MQTT_URL ? 'Mosquitto' : 'aedes'})`, async () => {
    const topic = `tig-test/${randomUUID()}/kitchen`;
    const subscriber = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 2_000 });
    try {
      await subscriber.subscribeAsync(topic, { qos: 1 });
      const received = new Promise<{ payload: string; qos: number }>((resolve) =>
        subscriber.on('message', (_topic, message, packet) => resolve({ payload: message.toString('utf8'), qos: packet.qos })),
      );
      const result = await publisher.publish({ url: `${broker.url}/${topic}`, payload, timeoutMs: 2_000 });
      expect(result).toEqual({ outcome: 'delivered' });
      const message = await received;
      expect(message.payload).toBe(JSON.stringify(payload));
      expect(message.qos).toBe(1);
      // The client is shared: a second publish to the same broker reuses it.
      expect(await publisher.publish({ url: `${broker.url}/${topic}`, payload, timeoutMs: 2_000 })).toEqual({ outcome: 'delivered' });
      expect(publisher.clientCount).toBe(1);
    } finally {
      await subscriber.endAsync(true);
    }
  });

  it('a broker that is down: retry, within the timeout', async () => {
    const port = await closedPort();
    const started = performance.now();
    const result = await publisher.publish({ url: `mqtt://127.0.0.1:${port}/speakers/hall`, payload, timeoutMs: 500 });
    expect(result).toMatchObject({ outcome: 'retry' });
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('a broker the policy refuses: failed, never contacted', async () => {
    const strict = new MqttPublisher({ policy: new OutboundPolicy('') });
    try {
      const result = await strict.publish({ url: `${broker.url}/speakers/hall`, payload, timeoutMs: 500 });
      expect(result).toMatchObject({ outcome: 'failed' });
      if (result.outcome === 'failed') expect(result.reason).toMatch(/outbound policy/);
      expect(strict.clientCount).toBe(0);
    } finally {
      await strict.close();
    }
  });

  it('an endpoint that is not mqtt fails', async () => {
    expect(await publisher.publish({ url: 'http://127.0.0.1/x', payload, timeoutMs: 500 })).toMatchObject({ outcome: 'failed' });
    expect(await publisher.publish({ url: 'mqtt://127.0.0.1:1883/', payload, timeoutMs: 500 })).toMatchObject({ outcome: 'failed' });
  });
});
