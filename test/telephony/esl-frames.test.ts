import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EslProtocolError } from '../../src/telephony/freeswitch/esl-errors.js';
import { EslFrameParser, encodeCommand, parseEvent, type EslFrame } from '../../src/telephony/freeswitch/esl-frames.js';

// Byte-exact transcripts of a real FreeSWITCH 1.10.12 (see README.md there).
// Byte-exact transcripts of a real FreeSWITCH 1.10.12 (see test/fixtures/freeswitch-esl/README.md).
const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/freeswitch-esl');

const EXPECTED_FRAMES: Record<string, number> = {
  'extras.jsonl': 28,
  'json.jsonl': 13,
  'loopback.jsonl': 64,
  'misc.jsonl': 15,
  'misc_badauth.jsonl': 3,
  'nolisten.jsonl': 15,
  'sipp.jsonl': 12,
  'sipp_park.jsonl': 15,
};

/** Every S->C frame of a fixture file, one string per recorded frame. */
function serverFrames(file: string): string[] {
  return readFileSync(path.join(FIXTURES, file), 'utf8')
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => JSON.parse(line) as { dir: string; data: string })
    .filter((record) => record.dir === 'S->C')
    .map((record) => record.data);
}

const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.jsonl')).sort();

/** What the raw text says, found without the parser: Content-Type and, for events, Event-Name. */
function rawFacts(data: string): { contentType: string; eventName?: string } {
  const contentType = /^Content-Type: (.*)$/m.exec(data.split('\n\n')[0] ?? '')?.[1] ?? '';
  const eventName =
    contentType === 'text/event-plain'
      ? /\nEvent-Name: ([^\n]+)/.exec(`\n${data.split('\n\n')[1] ?? ''}`)?.[1]
      : contentType === 'text/event-json'
        ? /"Event-Name":"([^"]+)"/.exec(data)?.[1]
        : undefined;
  return eventName === undefined ? { contentType } : { contentType, eventName };
}

function parseAll(chunks: Buffer[]): EslFrame[] {
  const parser = new EslFrameParser();
  const frames = chunks.flatMap((chunk) => parser.push(chunk));
  expect(parser.bufferedBytes).toBe(0);
  return frames;
}

function bytesOf(file: string): Buffer {
  return Buffer.from(serverFrames(file).join(''), 'utf8');
}

function everyByte(buffer: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buffer.length; i++) chunks.push(buffer.subarray(i, i + 1));
  return chunks;
}

/** Deterministic pseudo-random chunking (mulberry32). */
function randomChunks(buffer: Buffer, seed: number, maxSize: number): Buffer[] {
  let state = seed;
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < buffer.length; ) {
    const size = 1 + Math.floor(random() * maxSize);
    chunks.push(buffer.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

function events(file: string) {
  return parseAll([bytesOf(file)])
    .map((frame) => parseEvent(frame))
    .filter((event) => event !== undefined);
}

describe('EslFrameParser on the real FreeSWITCH transcripts', () => {
  it('has all the fixture files', () => {
    expect(files).toEqual(Object.keys(EXPECTED_FRAMES).sort());
  });

  describe.each(files)('%s', (file) => {
    const frames = serverFrames(file);

    it('parses each frame pushed whole, with the right type, body size and event name', () => {
      expect(frames).toHaveLength(EXPECTED_FRAMES[file]!);
      for (const data of frames) {
        const parser = new EslFrameParser();
        const parsed = parser.push(Buffer.from(data, 'utf8'));
        expect(parsed).toHaveLength(1);
        const frame = parsed[0]!;
        const facts = rawFacts(data);
        expect(frame.headers['Content-Type']).toBe(facts.contentType);
        const length = frame.headers['Content-Length'];
        if (length === undefined) expect(frame.body).toBeUndefined();
        else expect(Buffer.byteLength(frame.body ?? '')).toBe(Number(length));
        const event = parseEvent(frame);
        if (facts.eventName) {
          expect(event?.name).toBe(facts.eventName);
          expect(event?.headers['Event-Name']).toBe(facts.eventName);
        } else {
          expect(event).toBeUndefined();
        }
      }
    });

    it('parses all frames concatenated in one buffer, byte by byte, and in random chunks identically', () => {
      const whole = frames.map((data) => new EslFrameParser().push(Buffer.from(data, 'utf8'))[0]);
      const buffer = bytesOf(file);
      expect(parseAll([buffer])).toEqual(whole);
      expect(parseAll(everyByte(buffer))).toEqual(whole);
      for (const seed of [1, 2, 3]) expect(parseAll(randomChunks(buffer, seed, 300))).toEqual(whole);
    });
  });

  it('survives a split at every single byte boundary (misc.jsonl, misc_badauth.jsonl)', () => {
    for (const file of ['misc.jsonl', 'misc_badauth.jsonl']) {
      const buffer = bytesOf(file);
      const expected = parseAll([buffer]);
      expect(expected).toHaveLength(EXPECTED_FRAMES[file]!);
      for (let at = 0; at <= buffer.length; at++) {
        const parser = new EslFrameParser();
        const got = [...parser.push(buffer.subarray(0, at)), ...parser.push(buffer.subarray(at))];
        if (got.length !== expected.length) throw new Error(`${file}: split at byte ${at} gave ${got.length} frames`);
        expect(got).toEqual(expected);
      }
    }
  });

  it('keeps the event stream order of loopback.jsonl (byte by byte)', () => {
    const names = parseAll(everyByte(bytesOf('loopback.jsonl')))
      .map((frame) => parseEvent(frame)?.name)
      .filter(Boolean);
    expect(names).toHaveLength(49);
    expect(names.slice(0, 7)).toEqual([
      'CHANNEL_CREATE',
      'CHANNEL_CREATE',
      'CHANNEL_ANSWER',
      'CHANNEL_ANSWER',
      'CHANNEL_PARK',
      'CHANNEL_PARK',
      'BACKGROUND_JOB',
    ]);
  });
});

describe('parseEvent', () => {
  it('extracts BACKGROUND_JOB results in plain format', () => {
    const jobs = events('loopback.jsonl').filter((e) => e.name === 'BACKGROUND_JOB');
    expect(jobs.map((e) => [e.headers['Job-UUID'], e.body])).toEqual([
      ['2a68566c-46f3-46a7-9dad-c863eff0e220', '+OK 39679f75-2796-41d0-8118-331b7dfe3342\n'],
      ['614aa2de-6f4f-4a35-bd03-04d32e7da56a', '-ERR NO_ROUTE_DESTINATION\n'],
      ['7f09d26b-aefb-4a0c-a81b-87a6857a2932', '-ERR USER_BUSY\n'],
      ['56f4e7f3-4c2c-4b8d-a734-9e7b9f095b98', '-ERR NO_ANSWER\n'],
    ]);
    expect(jobs[0]!.headers['Job-Command']).toBe('originate');
    expect(jobs[0]!.headers['Job-Command-Arg']).toBe('loopback/1000/default &park');

    const nolisten = events('nolisten.jsonl').filter((e) => e.name === 'BACKGROUND_JOB');
    expect(nolisten.map((e) => e.body)).toEqual(['-ERR NORMAL_TEMPORARY_FAILURE\n', '-ERR NORMAL_TEMPORARY_FAILURE\n']);

    const [status] = events('misc.jsonl').filter((e) => e.name === 'BACKGROUND_JOB');
    expect(status!.headers['Job-Command']).toBe('status');
    expect(status!.body).toMatch(/^UP 0 years/);
    expect(Buffer.byteLength(status!.body!)).toBe(338);
    expect(status!.body).toContain('FreeSWITCH (Version 1.10.12-release  64bit) is ready\n');
  });

  it('extracts BACKGROUND_JOB results in json format (_body), values not URL-decoded', () => {
    const all = events('json.jsonl');
    const jobs = all.filter((e) => e.name === 'BACKGROUND_JOB');
    expect(jobs.map((e) => [e.headers['Job-UUID'], e.body])).toEqual([
      ['c686594a-145f-414a-a8e8-e7276def4f6a', '+OK c71e3906-3155-4536-a8be-b919385d06b6\n'],
      ['5a460dfb-a312-4d91-9957-244d82b743d4', '-ERR NO_ROUTE_DESTINATION\n'],
    ]);
    expect(jobs[0]!.headers._body).toBeUndefined();
    expect(jobs[0]!.headers['FreeSWITCH-IPv6']).toBe('fd00::2');
    expect(jobs[0]!.headers['Event-Date-GMT']).toBe('Fri, 27 Nov 2026 09:40:59 GMT');
    const hangups = all.filter((e) => e.name === 'CHANNEL_HANGUP_COMPLETE');
    expect(hangups.map((e) => e.headers['Hangup-Cause'])).toEqual(['NORMAL_CLEARING', 'NORMAL_CLEARING', 'NO_ROUTE_DESTINATION', 'NO_ROUTE_DESTINATION']);

    const synthetic = parseEvent({
      headers: { 'Content-Type': 'text/event-json' },
      body: JSON.stringify({ 'Event-Name': 'CUSTOM', 'Caller-Caller-ID-Name': 'A%20B', Multi: ['first', 'second'], Num: 7 }),
    });
    expect(synthetic?.headers).toMatchObject({ 'Caller-Caller-ID-Name': 'A%20B', Multi: 'first', Num: '7' });
    expect(parseEvent({ headers: { 'Content-Type': 'text/event-json' }, body: '{not json' })).toBeUndefined();
  });

  it('BACKGROUND_JOB comes after CHANNEL_HANGUP_COMPLETE for one call and before it for the next (nolisten.jsonl)', () => {
    const order = events('nolisten.jsonl')
      .filter((e) => e.name === 'BACKGROUND_JOB' || e.name === 'CHANNEL_HANGUP_COMPLETE')
      .map((e) => e.name);
    expect(order).toEqual(['CHANNEL_HANGUP_COMPLETE', 'BACKGROUND_JOB', 'BACKGROUND_JOB', 'CHANNEL_HANGUP_COMPLETE']);
  });

  it('keeps one Hangup-Cause of the two that CHANNEL_HANGUP_COMPLETE carries (the first)', () => {
    const raw = serverFrames('loopback.jsonl').find((d) => d.includes('Event-Name: CHANNEL_HANGUP_COMPLETE'))!;
    expect(raw.match(/\nHangup-Cause: /g)).toHaveLength(2);
    const [frame] = new EslFrameParser().push(Buffer.from(raw));
    expect(parseEvent(frame!)?.headers['Hangup-Cause']).toBe('NORMAL_CLEARING');

    const body = 'Event-Name: CHANNEL_HANGUP_COMPLETE\nHangup-Cause: USER_BUSY\nUnique-ID: u1\nHangup-Cause: NORMAL_CLEARING\n\n';
    const event = parseEvent({ headers: { 'Content-Type': 'text/event-plain', 'Content-Length': String(body.length) }, body });
    expect(event?.headers['Hangup-Cause']).toBe('USER_BUSY');
    expect(event?.body).toBeUndefined();
  });

  it('URL-decodes plain event values, and survives malformed escapes', () => {
    const failure = events('nolisten.jsonl').find((e) => e.name === 'CHANNEL_HANGUP_COMPLETE')!;
    expect(failure.headers).toMatchObject({
      'Channel-Name': 'sofia/lo/1000@127.0.0.1:5099',
      'FreeSWITCH-IPv6': 'fd00::2',
      'Event-Date-GMT': 'Fri, 27 Nov 2026 09:40:55 GMT',
      'Hangup-Cause': 'NORMAL_TEMPORARY_FAILURE',
      variable_sip_term_status: '503',
      variable_sip_invite_failure_phrase: 'Service Unavailable',
      variable_proto_specific_hangup_cause: 'sip:503',
      variable_hangup_cause_q850: '41',
    });
    expect(failure.headers.variable_rtp_local_sdp_str).toMatch(/^v=0\r\no=FreeSWITCH /);

    const body = 'Event-Name: CUSTOM\nGood: a%20b%2Cc\nBad: 100%ZZ%20\nTruncated: %E2%82\nPlus: 1+1\n\n';
    const event = parseEvent({ headers: { 'Content-Type': 'text/event-plain' }, body });
    expect(event?.headers).toMatchObject({ Good: 'a b,c', Bad: '100%ZZ%20', Truncated: '%E2%82', Plus: '1+1' });
  });

  it('returns undefined for frames that are not events', () => {
    const [reply] = new EslFrameParser().push(Buffer.from('Content-Type: command/reply\nReply-Text: +OK accepted\n\n'));
    expect(reply).toEqual({ headers: { 'Content-Type': 'command/reply', 'Reply-Text': '+OK accepted' } });
    expect(parseEvent(reply!)).toBeUndefined();
    expect(parseEvent({ headers: { 'Content-Type': 'text/event-plain' }, body: 'No-Name: x\n\n' })).toBeUndefined();
  });
});

describe('byte accuracy', () => {
  const text = 'Grüße aus Köln — Rauchmelder 🔥 im Flur\n';

  it('counts Content-Length in bytes and reassembles a multibyte body split mid-character', () => {
    const api = `Content-Type: api/response\nContent-Length: ${Buffer.byteLength(text)}\n\n${text}`;
    const next = 'Content-Type: command/reply\nReply-Text: +OK\n\n';
    const buffer = Buffer.from(api + next, 'utf8');
    expect(Buffer.byteLength(text)).toBeGreaterThan(text.length);
    const expected = [
      { headers: { 'Content-Type': 'api/response', 'Content-Length': String(Buffer.byteLength(text)) }, body: text },
      { headers: { 'Content-Type': 'command/reply', 'Reply-Text': '+OK' } },
    ];
    for (let at = 0; at <= buffer.length; at++) {
      const parser = new EslFrameParser();
      expect([...parser.push(buffer.subarray(0, at)), ...parser.push(buffer.subarray(at))]).toEqual(expected);
    }
    expect(parseAll(everyByte(buffer))).toEqual(expected);
  });

  it('extracts a multibyte BACKGROUND_JOB body by its inner byte Content-Length', () => {
    const inner = `Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nContent-Length: ${Buffer.byteLength(text)}\n\n${text}`;
    const frame = `Content-Length: ${Buffer.byteLength(inner)}\nContent-Type: text/event-plain\n\n${inner}`;
    const frames = parseAll(everyByte(Buffer.from(frame + frame, 'utf8')));
    expect(frames).toHaveLength(2);
    for (const parsed of frames) expect(parseEvent(parsed)).toEqual({ name: 'BACKGROUND_JOB', headers: expect.objectContaining({ 'Job-UUID': 'j1' }), body: text });
  });

  it('tolerates stray blank lines between frames, refuses a bad Content-Length', () => {
    expect(parseAll([Buffer.from('\n\nContent-Type: command/reply\nReply-Text: +OK\n\n\n')])).toHaveLength(1);
    expect(() => new EslFrameParser().push(Buffer.from('Content-Type: api/response\nContent-Length: -3\n\nabc'))).toThrow(EslProtocolError);
    expect(() => new EslFrameParser().push(Buffer.from('Content-Type: api/response\nContent-Length: 12abc\n\n'))).toThrow(EslProtocolError);
  });
});

describe('encodeCommand', () => {
  it('frames a command and its headers', () => {
    expect(encodeCommand('api status')).toBe('api status\n\n');
    expect(encodeCommand('bgapi originate {tig_call_id=c1}sofia/gateway/gw/+4930123 &park()', { 'Job-UUID': 'j-1' })).toBe(
      'bgapi originate {tig_call_id=c1}sofia/gateway/gw/+4930123 &park()\nJob-UUID: j-1\n\n',
    );
  });

  it('refuses line breaks that would inject a second command', () => {
    const attempts: Array<() => string> = [
      () => encodeCommand('api uuid_kill x\n\nbgapi originate sofia/gateway/gw/1 &park'),
      () => encodeCommand('api status\n'),
      () => encodeCommand('api status\r\nexit'),
      () => encodeCommand('api status\rexit'),
      () => encodeCommand('bgapi status', { 'Job-UUID': 'a\n\napi originate x' }),
      () => encodeCommand('bgapi status', { 'Job-UUID': 'a\r' }),
      () => encodeCommand('bgapi status', { 'Job\nUUID': 'a' }),
      () => encodeCommand('bgapi status', { 'Job-UUID:': 'a' }),
      () => encodeCommand('   '),
    ];
    for (const attempt of attempts) expect(attempt).toThrow(EslProtocolError);
  });
});
