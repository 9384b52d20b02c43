/**
 * The FreeSWITCH adapter against a real FreeSWITCH (1.10, vanilla config is enough), only when
 * TEST_FREESWITCH_ESL is set, e.g.
 *
 *   TEST_FREESWITCH_ESL=tcp://127.0.0.1:8021 [TEST_FREESWITCH_PASSWORD=ClueCon] npx vitest run test/telephony/real-freeswitch.test.ts
 *
 * Which call to place on a switch we know nothing about? It must end on its own, ring nobody and
 * need no dialplan, while our dial string is `<template with {number}>` and the number strict
 * E.164. The `error/<cause>` endpoint of mod_dptools (always loaded) fits: it creates no channel
 * and fails the originate with the cause named by its destination; a destination that names no
 * cause (our `+1...` number) fails with DESTINATION_OUT_OF_ORDER (error_outgoing_channel in
 * mod_dptools.c). So template `error/{number}` gives `bgapi originate {...}error/+1... &park()`
 * → BACKGROUND_JOB `-ERR DESTINATION_OUT_OF_ORDER`, and no CHANNEL_* event: the adapter must end
 * the call from the job result after its grace. That exercises the whole placement path (command
 * accepted by the real parser, Job-UUID = call id) and the cause mapping.
 *
 * A second call goes through `loopback/{number}/default` with an E.164 number no vanilla extension
 * matches: FreeSWITCH creates the `-a` and `-b` loopback legs (both carrying our tig_call_id) and
 * ends them with NO_ROUTE_DESTINATION on the vanilla dialplan (the recorded loopback.jsonl shows
 * the same for 9999). Its cause depends on the dialplan, so only "ends once, with a cause" is
 * asserted; should a dialplan route it somewhere that answers, the call is hung up after 10 s.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EslClient } from '../../src/telephony/freeswitch/esl-client.js';
import { FreeSwitchTelephony, type FreeSwitchTelephonyOptions } from '../../src/telephony/freeswitch/freeswitch-telephony.js';
import type { CallProgress, CallRequest } from '../../src/telephony/telephony.js';

const ESL_URL = process.env.TEST_FREESWITCH_ESL;
const PASSWORD = process.env.TEST_FREESWITCH_PASSWORD ?? 'ClueCon';

if (!ESL_URL) console.warn('real FreeSWITCH suite skipped: set TEST_FREESWITCH_ESL=tcp://127.0.0.1:8021 to run it');

function endpoint(): { host: string; port: number } {
  const match = /^tcp:\/\/([^\s/:]+):([0-9]{1,5})$/.exec(ESL_URL ?? '');
  if (!match) throw new Error(`TEST_FREESWITCH_ESL must look like tcp://127.0.0.1:8021, got ${ESL_URL}`);
  return { host: match[1]!, port: Number(match[2]) };
}

const silentLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

async function waitFor(predicate: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function telephonyFor(overrides: Partial<FreeSwitchTelephonyOptions> = {}) {
  const telephony = new FreeSwitchTelephony({
    ...endpoint(),
    password: PASSWORD,
    dialStringTemplate: 'error/{number}',
    ttsEngine: 'flite',
    ttsVoice: 'kal',
    logger: silentLogger,
    commandTimeoutMs: 5000,
    connectTimeoutMs: 5000,
    startWaitMs: 6000,
    jobFailureGraceMs: 500,
    ...overrides,
  });
  const progress: CallProgress[] = [];
  telephony.onProgress((p) => progress.push(p));
  onTestFinished(() => telephony.stop());
  await telephony.start();
  return { telephony, progress };
}

function callRequest(to: string): CallRequest {
  return {
    callId: randomUUID(),
    to,
    callerId: '+4930901820',
    ringTimeoutS: 10,
    message: 'This is a test of the smoke alarm gateway.',
    requireAck: false,
    correlationId: `real-fs-${randomUUID()}`,
  };
}

describe.skipIf(!ESL_URL)('FreeSwitchTelephony against a real FreeSWITCH', () => {
  it('connects and authenticates; api status answers', async () => {
    const { telephony } = await telephonyFor();
    expect(telephony.status()).toEqual({ ok: true, detail: 'FreeSWITCH Event Socket connected' });

    const client = new EslClient({ ...endpoint(), password: PASSWORD, logger: silentLogger });
    onTestFinished(() => client.stop());
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no connection within 6 s')), 6000);
      client.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      client.start();
    });
    const status = await client.api('status');
    expect(status).toMatch(/^UP /);
    expect(status).toMatch(/FreeSWITCH \(Version 1\.\d+\.\d+.*\) is ready/);
  });

  it('a wrong password leaves status() not ok', async () => {
    const { telephony } = await telephonyFor({ password: `${PASSWORD}-wrong`, reconnect: { initialDelayMs: 2000, maxDelayMs: 5000 } });
    expect(telephony.status().ok).toBe(false);
    expect(telephony.status().detail).toMatch(/password/);
  });

  it('callExists of a random uuid is false; hangup of it is fine', async () => {
    const { telephony } = await telephonyFor();
    const id = randomUUID();
    expect(await telephony.callExists(id)).toBe(false);
    await expect(telephony.hangup(id)).resolves.toBeUndefined();
  });

  it('an originate to error/{number} ends once with DESTINATION_OUT_OF_ORDER, from the job result', async () => {
    const { telephony, progress } = await telephonyFor();
    const request = callRequest('+19995550100');
    await telephony.placeCall(request);
    await waitFor(() => progress.some((p) => p.callId === request.callId && p.kind === 'ended'), 'ended', 10_000);
    const mine = progress.filter((p) => p.callId === request.callId);
    expect(mine).toEqual([
      { callId: request.callId, kind: 'ended', at: expect.any(Date), cause: 'DESTINATION_OUT_OF_ORDER', answered: false, acknowledged: false },
    ]);
    expect(await telephony.callExists(request.callId)).toBe(false);
  });

  it('a loopback call to an unrouted number ends once with a cause, its -b leg ignored', async () => {
    const { telephony, progress } = await telephonyFor({ dialStringTemplate: 'loopback/{number}/default' });
    const request = callRequest('+99912345678901');
    await telephony.placeCall(request);
    const ended = () => progress.some((p) => p.callId === request.callId && p.kind === 'ended');
    try {
      await waitFor(ended, 'ended', 10_000);
    } catch {
      await telephony.hangup(request.callId);
      await waitFor(ended, 'ended after hangup', 10_000);
    }
    // Let any late event (the -b leg's hangup, the job result) arrive before counting.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const endings = progress.filter((p) => p.callId === request.callId && p.kind === 'ended');
    expect(endings).toHaveLength(1);
    expect(endings[0]).toMatchObject({ cause: expect.stringMatching(/^[A-Z][A-Z0-9_]+$/) });
    expect(progress.filter((p) => p.callId !== request.callId)).toEqual([]);
    expect(await telephony.callExists(request.callId)).toBe(false);
  });
});
