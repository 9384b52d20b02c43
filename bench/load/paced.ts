/**
 * Open-loop load at a fixed rate (S2 at half of S1's rate, S3 at 200 calls/s): request n is due
 * at start + n/rate whatever the answers do, so a slow gateway cannot slow the load down and hide
 * its latency (coordinated omission). The send time of every id is recorded, for the orchestrator
 * to match with what the peers received. Prints `RESULT {...}`.
 *
 * Usage: tsx bench/load/paced.ts '<json: LoadTarget & {rate, durationS}>'
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { announce } from '../support/child.js';
import { nowMs } from '../support/clock.js';
import { summarize, type LatencySummary } from '../support/stats.js';
import { requestFor, type LoadTarget } from './bodies.js';

export interface PacedResult {
  sent: number;
  accepted: number;
  /** The warm-up before the measured requests. */
  warm: { sent: number; accepted: number };
  statuses: Record<string, number>;
  errors: number;
  /** How far behind schedule the worst send was (the load generator's own lag). */
  maxLagMs: number;
  response: LatencySummary;
  /** [id, send time (ms since epoch), status] of every request. */
  sends: Array<[string, number, number]>;
}

const options = JSON.parse(process.argv[2] ?? '{}') as LoadTarget & { rate: number; durationS: number; warmupS?: number };
// A warm-up at the same rate runs first, on the same connections, on ids `W<prefix>-<n>` (and the
// devices or numbers before the measured ones): not measured, counted apart. Then a pause of
// WARMUP_PAUSE_MS, for the work the warm-up caused to finish, and the measured requests.
const WARMUP_PAUSE_MS = 2_000;
const warmCount = Math.round(options.rate * (options.warmupS ?? 0));
const warm = { sent: warmCount, accepted: 0 };
const pool = new Pool(options.url, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 });
const total = warmCount + Math.round(options.rate * options.durationS);
const sends: Array<[string, number, number]> = [];
const responseTimes: number[] = [];
const statuses: Record<string, number> = {};
let errors = 0;
let maxLagMs = 0;
const inFlight = new Set<Promise<void>>();

/** Sends one POST without waiting for it; `answered` gets its status, `failed` a transport error. */
function send(path: string, body: string, answered: (status: number) => void, failed: () => void): void {
  const request = pool
    .request({ method: 'POST', path, body, headers: { 'content-type': 'application/json', 'x-api-key': options.key } })
    .then(async (response) => {
      await response.body.dump();
      answered(response.statusCode);
    })
    .catch(failed);
  inFlight.add(request);
  void request.finally(() => inFlight.delete(request));
}

let start = nowMs() + 50;
for (let n = 0; n < total; n++) {
  if (n === warmCount && warmCount > 0) {
    await Promise.all(inFlight);
    await sleep(WARMUP_PAUSE_MS);
    start = nowMs() + 50 - (n * 1000) / options.rate;
  }
  const due = start + (n * 1000) / options.rate;
  const wait = due - nowMs();
  if (wait > 1) await sleep(wait - 0.5);
  while (nowMs() < due) {
    // spin for the last fraction of a millisecond
  }
  if (n < warmCount) {
    const { path, body } = requestFor({ ...options, idPrefix: `W${options.idPrefix}` }, n);
    send(path, body, (status) => {
      if (status >= 200 && status < 300) warm.accepted++;
    }, () => {});
    continue;
  }
  const { path, id, body } = requestFor({ ...options, offset: options.offset + warmCount }, n - warmCount);
  const sentAt = nowMs();
  maxLagMs = Math.max(maxLagMs, sentAt - due);
  const entry: [string, number, number] = [id, sentAt, 0];
  sends.push(entry);
  send(
    path,
    body,
    (status) => {
      entry[2] = status;
      responseTimes.push(nowMs() - sentAt);
      statuses[status] = (statuses[status] ?? 0) + 1;
    },
    () => errors++,
  );
}
await Promise.all(inFlight);
await pool.close();
const result: PacedResult = {
  sent: total - warmCount,
  warm,
  accepted: sends.filter(([, , status]) => status >= 200 && status < 300).length,
  statuses,
  errors,
  maxLagMs,
  response: summarize(responseTimes),
  sends,
};
announce('RESULT', result);
