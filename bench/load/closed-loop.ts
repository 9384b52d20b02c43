/**
 * Closed-loop load (S1, S4, S6): `connections` clients, each sending its next request as soon as
 * the previous one is answered, for `durationS` seconds, with autocannon. Every request carries a
 * fresh id. Prints `RESULT {...}`: answers by status, throughput of 202s, latency.
 *
 * Usage: tsx bench/load/closed-loop.ts '<json: LoadTarget & {connections, durationS}>'
 */
import autocannon from 'autocannon';
import { announce } from '../support/child.js';
import { requestFor, type LoadTarget } from './bodies.js';

export interface ClosedLoopResult {
  accepted: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
  acceptedPerS: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

const options = JSON.parse(process.argv[2] ?? '{}') as LoadTarget & { connections: number; durationS: number };
let n = 0;
const result = await autocannon({
  url: options.url,
  connections: options.connections,
  duration: options.durationS,
  requests: [
    {
      method: 'POST',
      setupRequest: (request) => {
        const next = requestFor(options, n++);
        return { ...request, path: next.path, body: next.body, headers: { 'content-type': 'application/json', 'x-api-key': options.key } };
      },
    },
  ],
});
const accepted = result['2xx'];
const summary: ClosedLoopResult = {
  accepted,
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  durationS: result.duration,
  acceptedPerS: accepted / result.duration,
  latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
};
announce('RESULT', summary);
