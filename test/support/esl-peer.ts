/**
 * The test suite's FreeSWITCH stand-in: a real TCP server on 127.0.0.1 speaking mod_event_socket's
 * text protocol byte for byte like the transcripts in test/fixtures/freeswitch-esl/
 * (FreeSWITCH 1.10.12): same frame layout and header order, plain bodies URL-encoded the way
 * switch_url_encode does, CHANNEL_HANGUP_COMPLETE carrying Hangup-Cause twice, `event json`,
 * BACKGROUND_JOB with its own Content-Length, the disconnect notice, the bad-password sequence.
 *
 * It keeps a live-channel table shared by all connections (as FreeSWITCH does: calls survive an
 * Event Socket disconnect and later connections see their events), plays each originate per a
 * CallScript, and can misbehave on purpose (drop the connection instead of replying, or never
 * reply) to test what a client does when a reply is lost.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';

export type HangupCause =
  | 'NORMAL_CLEARING'
  | 'USER_BUSY'
  | 'NO_ANSWER'
  | 'NO_USER_RESPONSE'
  | 'CALL_REJECTED'
  | 'NO_ROUTE_DESTINATION'
  | 'NORMAL_TEMPORARY_FAILURE'
  | 'UNALLOCATED_NUMBER'
  | 'SUBSCRIBER_ABSENT'
  | 'DESTINATION_OUT_OF_ORDER'
  | 'INVALID_NUMBER_FORMAT'
  | 'RECOVERY_ON_TIMER_EXPIRE'
  | 'ORIGINATOR_CANCEL'
  | 'MEDIA_TIMEOUT'
  | 'ALLOTTED_TIMEOUT'
  | (string & {});

/** What a dialled number does. Delays are in ms from the moment the originate arrives. */
export type CallScript =
  | {
      outcome: 'answer';
      /** CHANNEL_PROGRESS (ringing) at this delay; default 5. */
      ringMs?: number;
      /** CHANNEL_ANSWER (then BACKGROUND_JOB `+OK <uuid>`) at this delay; default 15. */
      answerAfterMs?: number;
      /** Digits pressed after the answer, one DTMF event each. */
      dtmf?: string;
      /** First digit this long after the answer, then one per interval; default 10. */
      dtmfIntervalMs?: number;
      /** Hang up this long after the answer; absent: the call stays up until uuid_kill. */
      hangupAfterMs?: number;
      hangupCause?: HangupCause;
    }
  | {
      outcome: 'fail';
      cause: HangupCause;
      /** SIP status of the failure: fills variable_sip_term_status and friends. */
      sipCode?: number;
      /** Hang-up at this delay; default 15. */
      afterMs?: number;
      /** Emit CHANNEL_PROGRESS (ringing) first; default: only for NO_ANSWER / NO_USER_RESPONSE. */
      ring?: boolean;
      /** BACKGROUND_JOB before CHANNEL_HANGUP_COMPLETE (FreeSWITCH does either); default false. */
      jobBeforeHangupComplete?: boolean;
    }
  | {
      /** Rings and never answers until uuid_kill. */
      outcome: 'hang';
      ringMs?: number;
    };

export interface OriginateRequest {
  /** The originate arguments as received (after `originate `). */
  raw: string;
  /** The `{k=v,...}` channel variables, quotes removed. */
  variables: Record<string, string>;
  dialString: string;
  /** What follows the dial string: `&park()`, `&playback(...)`, `1000 XML default`... */
  application: string;
  /** bgapi Job-UUID ('' for a synchronous `api originate`). */
  jobUuid: string;
  /** The channel's Unique-ID: origination_uuid, or a fresh one if absent or already in use. */
  uuid: string;
}

export interface EslPeerOptions {
  password?: string;
  /** Write every frame in small random chunks, yielding between them, to test reassembly. */
  splitWrites?: boolean;
  onOriginate?: (call: OriginateRequest) => CallScript;
}

export type MisbehaviourAction =
  /** Run the command (an originate does dial) but close the connection instead of replying. */
  | 'drop'
  /**
   * Run the command but never reply: a hung FreeSWITCH. Replies come in command order, so nothing
   * after it on that connection is answered either (its events still flow).
   */
  | 'silence';

export interface EslPeer {
  readonly port: number;
  /** Every command block received (command line plus header lines, without the blank line), in order. */
  readonly commands: string[];
  readonly originates: OriginateRequest[];
  /** Unique-IDs of the channels up right now. */
  liveChannels(): string[];
  /** Connections that passed `auth`. */
  authenticatedConnections(): number;
  /** Destroys every client socket (calls stay up, as in FreeSWITCH). */
  dropConnections(): void;
  /** New connections are accepted and closed at once, for `ms` milliseconds. */
  refuseConnections(ms: number): void;
  pause(): void;
  resume(): void;
  /** The next command matching `pattern` (prefix or RegExp) is handled with `action`. */
  misbehaveOnNext(pattern: string | RegExp, action: MisbehaviourAction): void;
  /**
   * The callee presses `digit` on a live channel: a DTMF event, and, as play_and_get_digits does,
   * the digit kept in the variable the last prompt named (later lifecycle events and uuid_getvar
   * carry it). False when the channel is gone.
   */
  pressDigit(uuid: string, digit: string): boolean;
  /** Sends an event (base headers + `headers`) to every connection subscribed to it. */
  emitEvent(name: string, headers?: Record<string, string>, body?: string): void;
  /** Writes a fixture file's S->C frames verbatim to every authenticated connection (default: only event frames). */
  replayFixture(path: string, options?: { all?: boolean }): Promise<number>;
  close(): Promise<void>;
}

const DISCONNECT_NOTICE =
  'Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';

const CALLING: Record<string, [file: string, func: string, line: number]> = {
  CHANNEL_CREATE: ['switch_core_state_machine.c', 'switch_core_session_run', 626],
  CHANNEL_PROGRESS: ['switch_channel.c', 'switch_channel_perform_mark_ring_ready_value', 3505],
  CHANNEL_PROGRESS_MEDIA: ['switch_channel.c', 'switch_channel_perform_mark_pre_answered', 3687],
  CHANNEL_ANSWER: ['switch_channel.c', 'switch_channel_perform_mark_answered', 3846],
  CHANNEL_PARK: ['switch_ivr.c', 'switch_ivr_park', 1002],
  CHANNEL_HANGUP: ['switch_channel.c', 'switch_channel_perform_hangup', 3445],
  CHANNEL_HANGUP_COMPLETE: ['switch_core_state_machine.c', 'switch_core_session_reporting_state', 943],
  BACKGROUND_JOB: ['mod_event_socket.c', 'api_exec', 1572],
  DTMF: ['switch_channel.c', 'switch_channel_dequeue_dtmf', 658],
};

const Q850: Record<string, number> = {
  UNALLOCATED_NUMBER: 1,
  NO_ROUTE_DESTINATION: 3,
  NORMAL_CLEARING: 16,
  USER_BUSY: 17,
  NO_USER_RESPONSE: 18,
  NO_ANSWER: 19,
  SUBSCRIBER_ABSENT: 20,
  CALL_REJECTED: 21,
  DESTINATION_OUT_OF_ORDER: 27,
  INVALID_NUMBER_FORMAT: 28,
  NORMAL_UNSPECIFIED: 31,
  NORMAL_TEMPORARY_FAILURE: 41,
  RECOVERY_ON_TIMER_EXPIRE: 102,
  ORIGINATOR_CANCEL: 487,
  ALLOTTED_TIMEOUT: 602,
  MEDIA_TIMEOUT: 604,
};

const STATE_NUMBER: Record<string, number> = {
  CS_INIT: 2,
  CS_ROUTING: 3,
  CS_EXECUTE: 4,
  CS_CONSUME_MEDIA: 7,
  CS_HANGUP: 10,
  CS_REPORTING: 11,
};

const SHOW_CHANNELS_HEADER =
  'uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,application,application_data,dialplan,context,read_codec,read_rate,read_bit_rate,write_codec,write_rate,write_bit_rate,secure,hostname,presence_id,presence_data,accountcode,callstate,callee_name,callee_num,callee_direction,call_uuid,sent_callee_name,sent_callee_num,initial_cid_name,initial_cid_num,initial_ip_addr,initial_dest,initial_dialplan,initial_context';

const URL_UNSAFE = new Set(' "#%&+:;<=>?@[\\]^`{|}'.split('').map((c) => c.charCodeAt(0)));

/** switch_url_encode: control bytes, non-ASCII bytes and ` "#%&+:;<=>?@[\]^`{|}` become %XX. */
export function freeswitchUrlEncode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    if (byte < 0x20 || byte > 0x7e || URL_UNSAFE.has(byte)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return out;
}

type Pairs = Array<[string, string]>;

/** A `text/event-plain` frame exactly as mod_event_socket writes it. */
export function plainEventFrame(pairs: Pairs, body?: string): string {
  let inner = '';
  for (const [name, value] of pairs) inner += `${name}: ${freeswitchUrlEncode(value)}\n`;
  if (body !== undefined) inner += `Content-Length: ${Buffer.byteLength(body)}\n`;
  inner += '\n';
  if (body !== undefined) inner += body;
  return `Content-Length: ${Buffer.byteLength(inner)}\nContent-Type: text/event-plain\n\n${inner}`;
}

/** A `text/event-json` frame; duplicated headers are kept, as FreeSWITCH's serializer does. */
export function jsonEventFrame(pairs: Pairs, body?: string): string {
  const members = pairs.map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value)}`);
  if (body !== undefined) {
    members.push(`"Content-Length":${JSON.stringify(String(Buffer.byteLength(body)))}`);
    members.push(`"_body":${JSON.stringify(body)}`);
  }
  const json = `{${members.join(',')}}`;
  return `Content-Length: ${Buffer.byteLength(json)}\nContent-Type: text/event-json\n\n${json}`;
}

export function commandReplyFrame(replyText: string, extra: Pairs = []): string {
  return `Content-Type: command/reply\nReply-Text: ${replyText}\n${extra.map(([k, v]) => `${k}: ${v}\n`).join('')}\n`;
}

export function apiResponseFrame(body: string): string {
  return `Content-Type: api/response\nContent-Length: ${Buffer.byteLength(body)}\n\n${body}`;
}

/** `{a=b,c='x,y'}dial &app(args)` → parts; also `[..]` per-leg variables (merged). */
export function parseOriginateArgs(raw: string): { variables: Record<string, string>; dialString: string; application: string } {
  const variables: Record<string, string> = {};
  let rest = raw.trim();
  while (rest.startsWith('{') || rest.startsWith('[') || rest.startsWith('<')) {
    const close = rest[0] === '{' ? '}' : rest[0] === '[' ? ']' : '>';
    let quoted = false;
    let end = -1;
    for (let i = 1; i < rest.length; i++) {
      const c = rest[i];
      if (c === "'") quoted = !quoted;
      else if (c === close && !quoted) {
        end = i;
        break;
      }
    }
    if (end < 0) break;
    for (const item of splitUnquoted(rest.slice(1, end), ',')) {
      const eq = item.indexOf('=');
      if (eq <= 0) continue;
      let value = item.slice(eq + 1);
      if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) value = value.slice(1, -1);
      variables[item.slice(0, eq).trim()] = value;
    }
    rest = rest.slice(end + 1);
  }
  const space = rest.search(/\s/);
  const dialString = space < 0 ? rest : rest.slice(0, space);
  const application = space < 0 ? '' : rest.slice(space).trim();
  return { variables, dialString, application };
}

function splitUnquoted(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const c of text) {
    if (c === "'") quoted = !quoted;
    if (c === separator && !quoted) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  if (current.length > 0) parts.push(current);
  return parts;
}

/** The number part of a dial string: sofia/gateway/gw/+4930… → +4930…, sofia/lo/1000@host → 1000, loopback/1000/default → 1000. */
function destinationOf(dialString: string): string {
  const segments = dialString.split('/');
  let pick: string;
  if (segments[0] === 'loopback' || segments[0] === 'user') pick = segments[1] ?? '';
  else if (segments[0] === 'sofia' && segments[1] === 'gateway') pick = segments[3] ?? '';
  else pick = segments[segments.length - 1] ?? '';
  return pick.replace(/^sips?:/, '').split('@')[0] ?? pick;
}

function eventDateLocal(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

interface PeerConnection {
  readonly socket: net.Socket;
  authed: boolean;
  format: 'plain' | 'json' | undefined;
  events: Set<string>;
  all: boolean;
  inbox: string;
  /** Commands are handled one after the other, like mod_event_socket's listener thread. */
  handling: Promise<void>;
  writing: Promise<void>;
  /** A command was silenced: no reply is written on this connection any more. */
  hung: boolean;
}

interface PendingJob {
  jobUuid: string;
  /** Send the result: BACKGROUND_JOB for bgapi, api/response for a synchronous api originate. */
  finish: (result: string) => void;
  done: boolean;
}

interface PeerChannel {
  uuid: string;
  variables: Record<string, string>;
  dialString: string;
  destination: string;
  application: string;
  sessionId: number;
  state: string;
  callState: string;
  answerState: string;
  createdUs: number;
  progressUs: number;
  answeredUs: number;
  hangupUs: number;
  hangupCause: string | undefined;
  sipCode: number | undefined;
  timers: Set<NodeJS.Timeout>;
  job: PendingJob | undefined;
  /** The failure script's choice of BACKGROUND_JOB placement. */
  jobBeforeHangupComplete: boolean;
  /** The variable the last play_and_get_digits sent to this channel stores its digit in. */
  digitsVariable?: string | undefined;
}

const STATUS_TEMPLATE = (sessions: number, live: number) =>
  `UP 0 years, 0 days, 0 hours, 0 minutes, 1 second, 633 milliseconds, 105 microseconds\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\n${sessions} session(s) since startup\n${live} session(s) - peak ${live}, last 5min ${live} \n0 session(s) per Sec out of max 100, peak 0, last 5min 0 \n1000 session(s) max\nmin idle cpu 0.00/100.00\nCurrent Stack Size/Max 240K/8192K\n`;

export async function startEslPeer(options: EslPeerOptions = {}): Promise<EslPeer> {
  const password = options.password ?? 'ClueCon';
  const splitWrites = options.splitWrites ?? false;
  const onOriginate = options.onOriginate ?? ((): CallScript => ({ outcome: 'answer' }));
  const coreUuid = randomUUID();
  const connections = new Set<PeerConnection>();
  const channels = new Map<string, PeerChannel>();
  const peerTimers = new Set<NodeJS.Timeout>();
  const commands: string[] = [];
  const originates: OriginateRequest[] = [];
  const misbehaviours: Array<{ matches: (command: string) => boolean; action: MisbehaviourAction }> = [];
  let sequence = 1000;
  let sessions = 0;
  let paused = false;
  let closed = false;

  const later = (ms: number, fn: () => void, channel?: PeerChannel): void => {
    const timer = setTimeout(() => {
      peerTimers.delete(timer);
      channel?.timers.delete(timer);
      if (!closed) fn();
    }, ms);
    peerTimers.add(timer);
    channel?.timers.add(timer);
  };

  const write = (conn: PeerConnection, data: string): void => {
    if (conn.socket.destroyed) return;
    if (!splitWrites) {
      conn.socket.write(data);
      return;
    }
    const bytes = Buffer.from(data, 'utf8');
    conn.writing = conn.writing.then(async () => {
      let offset = 0;
      while (offset < bytes.length) {
        if (conn.socket.destroyed) return;
        const size = 1 + Math.floor(Math.random() * 40);
        conn.socket.write(bytes.subarray(offset, offset + size));
        offset += size;
        await nextTurn();
      }
    });
  };

  /** Ends the connection once everything queued is written (the disconnect-notice path). */
  const endAfterWrites = (conn: PeerConnection): void => {
    void conn.writing.then(() => conn.socket.end());
  };

  const baseHeaders = (name: string): Pairs => {
    const now = new Date();
    const [file, func, line] = CALLING[name] ?? ['mod_event_socket.c', 'event_handler', 0];
    return [
      ['Event-Name', name],
      ['Core-UUID', coreUuid],
      ['FreeSWITCH-Hostname', 'esl-peer'],
      ['FreeSWITCH-Switchname', 'esl-peer'],
      ['FreeSWITCH-IPv4', '127.0.0.1'],
      ['FreeSWITCH-IPv6', '::1'],
      ['Event-Date-Local', eventDateLocal(now)],
      ['Event-Date-GMT', now.toUTCString()],
      ['Event-Date-Timestamp', String(now.getTime() * 1000)],
      ['Event-Calling-File', file],
      ['Event-Calling-Function', func],
      ['Event-Calling-Line-Number', String(line)],
      ['Event-Sequence', String(++sequence)],
    ];
  };

  const broadcast = (name: string, pairs: Pairs, body?: string): void => {
    let plain: string | undefined;
    let json: string | undefined;
    for (const conn of connections) {
      if (!conn.authed || !conn.format || !(conn.all || conn.events.has(name))) continue;
      if (conn.format === 'plain') write(conn, (plain ??= plainEventFrame(pairs, body)));
      else write(conn, (json ??= jsonEventFrame(pairs, body)));
    }
  };

  // ---- channels ---------------------------------------------------------------------------

  const channelPairs = (channel: PeerChannel, name: string): Pairs => {
    const pairs = baseHeaders(name);
    const hungUp = channel.hangupCause !== undefined;
    if (name === 'CHANNEL_HANGUP_COMPLETE') pairs.push(['Hangup-Cause', channel.hangupCause ?? 'NORMAL_CLEARING']);
    const callerIdNumber = channel.variables.origination_caller_id_number ?? '0000000000';
    pairs.push(
      ['Channel-State', channel.state],
      ['Channel-Call-State', channel.callState],
      ['Channel-State-Number', String(STATE_NUMBER[channel.state] ?? 0)],
      ['Channel-Name', channel.dialString],
      ['Unique-ID', channel.uuid],
      ['Call-Direction', 'outbound'],
      ['Presence-Call-Direction', 'outbound'],
      ['Channel-HIT-Dialplan', 'false'],
      ['Channel-Call-UUID', channel.uuid],
      ['Answer-State', channel.answerState],
    );
    if (hungUp) pairs.push(['Hangup-Cause', channel.hangupCause ?? 'NORMAL_CLEARING']);
    if (channel.answeredUs) {
      pairs.push(
        ['Channel-Read-Codec-Name', 'PCMU'],
        ['Channel-Read-Codec-Rate', '8000'],
        ['Channel-Read-Codec-Bit-Rate', '64000'],
        ['Channel-Write-Codec-Name', 'PCMU'],
        ['Channel-Write-Codec-Rate', '8000'],
        ['Channel-Write-Codec-Bit-Rate', '64000'],
      );
    }
    pairs.push(['Caller-Direction', 'outbound'], ['Caller-Logical-Direction', 'outbound']);
    if (channel.variables.origination_caller_id_name) pairs.push(['Caller-Caller-ID-Name', channel.variables.origination_caller_id_name]);
    pairs.push(
      ['Caller-Caller-ID-Number', callerIdNumber],
      ['Caller-Orig-Caller-ID-Number', callerIdNumber],
      ['Caller-Callee-ID-Name', 'Outbound Call'],
      ['Caller-Callee-ID-Number', channel.destination],
      ['Caller-ANI', callerIdNumber],
      ['Caller-Destination-Number', channel.destination],
      ['Caller-Unique-ID', channel.uuid],
      ['Caller-Source', 'src/switch_ivr_originate.c'],
      ['Caller-Context', 'default'],
      ['Caller-Channel-Name', channel.dialString],
      ['Caller-Profile-Index', '1'],
      ['Caller-Profile-Created-Time', String(channel.createdUs)],
      ['Caller-Channel-Created-Time', String(channel.createdUs)],
      ['Caller-Channel-Answered-Time', String(channel.answeredUs)],
      ['Caller-Channel-Progress-Time', String(channel.progressUs)],
      ['Caller-Channel-Progress-Media-Time', '0'],
      ['Caller-Channel-Hangup-Time', String(channel.hangupUs)],
      ['Caller-Channel-Transfer-Time', '0'],
      ['Caller-Channel-Resurrect-Time', '0'],
      ['Caller-Channel-Bridged-Time', '0'],
      ['Caller-Channel-Last-Hold', '0'],
      ['Caller-Channel-Hold-Accum', '0'],
      ['Caller-Screen-Bit', 'true'],
      ['Caller-Privacy-Hide-Name', 'false'],
      ['Caller-Privacy-Hide-Number', 'false'],
    );
    // switch_channel_event_set_extended_data: variables only on channel lifecycle events (not DTMF)
    // unless verbose_events is set on the channel.
    if (name !== 'DTMF' || channel.variables.verbose_events === 'true') {
      pairs.push(
        ['variable_direction', 'outbound'],
        ['variable_is_outbound', 'true'],
        ['variable_uuid', channel.uuid],
        ['variable_call_uuid', channel.uuid],
        ['variable_session_id', String(channel.sessionId)],
        ['variable_channel_name', channel.dialString],
      );
      for (const [key, value] of Object.entries(channel.variables)) pairs.push([`variable_${key}`, value]);
      pairs.push(['variable_originate_early_media', 'true'], ['variable_originate_endpoint', channel.dialString.split('/')[0] ?? '']);
      if (channel.answeredUs) pairs.push(['variable_endpoint_disposition', 'ANSWER']);
      if (hungUp) {
        const cause = channel.hangupCause ?? 'NORMAL_CLEARING';
        if (channel.sipCode !== undefined) {
          pairs.push(
            ['variable_sip_hangup_disposition', 'recv_refuse'],
            ['variable_sip_invite_failure_status', String(channel.sipCode)],
            ['variable_sip_term_status', String(channel.sipCode)],
            ['variable_proto_specific_hangup_cause', `sip:${channel.sipCode}`],
          );
        }
        pairs.push(['variable_hangup_cause', cause], ['variable_hangup_cause_q850', String(Q850[cause] ?? 16)]);
        if (name === 'CHANNEL_HANGUP_COMPLETE') {
          const seconds = (us: number) => String(Math.floor(us / 1_000_000));
          pairs.push(
            ['variable_start_epoch', seconds(channel.createdUs)],
            ['variable_answer_epoch', seconds(channel.answeredUs)],
            ['variable_end_epoch', seconds(channel.hangupUs)],
            ['variable_duration', seconds(channel.hangupUs - channel.createdUs)],
            ['variable_billsec', channel.answeredUs ? seconds(channel.hangupUs - channel.answeredUs) : '0'],
            ['variable_billmsec', channel.answeredUs ? String(Math.floor((channel.hangupUs - channel.answeredUs) / 1000)) : '0'],
          );
        }
      }
    }
    return pairs;
  };

  const emitChannel = (channel: PeerChannel, name: string, extra: Pairs = []): void => {
    broadcast(name, [...channelPairs(channel, name), ...extra]);
  };

  const finishJob = (channel: PeerChannel, result: string): void => {
    const job = channel.job;
    if (!job || job.done) return;
    job.done = true;
    job.finish(result);
  };

  const hangup = (channel: PeerChannel, cause: string): void => {
    if (channels.get(channel.uuid) !== channel) return;
    for (const timer of channel.timers) {
      clearTimeout(timer);
      peerTimers.delete(timer);
    }
    channel.timers.clear();
    const wasAnswered = channel.answeredUs > 0;
    channel.hangupCause = cause;
    channel.hangupUs = Date.now() * 1000;
    channel.state = 'CS_HANGUP';
    channel.answerState = 'hangup';
    emitChannel(channel, 'CHANNEL_HANGUP');
    const jobFirst = channel.jobBeforeHangupComplete;
    if (!wasAnswered && jobFirst) finishJob(channel, `-ERR ${cause}\n`);
    channels.delete(channel.uuid);
    channel.state = 'CS_REPORTING';
    channel.callState = 'HANGUP';
    emitChannel(channel, 'CHANNEL_HANGUP_COMPLETE');
    if (!wasAnswered) finishJob(channel, `-ERR ${cause}\n`);
  };

  const startCall = (request: OriginateRequest, job: PendingJob): void => {
    let script: CallScript;
    try {
      script = onOriginate(request);
    } catch {
      script = { outcome: 'fail', cause: 'NORMAL_TEMPORARY_FAILURE' };
    }
    const now = Date.now() * 1000;
    const channel: PeerChannel = {
      uuid: request.uuid,
      variables: request.variables,
      dialString: request.dialString,
      destination: destinationOf(request.dialString),
      application: request.application,
      sessionId: ++sessions,
      state: 'CS_INIT',
      callState: 'DOWN',
      answerState: 'ringing',
      createdUs: now,
      progressUs: 0,
      answeredUs: 0,
      hangupUs: 0,
      hangupCause: undefined,
      sipCode: script.outcome === 'fail' ? script.sipCode : undefined,
      timers: new Set(),
      job,
      jobBeforeHangupComplete: script.outcome === 'fail' && script.jobBeforeHangupComplete === true,
    };
    channels.set(channel.uuid, channel);

    const ring = () => {
      channel.state = 'CS_CONSUME_MEDIA';
      channel.progressUs = Date.now() * 1000;
      emitChannel(channel, 'CHANNEL_PROGRESS');
      channel.callState = 'RINGING';
    };

    // At once: a timer of its own could fire after the ring's under a lagging event loop.
    emitChannel(channel, 'CHANNEL_CREATE');
    if (script.outcome === 'answer') {
      const ringMs = script.ringMs ?? 5;
      const answerMs = Math.max(script.answerAfterMs ?? 15, ringMs + 1);
      later(ringMs, ring, channel);
      later(
        answerMs,
        () => {
          channel.answeredUs = Date.now() * 1000;
          channel.answerState = 'answered';
          emitChannel(channel, 'CHANNEL_ANSWER');
          finishJob(channel, `+OK ${channel.uuid}\n`);
          channel.state = 'CS_EXECUTE';
          channel.callState = 'ACTIVE';
          if (/^&?park\b/.test(channel.application)) emitChannel(channel, 'CHANNEL_PARK');
          // Digits, then the hangup, each scheduled from the one before: under a lagging event loop
          // separate timers could fire out of order and hang up before the last digit.
          const interval = script.dtmfIntervalMs ?? 10;
          const digits = [...(script.dtmf ?? '')];
          const hangupLater = (elapsedMs: number) => {
            if (script.hangupAfterMs === undefined) return;
            later(Math.max(0, script.hangupAfterMs - elapsedMs), () => hangup(channel, script.hangupCause ?? 'NORMAL_CLEARING'), channel);
          };
          const press = (index: number) => {
            if (index >= digits.length) return hangupLater(interval * digits.length);
            later(
              interval,
              () => {
                emitChannel(channel, 'DTMF', [
                  ['DTMF-Digit', digits[index]!],
                  ['DTMF-Duration', '2000'],
                ]);
                press(index + 1);
              },
              channel,
            );
          };
          if (digits.length > 0) press(0);
          else hangupLater(0);
        },
        channel,
      );
    } else if (script.outcome === 'fail') {
      const afterMs = script.afterMs ?? 15;
      const rings = script.ring ?? (script.cause === 'NO_ANSWER' || script.cause === 'NO_USER_RESPONSE');
      if (rings) later(Math.min(5, afterMs - 1), ring, channel);
      later(Math.max(afterMs, 2), () => hangup(channel, script.cause), channel);
    } else {
      later(script.ringMs ?? 5, ring, channel);
    }
  };

  const originate = (args: string, jobUuid: string, finish: (result: string) => void): void => {
    const parsed = parseOriginateArgs(args);
    const wanted = parsed.variables.origination_uuid;
    // FreeSWITCH 1.10 does not refuse an origination_uuid in use: it dials anyway, with a new uuid.
    const uuid = wanted && !channels.has(wanted) ? wanted : randomUUID();
    const request: OriginateRequest = { raw: args, ...parsed, jobUuid, uuid };
    originates.push(request);
    if (!parsed.dialString || !parsed.application) {
      finish('-ERR INVALID_ARGUMENTS\n');
      return;
    }
    startCall(request, { jobUuid, finish, done: false });
  };

  // ---- api commands -----------------------------------------------------------------------

  /** Runs an api command; `respond` gets the api/response body (maybe later, for originate). */
  const runApi = (commandLine: string, jobUuid: string, respond: (body: string) => void): void => {
    const space = commandLine.indexOf(' ');
    const name = space < 0 ? commandLine : commandLine.slice(0, space);
    const args = space < 0 ? '' : commandLine.slice(space + 1).trim();
    const argv = args.split(/\s+/).filter(Boolean);
    switch (name) {
      case 'status':
        respond(STATUS_TEMPLATE(sessions, channels.size));
        return;
      case 'version':
        respond('FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n');
        return;
      case 'uuid_exists':
        respond(argv[0] && channels.has(argv[0]) ? 'true' : 'false');
        return;
      case 'uuid_getvar': {
        // As FreeSWITCH: the value, `_undef_` for an unset variable, an error for no channel.
        const channel = argv[0] ? channels.get(argv[0]) : undefined;
        if (!channel) {
          respond('-ERR No such channel!\n');
          return;
        }
        const value = argv[1] === 'answer_epoch' ? String(Math.floor(channel.answeredUs / 1_000_000)) : channel.variables[argv[1] ?? ''];
        respond(value ?? '_undef_');
        return;
      }
      case 'uuid_kill': {
        const channel = argv[0] ? channels.get(argv[0]) : undefined;
        if (!channel) {
          respond('-ERR No such channel!\n');
          return;
        }
        respond('+OK\n');
        hangup(channel, argv[1] ?? 'NORMAL_CLEARING');
        return;
      }
      case 'show': {
        if (argv[0] !== 'channels' && argv[0] !== 'calls') break;
        const list = [...channels.values()];
        if (argv.includes('json')) {
          const rows = list.map((c) => ({ uuid: c.uuid, direction: 'outbound', name: c.dialString, state: c.state, dest: c.destination, callstate: c.callState }));
          respond(list.length === 0 ? '{"row_count": 0}\n' : `${JSON.stringify({ row_count: list.length, rows })}\n`);
          return;
        }
        if (list.length === 0) {
          respond('\n0 total.\n');
          return;
        }
        const rows = list.map((c) => {
          const created = new Date(c.createdUs / 1000);
          const cid = c.variables.origination_caller_id_number ?? '0000000000';
          return `${c.uuid},outbound,${eventDateLocal(created)},${Math.floor(c.createdUs / 1_000_000)},${c.dialString},${c.state},Outbound Call,${cid},,${c.destination},${c.application.replace(/^&/, '').replace(/\(.*$/, '')},,xml,default,PCMU,8000,64000,PCMU,8000,64000,,esl-peer,,,,${c.callState},,,,${c.uuid},,,Outbound Call,${cid},,${c.destination},xml,default`;
        });
        respond(`${SHOW_CHANNELS_HEADER}\n${rows.join('\n')}\n\n${list.length} total.\n`);
        return;
      }
      case 'originate':
        originate(args, jobUuid, respond);
        return;
      default:
        break;
    }
    respond(`-ERR ${name} Command not found!\n`);
  };

  // ---- connections ------------------------------------------------------------------------

  const takeMisbehaviour = (command: string): MisbehaviourAction | undefined => {
    const index = misbehaviours.findIndex((m) => m.matches(command));
    if (index < 0) return undefined;
    const [entry] = misbehaviours.splice(index, 1);
    return entry?.action;
  };

  const handleCommand = async (conn: PeerConnection, block: string): Promise<void> => {
    const [line = '', ...headerLines] = block.split('\n');
    const headers: Record<string, string> = {};
    for (const headerLine of headerLines) {
      const colon = headerLine.indexOf(':');
      if (colon > 0) headers[headerLine.slice(0, colon).trim()] ??= headerLine.slice(colon + 1).trim();
    }
    const command = line.trim();
    const action = conn.authed ? takeMisbehaviour(command) : undefined;
    const reply = (frame: string): void => {
      if (action === 'drop') conn.socket.destroy();
      else if (action === 'silence') conn.hung = true;
      else if (!conn.hung) write(conn, frame);
    };

    if (!conn.authed) {
      if (command.startsWith('auth ')) {
        if (command.slice(5) === password) {
          conn.authed = true;
          reply(commandReplyFrame('+OK accepted'));
        } else {
          write(conn, commandReplyFrame('-ERR invalid'));
          write(conn, DISCONNECT_NOTICE);
          endAfterWrites(conn);
        }
        return;
      }
      write(conn, commandReplyFrame('-ERR invalid'));
      write(conn, DISCONNECT_NOTICE);
      endAfterWrites(conn);
      return;
    }

    const [verb = '', ...rest] = command.split(' ');
    const restText = rest.join(' ');
    switch (verb) {
      case 'event': {
        const [format = '', ...names] = rest.filter(Boolean);
        if (format !== 'plain' && format !== 'json') {
          reply(commandReplyFrame('-ERR invalid format'));
          return;
        }
        conn.format = format;
        for (const name of names) {
          if (name === 'ALL') conn.all = true;
          else conn.events.add(name);
        }
        reply(commandReplyFrame(`+OK event listener enabled ${format}`));
        return;
      }
      case 'nixevent':
        for (const name of rest) conn.events.delete(name);
        reply(commandReplyFrame('+OK events nixed'));
        return;
      case 'noevents':
        conn.events.clear();
        conn.all = false;
        conn.format = undefined;
        reply(commandReplyFrame('+OK no longer listening for events'));
        return;
      case 'exit':
        reply(commandReplyFrame('+OK bye'));
        write(conn, DISCONNECT_NOTICE);
        endAfterWrites(conn);
        return;
      case 'api': {
        // mod_event_socket runs api commands inline: the next command waits for this reply.
        const body = await new Promise<string>((resolve) => runApi(restText, '', resolve));
        reply(apiResponseFrame(body));
        return;
      }
      case 'bgapi': {
        const jobUuid = headers['Job-UUID'] ?? randomUUID();
        reply(commandReplyFrame(`+OK Job-UUID: ${jobUuid}`, [['Job-UUID', jobUuid]]));
        const space = restText.indexOf(' ');
        const jobCommand = space < 0 ? restText : restText.slice(0, space);
        const jobArg = space < 0 ? '' : restText.slice(space + 1);
        await nextTurn();
        runApi(restText, jobUuid, (result) => {
          const pairs = baseHeaders('BACKGROUND_JOB');
          pairs.push(['Job-UUID', jobUuid], ['Job-Command', jobCommand]);
          if (jobArg) pairs.push(['Job-Command-Arg', jobArg]);
          broadcast('BACKGROUND_JOB', pairs, result);
        });
        return;
      }
      case 'sendmsg': {
        // As in extras.jsonl: FreeSWITCH accepts the message at once (the peer does not run the
        // app). A play_and_get_digits names the variable that a digit pressed later is kept in.
        const channel = channels.get(rest[0] ?? '');
        if (channel && headers['execute-app-name'] === 'play_and_get_digits') {
          // Arguments split as switch_separate_string does: a quoted prompt is one argument.
          channel.digitsVariable = (headers['execute-app-arg'] ?? '').match(/'[^']*'|\S+/g)?.[7];
        }
        reply(commandReplyFrame('+OK'));
        return;
      }
      default:
        reply(commandReplyFrame('-ERR command not found'));
    }
  };

  const onConnection = (socket: net.Socket): void => {
    if (paused || closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn: PeerConnection = {
      socket,
      authed: false,
      format: undefined,
      events: new Set(),
      all: false,
      inbox: '',
      handling: Promise.resolve(),
      hung: false,
      writing: Promise.resolve(),
    };
    connections.add(conn);
    socket.on('error', () => {});
    socket.on('close', () => connections.delete(conn));
    socket.on('data', (chunk: Buffer) => {
      conn.inbox += chunk.toString('utf8');
      for (let end = conn.inbox.indexOf('\n\n'); end >= 0; end = conn.inbox.indexOf('\n\n')) {
        const block = conn.inbox.slice(0, end).replace(/^\n+/, '');
        conn.inbox = conn.inbox.slice(end + 2);
        if (!block) continue;
        commands.push(block);
        conn.handling = conn.handling.then(() => handleCommand(conn, block)).catch(() => {
          socket.destroy();
        });
      }
    });
    write(conn, 'Content-Type: auth/request\n\n');
  };

  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('esl-peer: no TCP address');

  return {
    port: address.port,
    commands,
    originates,
    liveChannels: () => [...channels.keys()],
    authenticatedConnections: () => [...connections].filter((c) => c.authed && !c.socket.destroyed).length,
    dropConnections() {
      for (const conn of connections) conn.socket.destroy();
    },
    refuseConnections(ms: number) {
      paused = true;
      later(ms, () => {
        paused = false;
      });
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
    },
    misbehaveOnNext(pattern: string | RegExp, action: MisbehaviourAction) {
      const matches = typeof pattern === 'string' ? (c: string) => c.startsWith(pattern) : (c: string) => pattern.test(c);
      misbehaviours.push({ matches, action });
    },
    pressDigit(uuid: string, digit: string) {
      const channel = channels.get(uuid);
      if (!channel) return false;
      if (channel.digitsVariable) channel.variables[channel.digitsVariable] = digit;
      // As switch_channel_dequeue_dtmf: the channel's headers, then the digit.
      emitChannel(channel, 'DTMF', [
        ['DTMF-Digit', digit],
        ['DTMF-Duration', '2000'],
        ['DTMF-Source', 'RTP'],
      ]);
      return true;
    },
    emitEvent(name: string, headers: Record<string, string> = {}, body?: string) {
      const own = new Set(Object.keys(headers));
      const pairs = baseHeaders(name).filter(([key]) => !own.has(key));
      pairs.push(...Object.entries(headers));
      broadcast(name, pairs, body);
    },
    async replayFixture(path: string, replayOptions: { all?: boolean } = {}) {
      const text = await readFile(path, 'utf8');
      let count = 0;
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        const record = JSON.parse(line) as { dir: string; data: string };
        if (record.dir !== 'S->C') continue;
        if (!replayOptions.all && !/^Content-Type: text\/event-|\nContent-Type: text\/event-/.test(record.data.split('\n\n')[0] ?? '')) continue;
        for (const conn of connections) if (conn.authed) write(conn, record.data);
        count++;
      }
      return count;
    },
    async close() {
      closed = true;
      for (const timer of peerTimers) clearTimeout(timer);
      peerTimers.clear();
      channels.clear();
      for (const conn of connections) conn.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
