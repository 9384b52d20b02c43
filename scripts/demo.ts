/**
 * `npm run demo`: both flows of the gateway, end to end, in about half a minute.
 *
 * Starts the real gateway (`iot-gateway serve`, as `npm start` does) on a fresh embedded database
 * in a temporary folder with the mock telephony, and a small speaker in this process that checks
 * each notification's Standard Webhooks signature. Registers the speaker, a smoke sensor and a
 * rule; plays an incoming call (ringing, answered, ended) and a smoke alarm that escalates to
 * phone calls; prints what happened, time-stamped: the gateway's event log and the speaker's view.
 * Then stops everything and removes the folder. Exit 0 when both scenarios completed, 1 otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';

const SUBSCRIBER = '+79161234567';
const BUSY_NUMBER = '+79165550101'; // a mock magic number: busy
const CALLER = '+74951234567';
const TIMEOUT_MS = Number(process.env.DEMO_TIMEOUT_S ?? 90) * 1000;

interface StoryLine {
  at: Date;
  who: 'gateway' | 'speaker' | 'demo';
  text: string;
}

interface Received {
  at: Date;
  type: string;
  callId: string;
  signature: string;
}

interface EventLogRow {
  at: string;
  type: string;
  status: string;
  device_id: string | null;
  msisdn: string | null;
  details: Record<string, unknown>;
}

const out = (line = '') => process.stdout.write(`${line}\n`);
const time = (at: Date) => at.toISOString().slice(11, 23);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class DemoFailure extends Error {}

/** A speaker: receives notifications, checks their signature with its secret, remembers them. */
async function startSpeaker() {
  const received: Received[] = [];
  let verifier: Webhook | undefined;
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
      let signature = 'valid';
      try {
        if (!verifier) throw new Error('no secret yet');
        verifier.verify(body, headers);
      } catch (error) {
        signature = `INVALID (${(error as Error).message})`;
      }
      const notification = JSON.parse(body || '{}') as { type?: string; call_id?: string };
      received.push({ at: new Date(), type: notification.type ?? '?', callId: notification.call_id ?? '?', signature });
      response.writeHead(signature === 'valid' ? 204 : 401).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/notify`,
    received,
    useSecret(secret: string) {
      verifier = new Webhook(secret);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The real gateway, as a child process, on an embedded database in `dataDir`. */
async function startGateway(dataDir: string, adminKey: string): Promise<{ child: ChildProcess; baseUrl: string; output: () => string }> {
  const cli = fileURLToPath(new URL('../bin/iot-gateway.js', import.meta.url));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_API_KEY: adminKey,
    TELEPHONY: 'mock',
    OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'warn',
  };
  delete env.DATABASE_URL;
  delete env.FREESWITCH_ESL_URL;
  delete env.WEBHOOK_SIGNING_SECRET;
  const child = spawn(process.execPath, [cli, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DemoFailure(`the gateway did not start within 60 s:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /is running on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new DemoFailure(`the gateway exited (${code}) before it started:\n${output}`));
    });
  });
  return { child, baseUrl, output: () => output };
}

async function stopGateway(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function api(baseUrl: string, key: string) {
  return async <T>(method: string, route: string, body?: object): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${baseUrl}${route}`, {
      method,
      headers: { 'x-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    const parsed = (text ? JSON.parse(text) : undefined) as T;
    if (response.status >= 400) throw new DemoFailure(`${method} ${route} answered ${response.status}: ${text}`);
    return { status: response.status, body: parsed };
  };
}

/** Polls until `done` returns a value, or fails with `what` after the deadline. */
async function waitFor<T>(what: string, deadline: number, done: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (;;) {
    const value = await done();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new DemoFailure(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function describeEvent(row: EventLogRow): string {
  const details = row.details;
  const pick = (...keys: string[]) =>
    keys
      .filter((key) => details[key] !== undefined && details[key] !== null)
      .map((key) => `${key}=${typeof details[key] === 'object' ? JSON.stringify(details[key]) : String(details[key] as string)}`)
      .join(' ');
  const subject = [row.device_id, row.msisdn].filter(Boolean).join(' ');
  return `${row.type.padEnd(24)} ${row.status.padEnd(9)} ${subject}  ${pick('to', 'attempt', 'status', 'cause', 'sip_code', 'acknowledged', 'reason', 'latency_ms', 'caller')}`.trimEnd();
}

function printStory(lines: StoryLine[]): void {
  for (const line of [...lines].sort((a, b) => a.at.getTime() - b.at.getTime())) {
    out(`  ${time(line.at)}  ${line.who.padEnd(7)}  ${line.text}`);
  }
}

async function eventLog(call: ReturnType<typeof api>, correlationId: string): Promise<StoryLine[]> {
  const { body } = await call<{ items: EventLogRow[] }>('GET', `/api/v1/event-logs?correlation_id=${encodeURIComponent(correlationId)}&limit=500`);
  // Newest first from the API; oldest first in the story (rows of one instant keep their order).
  return body.items.reverse().map((row) => ({ at: new Date(row.at), who: 'gateway' as const, text: describeEvent(row) }));
}

async function run(): Promise<void> {
  const started = Date.now();
  const deadline = started + TIMEOUT_MS;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'iot-gateway-demo-'));
  const adminKey = `demo-admin-${randomBytes(16).toString('hex')}`;
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  const speaker = await startSpeaker();
  let failure: Error | undefined;
  try {
    out('TAS IoT Gateway demo: both flows, end to end');
    out();
    gateway = await startGateway(dataDir, adminKey);
    out(`  gateway   ${gateway.baseUrl}  (pid ${gateway.child.pid}; embedded database in ${dataDir}; mock telephony)`);
    out(`  speaker   ${speaker.url}  (in this process: checks each notification's signature)`);
    const call = api(gateway.baseUrl, adminKey);

    out();
    out('Setting up (admin API)');
    const registered = await call<{ signing_secret: string }>('POST', '/api/v1/devices', {
      device_id: 'demo-kitchen-speaker',
      type: 'speaker',
      msisdn: SUBSCRIBER,
      name: 'Kitchen speaker',
      endpoint: speaker.url,
    });
    speaker.useSecret(registered.body.signing_secret);
    out(`  speaker demo-kitchen-speaker bound to ${SUBSCRIBER}, with its own signing secret`);
    await call('POST', '/api/v1/devices', { device_id: 'demo-hall-smoke', type: 'sensor_smoke', msisdn: SUBSCRIBER, name: 'Hall smoke sensor' });
    out(`  smoke sensor demo-hall-smoke bound to ${SUBSCRIBER}`);
    const rule = await call<{ id: number }>('POST', '/api/v1/rules', {
      name: 'Smoke in the hall',
      event_type: 'smoke',
      device_id: 'demo-hall-smoke',
      action: { type: 'call', to: [BUSY_NUMBER, SUBSCRIBER], message: 'Smoke detected in the hall', attempts: 1, retry_delay_s: 1 },
    });
    out(`  rule ${rule.body.id}: smoke from demo-hall-smoke -> call ${BUSY_NUMBER} (always busy on the mock), then ${SUBSCRIBER} (answers, presses 1)`);

    // Scenario 1: telecom -> home.
    out();
    out(`Scenario 1. Telecom -> home: ${CALLER} calls the subscriber ${SUBSCRIBER}`);
    const story1: StoryLine[] = [];
    const callId = `demo-call-${randomBytes(4).toString('hex')}`;
    const report = async (state: string) => {
      const at = new Date();
      const answer = await call<{ notified_devices: number }>('POST', '/api/v1/incoming-calls', { call_id: callId, caller: CALLER, callee: SUBSCRIBER, caller_name: 'Mum', state });
      story1.push({ at, who: 'demo', text: `the TAS reports the call ${state} -> ${answer.status} (${answer.body.notified_devices} speaker to notify)` });
    };
    const receivedFor = (type: string) => speaker.received.find((entry) => entry.callId === callId && entry.type === type);
    await report('ringing');
    await waitFor('the speaker to hear the call ringing', deadline, () => receivedFor('incoming_call.ringing'));
    await sleep(1_500);
    await report('answered');
    await sleep(1_000);
    await report('ended');
    await waitFor('the speaker to hear the call end', deadline, () => receivedFor('incoming_call.ended'));
    const incoming = await call<{ correlation_id: string }>('GET', `/api/v1/incoming-calls/${callId}`);
    for (const entry of speaker.received.filter((item) => item.callId === callId)) {
      story1.push({ at: entry.at, who: 'speaker', text: `received ${entry.type}, signature ${entry.signature}` });
    }
    story1.push(...(await eventLog(call, incoming.body.correlation_id)));
    printStory(story1);
    const heard = speaker.received.filter((item) => item.callId === callId);
    const scenario1 = ['incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended'].every((type) =>
      heard.some((entry) => entry.type === type && entry.signature === 'valid'),
    );
    out(scenario1 ? '  => the speaker announced the call, then heard it answered and ended; every signature valid.' : '  => INCOMPLETE: the speaker missed a notification or a signature was invalid.');

    // Scenario 2: home -> telecom.
    out();
    out('Scenario 2. Home -> telecom: the hall smoke sensor fires');
    const story2: StoryLine[] = [];
    const sentAt = new Date();
    const event = await call<{ status: string; alarm_ids: string[] }>('POST', '/api/v1/webhooks/events', {
      event_id: `demo-smoke-${randomBytes(4).toString('hex')}`,
      device_id: 'demo-hall-smoke',
      event_type: 'smoke',
    });
    story2.push({ at: sentAt, who: 'demo', text: `the smart-home system posts a smoke event -> ${event.status} (${event.body.status}, alarm started)` });
    const alarmId = event.body.alarm_ids[0];
    if (!alarmId) throw new DemoFailure(`the smoke event started no alarm: ${JSON.stringify(event.body)}`);
    interface AlarmView {
      status: string;
      end_reason: string | null;
      correlation_id: string;
      calls: { to: string; status: string; acknowledged: boolean }[];
    }
    const alarm = await waitFor('the alarm to end (calls placed on the mock telephony)', deadline, async () => {
      const { body } = await call<AlarmView>('GET', `/api/v1/alarms/${alarmId}`);
      // Ended, and its last call hung up too.
      const onTheLine = body.calls.some((item) => ['queued', 'dialing', 'ringing', 'answered'].includes(item.status));
      return body.status === 'active' || onTheLine ? undefined : body;
    });
    story2.push(...(await eventLog(call, alarm.correlation_id)));
    printStory(story2);
    const scenario2 = alarm.status === 'resolved';
    out(
      `  => alarm ${alarm.status}${alarm.end_reason ? ` (${alarm.end_reason})` : ''}; calls: ${alarm.calls
        .map((item) => `${item.to} ${item.status}${item.acknowledged ? ' (confirmed)' : ''}`)
        .join(', ')}`,
    );

    out();
    if (!scenario1 || !scenario2) throw new DemoFailure(`scenario ${!scenario1 ? 1 : 2} did not complete`);
    out(`Both scenarios completed in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
    out('Next: npm start, then the walkthroughs in README.md (or iot-gateway --help).');
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
    if (gateway) process.stderr.write(`\nGateway output:\n${gateway.output()}\n`);
  } finally {
    if (gateway) await stopGateway(gateway.child);
    await speaker.close();
    rmSync(dataDir, { recursive: true, force: true });
    out(`Stopped the gateway and the speaker; removed ${dataDir}.`);
  }
  if (failure) throw failure;
}

try {
  await run();
} catch (error) {
  process.stderr.write(`\nThe demo FAILED: ${error instanceof DemoFailure ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
