/**
 * The speakers of the bench, in a process of their own: one HTTP server on loopback where every
 * bench speaker has the path `/s/<device_id>`. Each notification is verified as a real speaker
 * would (Standard Webhooks, the secret all bench speakers share) and recorded with its arrival
 * time; the orchestrator reads the records from `GET /_records?since=<index>`.
 *
 * Usage: tsx bench/peers/speakers.ts <whsec_secret>
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { announce } from '../support/child.js';
import { nowMs } from '../support/clock.js';

export interface SpeakerRecord {
  /** notification id (webhook-id) */
  id: string;
  callId: string;
  deviceId: string;
  type: string;
  at: number;
}

const secret = process.argv[2];
if (!secret) throw new Error('usage: speakers.ts <whsec_secret>');
const webhook = new Webhook(secret);
const records: SpeakerRecord[] = [];
let badSignatures = 0;

const server = http.createServer((request, response) => {
  const at = nowMs();
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const url = request.url ?? '';
    if (request.method === 'GET' && url.startsWith('/_records')) {
      const since = Number(new URL(url, 'http://x').searchParams.get('since') ?? 0);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ records: records.slice(since), total: records.length, badSignatures }));
      return;
    }
    if (request.method !== 'POST' || !url.startsWith('/s/')) {
      response.writeHead(404).end();
      return;
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const header = (name: string) => String(request.headers[name] ?? '');
    try {
      const payload = webhook.verify(body, {
        'webhook-id': header('webhook-id'),
        'webhook-timestamp': header('webhook-timestamp'),
        'webhook-signature': header('webhook-signature'),
      }) as { call_id: string; device_id: string; type: string };
      records.push({ id: header('webhook-id'), callId: payload.call_id, deviceId: payload.device_id, type: payload.type, at });
      response.writeHead(204).end();
    } catch {
      badSignatures++;
      response.writeHead(401).end();
    }
  });
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  announce('READY', { url: `http://127.0.0.1:${port}` });
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
