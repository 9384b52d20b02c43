/**
 * Delivers notifications to speakers that listen on an MQTT broker: the same JSON as the webhook
 * body, published at QoS 1 to the endpoint's topic, delivered when the broker's PUBACK arrives.
 *
 * One client per broker URL, shared by every speaker on that broker, created on first use; it
 * reconnects by itself (`reconnectPeriod`) and is closed after a while unused. Its socket is
 * opened through the outbound policy's `lookup`, like the HTTP agent's, so a broker name that
 * comes to resolve to a refused address is never connected to.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { MqttClient } from 'mqtt';
import { parseEndpoint } from '../devices/endpoint.js';
import type { DeliveryResult } from './http-delivery.js';
import { OutboundBlockedError, type OutboundPolicy } from './outbound-policy.js';

export interface MqttPublisherOptions {
  policy: OutboundPolicy;
  /** Delay between reconnection attempts of a broker client. */
  reconnectPeriodMs?: number;
  /** How long a broker has to answer CONNECT on one connection attempt. */
  connectTimeoutMs?: number;
  /** A broker client unused this long is closed (the next publish opens another). */
  idleCloseMs?: number;
}

export interface MqttPublishRequest {
  /** The device endpoint: `mqtt(s)://[user:password@]host[:port]/topic`. */
  url: string;
  payload: Record<string, unknown>;
  timeoutMs: number;
}

interface BrokerClient {
  client: MqttClient;
  lastError: Error | undefined;
  active: number;
  idleTimer: NodeJS.Timeout | undefined;
}

export class MqttPublisher {
  readonly #policy: OutboundPolicy;
  readonly #reconnectPeriodMs: number;
  readonly #connectTimeoutMs: number;
  readonly #idleCloseMs: number;
  readonly #clients = new Map<string, BrokerClient>();
  #closed = false;

  constructor(options: MqttPublisherOptions) {
    this.#policy = options.policy;
    this.#reconnectPeriodMs = options.reconnectPeriodMs ?? 1_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.#idleCloseMs = options.idleCloseMs ?? 300_000;
  }

  /** How many broker clients are open (tests, metrics). */
  get clientCount(): number {
    return this.#clients.size;
  }

  async publish({ url, payload, timeoutMs }: MqttPublishRequest): Promise<DeliveryResult> {
    if (this.#closed) return { outcome: 'retry', reason: 'the MQTT publisher is closed' };
    const parsed = parseEndpoint(url);
    if (!parsed.ok) return { outcome: 'failed', reason: `bad endpoint: ${parsed.reason}` };
    if (parsed.endpoint.transport !== 'mqtt') return { outcome: 'failed', reason: 'not an mqtt endpoint' };
    const { brokerUrl, topic } = parsed.endpoint;
    const deadline = Date.now() + timeoutMs;

    const existing = this.#clients.get(brokerUrl);
    if (!existing?.client.connected) {
      // Checked before (re)connecting; the socket's own lookup checks again at connect time.
      const check = await this.#policy.checkUrl(brokerUrl);
      if (!check.ok) return { outcome: 'failed', reason: check.reason };
    }
    const broker = existing ?? this.#open(brokerUrl);
    broker.active++;
    if (broker.idleTimer) clearTimeout(broker.idleTimer);
    broker.idleTimer = undefined;
    try {
      const connected = await this.#connected(broker, deadline - Date.now());
      if (!connected.ok) return connected.result;
      return await this.#publishOnce(broker.client, topic, JSON.stringify(payload), deadline - Date.now(), timeoutMs);
    } finally {
      broker.active--;
      this.#scheduleIdleClose(brokerUrl, broker);
    }
  }

  /** Ends every broker client. */
  async close(): Promise<void> {
    this.#closed = true;
    const brokers = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(
      brokers.map(
        (broker) =>
          new Promise<void>((resolve) => {
            if (broker.idleTimer) clearTimeout(broker.idleTimer);
            broker.client.end(true, {}, () => resolve());
          }),
      ),
    );
  }

  #open(brokerUrl: string): BrokerClient {
    const url = new URL(brokerUrl);
    const secure = url.protocol === 'mqtts:';
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (secure ? 8883 : 1883));
    const lookup = this.#policy.lookup;
    const streamBuilder = () =>
      secure
        ? tls.connect({ host, port, lookup, servername: net.isIP(host) === 0 ? host : undefined, rejectUnauthorized: true })
        : net.connect({ host, port, lookup });
    const client = new MqttClient(streamBuilder, {
      clientId: `tig_${randomBytes(8).toString('hex')}`,
      protocolVersion: 4,
      clean: true,
      keepalive: 30,
      reconnectPeriod: this.#reconnectPeriodMs,
      connectTimeout: this.#connectTimeoutMs,
      resubscribe: false,
      queueQoSZero: false,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    });
    const broker: BrokerClient = { client, lastError: undefined, active: 0, idleTimer: undefined };
    client.on('error', (error) => {
      broker.lastError = error;
    });
    client.on('connect', () => {
      broker.lastError = undefined;
    });
    this.#clients.set(brokerUrl, broker);
    return broker;
  }

  /** Waits until the client is connected, the time is up, or a connection attempt fails. */
  #connected(broker: BrokerClient, remainingMs: number): Promise<{ ok: true } | { ok: false; result: DeliveryResult }> {
    const { client } = broker;
    if (client.connected) return Promise.resolve({ ok: true });
    return new Promise((resolve) => {
      const finish = (value: { ok: true } | { ok: false; result: DeliveryResult }) => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('close', onClose);
        resolve(value);
      };
      const failure = (fallback: string): { ok: false; result: DeliveryResult } => {
        const error = broker.lastError;
        if (error instanceof OutboundBlockedError) return { ok: false, result: { outcome: 'failed', reason: error.message } };
        return { ok: false, result: { outcome: 'retry', reason: error ? `broker unreachable: ${error.message}` : fallback } };
      };
      const onConnect = () => finish({ ok: true });
      // A connection attempt ended without CONNACK: tell the dispatcher now instead of at the timeout.
      const onClose = () => {
        if (broker.lastError) finish(failure('broker connection closed'));
      };
      const timer = setTimeout(() => finish(failure(`not connected to the broker within ${Math.max(0, Math.round(remainingMs))} ms`)), Math.max(0, remainingMs));
      timer.unref?.();
      client.on('connect', onConnect);
      client.on('close', onClose);
    });
  }

  #publishOnce(client: MqttClient, topic: string, message: string, remainingMs: number, timeoutMs: number): Promise<DeliveryResult> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(error ? { outcome: 'retry', reason: `publish failed: ${error.message}` } : { outcome: 'delivered' });
      };
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        // Give up on this message, so the client does not send it again after a reconnect: the
        // dispatcher decides whether to try again.
        for (const [id, entry] of Object.entries(client.outgoing)) {
          if (entry.cb === callback) client.removeOutgoingMessage(Number(id));
        }
        resolve({ outcome: 'retry', reason: `timeout: no PUBACK within ${timeoutMs} ms` });
      }, Math.max(0, remainingMs));
      timer.unref?.();
      const callback = (error?: Error): void => done(error);
      client.publish(topic, message, { qos: 1, retain: false }, callback);
    });
  }

  #scheduleIdleClose(brokerUrl: string, broker: BrokerClient): void {
    if (broker.active > 0 || this.#closed) return;
    broker.idleTimer = setTimeout(() => {
      if (broker.active > 0 || this.#clients.get(brokerUrl) !== broker) return;
      this.#clients.delete(brokerUrl);
      broker.client.end(true);
    }, this.#idleCloseMs);
    broker.idleTimer.unref?.();
  }
}
