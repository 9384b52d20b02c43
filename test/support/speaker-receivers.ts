/**
 * Real speaker endpoints on loopback: one HTTP server, one path per speaker, each with its own
 * Standard Webhooks secret and behaviour. Every request is verified with `Webhook.verify` as a
 * real receiver would; a bad signature is answered 401 and counted, never recorded as delivered.
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export type ReceiverMode =
  | { kind: 'ok' }
  /** Answers `status` (503) to the first `times` verified requests, then 200. */
  | { kind: 'fail'; times: number; status?: number }
  /** Never answers: holds the socket open. */
  | { kind: 'hang' }
  /** Always answers this status (410, 404, 500...). */
  | { kind: 'status'; status: number }
  /** Answers 200 after `delayMs`. */
  | { kind: 'slow'; delayMs: number }
  /** Answers 302 to another path of the same server (which records whether it was followed). */
  | { kind: 'redirect' };

export interface ReceivedRequest {
  webhookId: string;
  timestamp: string;
  body: Record<string, unknown>;
  /** Date.now() when the request arrived. */
  arrivedAt: number;
  /** performance.now() when the request arrived (for latency measurements). */
  arrivedAtMono: number;
  /** The status this receiver answered (undefined while held or delayed). */
  answered?: number;
}

export interface SpeakerReceiver {
  name: string;
  url: string;
  secret: string;
  mode: ReceiverMode;
  /** Every verified request, whatever was answered. */
  requests: ReceivedRequest[];
  /** Verified requests answered 2xx. */
  delivered: ReceivedRequest[];
  /** Requests refused 401 for a missing or wrong signature. */
  badSignatures: number;
  /** Requests being handled right now, and the most ever at once. */
  inFlight: number;
  maxInFlight: number;
}

export class SpeakerReceivers {
  readonly #server: http.Server;
  readonly #receivers = new Map<string, SpeakerReceiver>();
  readonly #held = new Set<ServerResponse>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #inFlight = 0;
  /** The most requests handled at once, over all receivers. */
  maxInFlight = 0;
  /** Requests that reached the redirect target (a redirect that was followed). */
  redirectTargetHits = 0;
  baseUrl = '';

  private constructor() {
    this.#server = http.createServer((request, response) => this.#handle(request, response));
    this.#server.keepAliveTimeout = 5_000;
  }

  static async start(): Promise<SpeakerReceivers> {
    const receivers = new SpeakerReceivers();
    receivers.#server.listen(0, '127.0.0.1');
    await once(receivers.#server, 'listening');
    const { port } = receivers.#server.address() as AddressInfo;
    receivers.baseUrl = `http://127.0.0.1:${port}`;
    return receivers;
  }

  /** Adds a speaker endpoint at `/speakers/<name>`. */
  add(name: string, secret: string, mode: ReceiverMode = { kind: 'ok' }): SpeakerReceiver {
    const receiver: SpeakerReceiver = {
      name,
      url: `${this.baseUrl}/speakers/${encodeURIComponent(name)}`,
      secret,
      mode,
      requests: [],
      delivered: [],
      badSignatures: 0,
      inFlight: 0,
      maxInFlight: 0,
    };
    this.#receivers.set(name, receiver);
    return receiver;
  }

  get(name: string): SpeakerReceiver {
    const receiver = this.#receivers.get(name);
    if (!receiver) throw new Error(`no receiver ${name}`);
    return receiver;
  }

  /** Answers and forgets every held request (a hang ends). */
  releaseHeld(): void {
    for (const response of this.#held) response.destroy();
    this.#held.clear();
  }

  async close(): Promise<void> {
    this.releaseHeld();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = decodeURIComponent(new URL(request.url ?? '/', this.baseUrl).pathname);
      if (path === '/redirect-target') {
        this.redirectTargetHits++;
        response.writeHead(200).end();
        return;
      }
      const receiver = this.#receivers.get(path.replace(/^\/speakers\//, ''));
      if (!receiver || request.method !== 'POST') {
        response.writeHead(404).end();
        return;
      }
      const header = (name: string) => (typeof request.headers[name] === 'string' ? request.headers[name] : '');
      const headers = { 'webhook-id': header('webhook-id'), 'webhook-timestamp': header('webhook-timestamp'), 'webhook-signature': header('webhook-signature') };
      let body: Record<string, unknown>;
      try {
        if (header('content-type') !== 'application/json') throw new Error('not JSON');
        body = new Webhook(receiver.secret).verify(raw, headers) as Record<string, unknown>;
      } catch {
        receiver.badSignatures++;
        response.writeHead(401).end();
        return;
      }
      const entry: ReceivedRequest = {
        webhookId: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        body,
        arrivedAt: Date.now(),
        arrivedAtMono: performance.now(),
      };
      receiver.requests.push(entry);
      receiver.inFlight++;
      receiver.maxInFlight = Math.max(receiver.maxInFlight, receiver.inFlight);
      this.#inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        receiver.inFlight--;
        this.#inFlight--;
      };
      response.on('close', finish);
      const answer = (status: number, extraHeaders: Record<string, string> = {}) => {
        entry.answered = status;
        if (status >= 200 && status < 300) receiver.delivered.push(entry);
        finish();
        response.writeHead(status, { 'content-type': 'text/plain', ...extraHeaders }).end(String(status));
      };
      const mode = receiver.mode;
      switch (mode.kind) {
        case 'ok':
          answer(200);
          return;
        case 'fail':
          answer(receiver.requests.length <= mode.times ? (mode.status ?? 503) : 200);
          return;
        case 'status':
          answer(mode.status);
          return;
        case 'redirect':
          answer(302, { location: `${this.baseUrl}/redirect-target` });
          return;
        case 'slow': {
          const timer = setTimeout(() => {
            this.#timers.delete(timer);
            if (!response.destroyed) answer(200);
          }, mode.delayMs);
          this.#timers.add(timer);
          return;
        }
        case 'hang':
          this.#held.add(response);
          return;
      }
    });
  }
}
