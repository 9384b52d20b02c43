import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EslClient, type EslClientOptions, type EslClientState } from '../../src/telephony/freeswitch/esl-client.js';
import {
  EslCommandError,
  EslConnectionLostError,
  EslNotConnectedError,
  EslTimeoutError,
} from '../../src/telephony/freeswitch/esl-errors.js';
import type { EslEvent } from '../../src/telephony/freeswitch/esl-frames.js';
import { startEslPeer, type CallScript, type EslPeer, type EslPeerOptions } from '../support/esl-peer.js';
import { testLogger } from '../support/test-logger.js';

// Byte-exact transcripts of a real FreeSWITCH 1.10.12 (see test/fixtures/freeswitch-esl/README.md).
const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/freeswitch-esl');

const WAIT_MS = 3000;

async function peerFor(options: EslPeerOptions = {}): Promise<EslPeer> {
  const peer = await startEslPeer(options);
  onTestFinished(() => peer.close());
  return peer;
}

function clientFor(peer: EslPeer, overrides: Partial<EslClientOptions> = {}) {
  const { lines, logger } = testLogger();
  const client = new EslClient({
    host: '127.0.0.1',
    port: peer.port,
    password: 'ClueCon',
    logger,
    commandTimeoutMs: 2000,
    connectTimeoutMs: 2000,
    reconnect: { initialDelayMs: 10, maxDelayMs: 40 },
    ...overrides,
  });
  const states: EslClientState[] = [];
  client.on('state', (state) => states.push(state));
  const recorder = recordEvents(client);
  onTestFinished(() => client.stop());
  return { client, lines, states, ...recorder };
}

async function connected(client: EslClient): Promise<void> {
  const ready = withTimeout(once(client, 'connected'), 'connected');
  client.start();
  await ready;
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Records every event; `next` resolves with the first recorded or future event matching. */
function recordEvents(client: EslClient) {
  const events: EslEvent[] = [];
  const waiters = new Set<{ match: (e: EslEvent) => boolean; resolve: (e: EslEvent) => void }>();
  client.on('event', (event) => {
    events.push(event);
    for (const waiter of waiters) {
      if (waiter.match(event)) {
        waiters.delete(waiter);
        waiter.resolve(event);
      }
    }
  });
  const next = (match: (e: EslEvent) => boolean, what = 'event'): Promise<EslEvent> => {
    const seen = events.find(match);
    if (seen) return Promise.resolve(seen);
    const waiter = { match, resolve: (_: EslEvent) => {} };
    const promise = new Promise<EslEvent>((resolve) => {
      waiter.resolve = resolve;
    });
    waiters.add(waiter);
    return withTimeout(promise, what).finally(() => waiters.delete(waiter));
  };
  return { events, next };
}

const channelEvent = (name: string, uuid: string) => (e: EslEvent) => e.name === name && e.headers['Unique-ID'] === uuid;
const jobEvent = (jobUuid: string) => (e: EslEvent) => e.name === 'BACKGROUND_JOB' && e.headers['Job-UUID'] === jobUuid;

/** What the alarm service will send: our ids as channel variables, a gateway dial string, park. */
function originateArgs(uuid: string, callId: string, number = '+4915112345678'): string {
  return `originate {origination_uuid=${uuid},tig_call_id=${callId},origination_caller_id_number='+4930901820',ignore_early_media=true}sofia/gateway/carrier/${number} &park()`;
}

describe('EslClient against the Event Socket peer', () => {
  it('authenticates, subscribes in plain format, runs api status, and stops with exit', async () => {
    const peer = await peerFor();
    const { client, states } = clientFor(peer);
    await expect(client.api('status')).rejects.toBeInstanceOf(EslNotConnectedError);
    await connected(client);
    expect(client.state).toBe('connected');
    expect(states).toEqual(['connecting', 'connected']);
    expect(peer.commands.slice(0, 2)).toEqual([
      'auth ClueCon',
      'event plain BACKGROUND_JOB CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_PARK CHANNEL_HANGUP_COMPLETE DTMF',
    ]);

    const status = await client.api('status');
    expect(status).toMatch(/^UP 0 years/);
    expect(status).toContain('FreeSWITCH (Version 1.10.12-release  64bit) is ready\n');

    await client.stop();
    expect(client.state).toBe('stopped');
    expect(peer.commands.at(-1)).toBe('exit');
    await expect(client.api('status')).rejects.toBeInstanceOf(EslNotConnectedError);
  });

  it('stop() lets the commands written get their replies, then sends exit', async () => {
    const peer = await peerFor({ onOriginate: () => ({ outcome: 'answer', answerAfterMs: 40 }) });
    const { client } = clientFor(peer);
    await connected(client);
    const uuid = randomUUID();
    // A synchronous `api originate` holds the connection until the call is answered.
    const inFlight = client.api(originateArgs(uuid, 'call-sync'));
    // Written at once behind it (pipelined): answered after it, in order.
    const behind = client.api('status');
    await new Promise((resolve) => setTimeout(resolve, 10));
    const stopped = client.stop();
    await expect(inFlight).resolves.toBe(`+OK ${uuid}\n`);
    await expect(behind).resolves.toMatch(/^UP /);
    await stopped;
    expect(peer.commands.slice(2)).toEqual([expect.stringMatching(/^api originate /), 'api status', 'exit']);
    // Once stopped, nothing more is taken.
    await expect(client.api('status')).rejects.toMatchObject({ name: 'EslNotConnectedError' });
  });

  it('reports an unknown api command as FreeSWITCH does, and rejects -ERR command replies', async () => {
    const peer = await peerFor();
    const { client } = clientFor(peer);
    await connected(client);
    await expect(client.api('nosuchcommand')).resolves.toBe('-ERR nosuchcommand Command not found!\n');
    const failure = await client.command('foo').catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(EslCommandError);
    expect(failure).toMatchObject({ code: 'ESL_COMMAND_FAILED', command: 'foo', replyText: '-ERR command not found' });
    await expect(client.api('uuid_kill 00000000-0000-0000-0000-000000000000')).resolves.toBe('-ERR No such channel!\n');
  });

  it('on a wrong password emits auth_failed, keeps retrying with backoff, never logs the password, and stops', async () => {
    const peer = await peerFor();
    const secret = 'Wr0ng-S3cret!';
    const { client, lines, states } = clientFor(peer, { password: secret });
    const failures: Error[] = [];
    client.on('auth_failed', (error) => failures.push(error));
    client.start();
    await withTimeout(
      new Promise<void>((resolve) => {
        client.on('auth_failed', () => {
          if (failures.length >= 3) resolve();
        });
      }),
      'three auth failures',
    );
    expect(failures[0]).toMatchObject({ name: 'EslAuthError', code: 'ESL_AUTH_FAILED', replyText: '-ERR invalid' });
    expect(states).not.toContain('connected');
    expect(lines.some((line) => line.level === 'error')).toBe(true);
    expect(JSON.stringify(lines)).not.toContain(secret);
    expect(peer.commands.filter((c) => c === `auth ${secret}`).length).toBeGreaterThanOrEqual(3);

    await client.stop();
    expect(client.state).toBe('stopped');
    const attempts = peer.commands.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(peer.commands.length).toBe(attempts);
  });

  it('observes bgapi originate outcomes as events carrying our tig_call_id', async () => {
    const scripts: Record<string, CallScript> = {
      'call-dtmf': { outcome: 'answer', dtmf: '1', hangupAfterMs: 60 },
      'call-answer': { outcome: 'answer', hangupAfterMs: 20 },
      'call-busy': { outcome: 'fail', cause: 'USER_BUSY', sipCode: 486 },
      'call-noanswer': { outcome: 'fail', cause: 'NO_ANSWER', afterMs: 30 },
      'call-rejected': { outcome: 'fail', cause: 'CALL_REJECTED', sipCode: 603, jobBeforeHangupComplete: true },
    };
    const peer = await peerFor({ onOriginate: (call) => scripts[call.variables.tig_call_id ?? ''] ?? { outcome: 'hang' } });
    const { client, events, next } = clientFor(peer);
    await connected(client);

    const calls = Object.keys(scripts).map((callId) => ({ callId, uuid: randomUUID(), jobUuid: randomUUID() }));
    const accepted = await Promise.all(calls.map((c) => client.bgapi(originateArgs(c.uuid, c.callId), { jobUuid: c.jobUuid })));
    expect(accepted.map((a) => a.jobUuid)).toEqual(calls.map((c) => c.jobUuid));

    const results = await Promise.all(
      calls.map(async (c) => ({
        ...c,
        job: await next(jobEvent(c.jobUuid), `BACKGROUND_JOB of ${c.callId}`),
        hangup: await next(channelEvent('CHANNEL_HANGUP_COMPLETE', c.uuid), `hangup of ${c.callId}`),
      })),
    );
    const byId = Object.fromEntries(results.map((r) => [r.callId, r]));
    const namesOf = (uuid: string) => events.filter((e) => e.headers['Unique-ID'] === uuid).map((e) => e.name);

    // Every channel event (but DTMF, see below) carries our variables, as FreeSWITCH's variable_* headers.
    for (const r of results) {
      const channelEvents = events.filter((e) => e.headers['Unique-ID'] === r.uuid && e.name !== 'DTMF');
      expect(channelEvents.length).toBeGreaterThanOrEqual(2);
      for (const e of channelEvents) {
        expect(e.headers.variable_tig_call_id).toBe(r.callId);
        expect(e.headers.variable_origination_uuid).toBe(r.uuid);
        expect(e.headers['Caller-Destination-Number']).toBe('+4915112345678');
        expect(e.headers['Caller-Caller-ID-Number']).toBe('+4930901820');
      }
    }

    const dtmf = byId['call-dtmf']!;
    expect(dtmf.job.body).toBe(`+OK ${dtmf.uuid}\n`);
    expect(namesOf(dtmf.uuid)).toEqual(['CHANNEL_CREATE', 'CHANNEL_PROGRESS', 'CHANNEL_ANSWER', 'CHANNEL_PARK', 'DTMF', 'CHANNEL_HANGUP_COMPLETE']);
    const digit = events.find(channelEvent('DTMF', dtmf.uuid))!;
    expect(digit.headers['DTMF-Digit']).toBe('1');
    // FreeSWITCH puts no variable_* on DTMF events (unless verbose_events): correlate by Unique-ID.
    expect(digit.headers.variable_tig_call_id).toBeUndefined();
    expect(dtmf.hangup.headers['Hangup-Cause']).toBe('NORMAL_CLEARING');

    const answer = byId['call-answer']!;
    expect(answer.job.body).toBe(`+OK ${answer.uuid}\n`);
    expect(namesOf(answer.uuid)).toEqual(['CHANNEL_CREATE', 'CHANNEL_PROGRESS', 'CHANNEL_ANSWER', 'CHANNEL_PARK', 'CHANNEL_HANGUP_COMPLETE']);

    const busy = byId['call-busy']!;
    expect(busy.job.body).toBe('-ERR USER_BUSY\n');
    expect(namesOf(busy.uuid)).toEqual(['CHANNEL_CREATE', 'CHANNEL_HANGUP_COMPLETE']);
    expect(busy.hangup.headers).toMatchObject({
      'Hangup-Cause': 'USER_BUSY',
      variable_hangup_cause_q850: '17',
      variable_sip_term_status: '486',
      variable_proto_specific_hangup_cause: 'sip:486',
    });

    const noAnswer = byId['call-noanswer']!;
    expect(noAnswer.job.body).toBe('-ERR NO_ANSWER\n');
    expect(namesOf(noAnswer.uuid)).toEqual(['CHANNEL_CREATE', 'CHANNEL_PROGRESS', 'CHANNEL_HANGUP_COMPLETE']);
    expect(noAnswer.hangup.headers['Hangup-Cause']).toBe('NO_ANSWER');

    const rejected = byId['call-rejected']!;
    expect(rejected.job.body).toBe('-ERR CALL_REJECTED\n');
    expect(rejected.hangup.headers).toMatchObject({ 'Hangup-Cause': 'CALL_REJECTED', variable_sip_term_status: '603' });
    // This script sends the job result before the hang-up event (FreeSWITCH does either).
    expect(events.indexOf(rejected.job)).toBeLessThan(events.indexOf(rejected.hangup));
    expect(events.indexOf(busy.job)).toBeGreaterThan(events.indexOf(busy.hangup));

    expect(peer.originates.map((o) => o.variables.tig_call_id)).toEqual(calls.map((c) => c.callId));
    expect(peer.originates[0]).toMatchObject({ dialString: 'sofia/gateway/carrier/+4915112345678', application: '&park()' });
  });

  it('reassembles replies and events written in small TCP pieces (splitWrites)', async () => {
    const peer = await peerFor({ splitWrites: true, onOriginate: () => ({ outcome: 'answer', dtmf: '12' }) });
    const { client, events, next } = clientFor(peer);
    await connected(client);
    const [status, unknown] = await Promise.all([client.api('status'), client.api('nosuchcommand')]);
    expect(status).toContain('is ready');
    expect(unknown).toBe('-ERR nosuchcommand Command not found!\n');

    const uuid = randomUUID();
    const { jobUuid } = await client.bgapi(originateArgs(uuid, 'call-split'));
    await next(channelEvent('CHANNEL_ANSWER', uuid), 'answer');
    const channels = await client.api('show channels');
    expect(channels).toContain(uuid);
    expect(channels).toMatch(/\n1 total\.\n$/);
    expect((await next(jobEvent(jobUuid), 'job')).body).toBe(`+OK ${uuid}\n`);
    await next((e) => channelEvent('DTMF', uuid)(e) && e.headers['DTMF-Digit'] === '2', 'second digit');
    expect(events.filter(channelEvent('DTMF', uuid)).map((e) => e.headers['DTMF-Digit'])).toEqual(['1', '2']);
    await expect(client.api(`uuid_kill ${uuid} USER_BUSY`)).resolves.toBe('+OK\n');
    const hangup = await next(channelEvent('CHANNEL_HANGUP_COMPLETE', uuid), 'hangup');
    expect(hangup.headers['Hangup-Cause']).toBe('USER_BUSY');
    await expect(client.api('show channels')).resolves.toBe('\n0 total.\n');
  });

  it('never re-sends: a drop during an originate rejects it and the command written behind it (both sent), then reconnects', async () => {
    const peer = await peerFor({ onOriginate: () => ({ outcome: 'answer', ringMs: 100, answerAfterMs: 250 }) });
    const { client, next, lines } = clientFor(peer);
    await connected(client);
    const disconnected = withTimeout(once(client, 'disconnected'), 'disconnected');
    const reconnected = withTimeout(
      new Promise<void>((resolve) => {
        client.on('connected', () => resolve());
      }),
      'reconnected',
    );

    peer.misbehaveOnNext('bgapi originate', 'drop');
    const uuid = randomUUID();
    const jobUuid = randomUUID();
    const originate = client.bgapi(originateArgs(uuid, 'call-drop', '+4917600000001'), { jobUuid }).catch((error: unknown) => error);
    const behind = client.api('status').catch((error: unknown) => error);

    const originateError = await originate;
    expect(originateError).toBeInstanceOf(EslConnectionLostError);
    expect(originateError).toMatchObject({ code: 'ESL_CONNECTION_LOST', command: 'bgapi originate', sent: true });
    expect(String((originateError as Error).message)).not.toContain('+4917600000001');
    // Written without waiting for the originate's reply: its outcome is unknown too.
    expect(await behind).toMatchObject({ name: 'EslConnectionLostError', command: 'api status', sent: true });
    await disconnected;
    await reconnected;
    expect(client.state).toBe('connected');

    // The call went on without us: FreeSWITCH channels survive an Event Socket disconnect.
    await expect(client.api(`uuid_exists ${uuid}`)).resolves.toBe('true');
    await next(channelEvent('CHANNEL_ANSWER', uuid), 'answer seen on the new connection');
    expect((await next(jobEvent(jobUuid), 'job result on the new connection')).body).toBe(`+OK ${uuid}\n`);

    expect(peer.originates).toHaveLength(1);
    expect(peer.commands.filter((c) => c.startsWith('bgapi originate'))).toHaveLength(1);
    expect(peer.commands.filter((c) => c === 'api status').length).toBeLessThanOrEqual(1);
    expect(JSON.stringify(lines)).not.toContain('+4917600000001');
    await expect(client.api(`uuid_kill ${uuid}`)).resolves.toBe('+OK\n');
  });

  it('times a command out, drops the connection (later replies would mismatch) and reconnects', async () => {
    const peer = await peerFor();
    const { client } = clientFor(peer);
    await connected(client);
    const reconnected = withTimeout(
      new Promise<void>((resolve) => {
        client.on('connected', () => resolve());
      }),
      'reconnected',
    );
    peer.misbehaveOnNext('api status', 'silence');
    const started = Date.now();
    const timedOut = client.api('status', { timeoutMs: 150 }).catch((error: unknown) => error);
    const behind = client.api('version').catch((error: unknown) => error);
    const error = await timedOut;
    expect(error).toBeInstanceOf(EslTimeoutError);
    expect(error).toMatchObject({ code: 'ESL_TIMEOUT', command: 'api status', sent: true, timeoutMs: 150 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await behind).toMatchObject({ name: 'EslConnectionLostError', command: 'api version', sent: true });
    await reconnected;
    await expect(client.api('version')).resolves.toBe('FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n');
  });

  it('a command waiting behind a slow one times out alone: its late reply goes to nobody else', async () => {
    const peer = await peerFor({ onOriginate: () => ({ outcome: 'answer', answerAfterMs: 300 }) });
    const { client } = clientFor(peer);
    await connected(client);
    const uuid = randomUUID();
    // A synchronous `api originate` holds the connection until the call is answered.
    const slow = client.api(originateArgs(uuid, 'call-slow'), { timeoutMs: 2_000 });
    const impatient = await client.api('version', { timeoutMs: 50 }).catch((error: unknown) => error);
    expect(impatient).toMatchObject({ name: 'EslTimeoutError', command: 'api version', sent: true });
    await expect(slow).resolves.toBe(`+OK ${uuid}\n`);
    // The impatient command's reply came after the originate's and was dropped: the next command
    // gets its own reply, on the same connection.
    await expect(client.api(`uuid_exists ${uuid}`)).resolves.toBe('true');
    expect(client.state).toBe('connected');
  });

  it('writes commands without waiting for replies, and gives each its own reply, in order', async () => {
    const peer = await peerFor({ splitWrites: true });
    const { client } = clientFor(peer);
    await connected(client);
    const uuids = Array.from({ length: 20 }, () => randomUUID());
    const answers = await Promise.all(uuids.flatMap((uuid) => [client.api(`uuid_exists ${uuid}`), client.api('version')]));
    expect(answers).toEqual(uuids.flatMap(() => ['false', 'FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n']));
  });

  it('uuid_exists is true while a call rings, false after uuid_kill', async () => {
    const peer = await peerFor({ onOriginate: () => ({ outcome: 'hang' }) });
    const { client, next } = clientFor(peer);
    await connected(client);
    const uuid = randomUUID();
    const { jobUuid } = await client.bgapi(originateArgs(uuid, 'call-kill'));
    await next(channelEvent('CHANNEL_PROGRESS', uuid), 'ringing');
    await expect(client.api(`uuid_exists ${uuid}`)).resolves.toBe('true');
    await expect(client.api(`uuid_kill ${uuid}`)).resolves.toBe('+OK\n');
    const hangup = await next(channelEvent('CHANNEL_HANGUP_COMPLETE', uuid), 'hangup');
    expect(hangup.headers['Hangup-Cause']).toBe('NORMAL_CLEARING');
    expect((await next(jobEvent(jobUuid), 'job')).body).toBe('-ERR NORMAL_CLEARING\n');
    await expect(client.api(`uuid_exists ${uuid}`)).resolves.toBe('false');
    await expect(client.api(`uuid_kill ${uuid}`)).resolves.toBe('-ERR No such channel!\n');
  });

  it('the peer dials again when an origination_uuid is already in use (why the client never re-sends)', async () => {
    const peer = await peerFor({ onOriginate: () => ({ outcome: 'hang' }) });
    const { client, next } = clientFor(peer);
    await connected(client);
    const uuid = randomUUID();
    await client.bgapi(originateArgs(uuid, 'call-twice'));
    await client.bgapi(originateArgs(uuid, 'call-twice'));
    expect(peer.originates).toHaveLength(2);
    expect(peer.originates[0]!.uuid).toBe(uuid);
    expect(peer.originates[1]!.uuid).not.toBe(uuid);
    const second = await next(
      (e) => e.name === 'CHANNEL_CREATE' && e.headers['Unique-ID'] === peer.originates[1]!.uuid,
      'second channel',
    );
    expect(second.headers.variable_origination_uuid).toBe(uuid);
    expect(peer.liveChannels()).toHaveLength(2);
  });

  it('parses json events too', async () => {
    const peer = await peerFor({ onOriginate: () => ({ outcome: 'answer', hangupAfterMs: 10 }) });
    const { client, next } = clientFor(peer, { eventFormat: 'json' });
    await connected(client);
    expect(peer.commands[1]).toMatch(/^event json BACKGROUND_JOB /);
    const uuid = randomUUID();
    const { jobUuid } = await client.bgapi(originateArgs(uuid, 'call-json'));
    expect((await next(jobEvent(jobUuid), 'job')).body).toBe(`+OK ${uuid}\n`);
    const hangup = await next(channelEvent('CHANNEL_HANGUP_COMPLETE', uuid), 'hangup');
    expect(hangup.headers).toMatchObject({ 'Hangup-Cause': 'NORMAL_CLEARING', variable_tig_call_id: 'call-json' });
  });

  it('keeps reconnecting while FreeSWITCH refuses connections, then delivers injected and replayed events', async () => {
    const peer = await peerFor();
    const { client, events, next } = clientFor(peer);
    await connected(client);
    const reconnected = withTimeout(
      new Promise<void>((resolve) => {
        client.on('connected', () => resolve());
      }),
      'reconnected',
    );
    peer.refuseConnections(150);
    peer.dropConnections();
    await reconnected;
    expect(peer.commands.filter((c) => c === 'auth ClueCon')).toHaveLength(2);

    peer.emitEvent('CHANNEL_CREATE', {
      'Unique-ID': 'inbound-1',
      'Call-Direction': 'inbound',
      'Caller-Caller-ID-Number': '+4930123456',
      'Caller-Destination-Number': '+4930999',
    });
    const inbound = await next((e) => e.headers['Unique-ID'] === 'inbound-1', 'inbound call');
    expect(inbound.headers).toMatchObject({ 'Call-Direction': 'inbound', 'Caller-Caller-ID-Number': '+4930123456' });

    const before = events.length;
    const replayed = await peer.replayFixture(path.join(FIXTURES, 'loopback.jsonl'));
    expect(replayed).toBe(49);
    await next((e) => e.name === 'CHANNEL_HANGUP_COMPLETE' && e.headers['Unique-ID'] === 'c4649b7f-61b6-42ed-82c4-af35df3bbdad', 'last replayed event');
    expect(events.length - before).toBe(49);
    expect(client.state).toBe('connected');
  });
});

describe('EslClient connection handling without a peer', () => {
  it('gives up on a server that never sends auth/request (connectTimeoutMs) and keeps trying until stop()', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    onTestFinished(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    let accepted = 0;
    silent.on('connection', () => accepted++);
    const { lines, logger } = testLogger();
    const client = new EslClient({
      host: '127.0.0.1',
      port: (silent.address() as net.AddressInfo).port,
      password: 'ClueCon',
      logger,
      connectTimeoutMs: 60,
      reconnect: { initialDelayMs: 5, maxDelayMs: 10 },
    });
    onTestFinished(() => client.stop());
    client.start();
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (accepted >= 3) {
            clearInterval(check);
            resolve();
          }
        }, 10);
      }),
      'three connection attempts',
    );
    expect(client.state).not.toBe('connected');
    expect(lines.some((line) => line.msg === 'ESL connection not ready in time')).toBe(true);
    await client.stop();
    const attempts = accepted;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(accepted).toBe(attempts);
  });
});

describe('the Event Socket peer speaks like the recorded FreeSWITCH', () => {
  const serverBytes = (file: string, pick?: (data: string, index: number) => boolean) =>
    readFileSync(path.join(FIXTURES, file), 'utf8')
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line) as { dir: string; data: string })
      .filter((r) => r.dir === 'S->C')
      .map((r) => r.data)
      .filter((data, index) => pick?.(data, index) ?? true)
      .join('');

  async function rawSession(peer: EslPeer, send: string): Promise<string> {
    const socket = net.connect({ host: '127.0.0.1', port: peer.port });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(socket, 'connect');
    socket.write(send);
    await withTimeout(once(socket, 'close'), 'peer closing the session');
    return Buffer.concat(chunks).toString('utf8');
  }

  it('replies to a wrong password byte for byte as misc_badauth.jsonl', async () => {
    const peer = await peerFor();
    expect(await rawSession(peer, 'auth wrongpassword\n\n')).toBe(serverBytes('misc_badauth.jsonl'));
  });

  it('replies to auth, an unknown api command and exit byte for byte as misc.jsonl', async () => {
    const peer = await peerFor();
    const wanted = serverBytes('misc.jsonl', (data) =>
      /auth\/request|\+OK accepted|nosuchcommand|\+OK bye|disconnect-notice/.test(data),
    );
    expect(await rawSession(peer, 'auth ClueCon\n\napi nosuchcommand\n\nexit\n\n')).toBe(wanted);
  });
});
