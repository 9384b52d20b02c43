/**
 * The FreeSWITCH of the bench, in a process of its own: the test suite's loopback Event Socket
 * peer (test/support/esl-peer.ts, the real protocol), answering every originate at once. Each
 * originate's arrival time is recorded with its call id (`tig_call_id`, the gateway's call id);
 * the orchestrator reads them from a small HTTP control server: `GET /originates?since=<index>`.
 *
 * Usage: tsx bench/peers/esl.ts <password>
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startEslPeer } from '../../test/support/esl-peer.js';
import { announce } from '../support/child.js';
import { nowMs } from '../support/clock.js';

export interface OriginateRecord {
  callId: string;
  at: number;
}

const password = process.argv[2] ?? 'ClueCon';
const records: OriginateRecord[] = [];
const peer = await startEslPeer({
  password,
  onOriginate: (call) => {
    records.push({ callId: call.variables.tig_call_id ?? call.uuid, at: nowMs() });
    // Answered quickly and hung up: the alarm (require_ack false) resolves, nothing stays up.
    return { outcome: 'answer', ringMs: 2, answerAfterMs: 5, hangupAfterMs: 20 };
  },
});
const control = http.createServer((request, response) => {
  const since = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('since') ?? 0);
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ records: records.slice(since), total: records.length, live: peer.liveChannels().length }));
});
control.listen(0, '127.0.0.1', () => {
  const { port } = control.address() as AddressInfo;
  announce('READY', { eslUrl: `tcp://127.0.0.1:${peer.port}`, control: `http://127.0.0.1:${port}` });
});
process.on('SIGTERM', () => {
  control.close();
  void peer.close().then(() => process.exit(0));
});
