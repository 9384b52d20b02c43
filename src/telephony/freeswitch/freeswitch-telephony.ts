/**
 * The telephony port on FreeSWITCH, over our own Event Socket client (inbound mode).
 *
 * Placing a call: `bgapi originate {origination_uuid=<callId>,tig_call_id=<callId>,...}<dial> &park()`
 * with Job-UUID = callId, so the channel, our variable and the job result all carry our id. The
 * originate command is built by buildOriginateCommand, which refuses any input that could change
 * its meaning.
 *
 * Driving an answered call needs no dialplan: on CHANNEL_ANSWER of our channel we queue
 * `sendmsg <uuid>` execute messages (event-lock, so they run one after the other inside park):
 * speak (or playback) the message, optionally play_and_get_digits for "press 1", then hangup.
 * park_timeout (ring timeout + 120 s) hangs the call up should those messages never arrive.
 *
 * Progress: an event is about one of our calls when its Unique-ID equals its
 * variable_tig_call_id (a loopback originate also creates a `-b` leg carrying a copy of our
 * variables under another Unique-ID: ignored), or, for DTMF (which carries no variables), when its
 * Unique-ID is a call we know (placed, seen in such an event, or confirmed by callExists). Exactly
 * one `ended` is emitted per call id: from CHANNEL_HANGUP_COMPLETE, or, when the originate failed
 * (BACKGROUND_JOB `-ERR <CAUSE>`) and no hangup event follows within a short grace (there is none
 * when no channel was ever created), from the job result.
 */
import type { Clock } from '../../clock/clock.js';
import { systemClock } from '../../clock/clock.js';
import {
  CallNotPlacedError,
  CallOutcomeUnknownError,
  type CallProgress,
  type CallRequest,
  type ProgressListener,
  type InboundCallReport,
  type InboundCallSource,
  type Telephony,
  type TelephonyStatus,
} from '../telephony.js';
import { EslClient, type EslClientState, type EslLogger } from './esl-client.js';
import {
  EslCommandError,
  EslConnectionLostError,
  EslNotConnectedError,
  EslProtocolError,
  EslTimeoutError,
} from './esl-errors.js';
import type { EslEvent } from './esl-frames.js';
import {
  assertCallId,
  assertSafeMessage,
  assertSafeOriginateSettings,
  buildOriginateCommand,
  CALL_ID_PATTERN,
  UnsafeDialInputError,
  type OriginateSettings,
} from './originate-command.js';

export interface FreeSwitchTelephonyOptions {
  host: string;
  port: number;
  password: string;
  /** FREESWITCH_DIAL_STRING, e.g. `sofia/gateway/tas/{number}`. */
  dialStringTemplate: string;
  ttsEngine: string;
  ttsVoice: string;
  /** Played instead of speaking the message (FREESWITCH_PROMPT_FILE). */
  promptFile?: string | undefined;
  /** Asks to press 1 (FREESWITCH_ACK_PROMPT_FILE); unset: "Press 1 to confirm" is spoken. */
  ackPromptFile?: string | undefined;
  logger: EslLogger;
  clock?: Clock | undefined;
  /** Per-command reply timeout of the Event Socket client (5000 ms). */
  commandTimeoutMs?: number | undefined;
  /** TCP connect + auth + subscription deadline of the Event Socket client (5000 ms). */
  connectTimeoutMs?: number | undefined;
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number } | undefined;
  /** start() resolves after the first connection attempt's outcome, or after this long (3000 ms). */
  startWaitMs?: number | undefined;
  /** How long a failed originate's job result waits for the channel's hangup event (2000 ms). */
  jobFailureGraceMs?: number | undefined;
  /** Event header with the called number of inbound calls (FREESWITCH_CALLEE_HEADER). */
  calleeHeader?: string | undefined;
}

/** Spoken when no ack prompt file is configured; `say:` uses the channel's tts_engine/tts_voice. */
export const DEFAULT_ACK_PROMPT = "'say:Press 1 to confirm'";
/** The channel variable play_and_get_digits stores the pressed digit in. */
export const ACK_DIGIT_VARIABLE = 'tig_ack_digit';
/** Same as the FREESWITCH_PROMPT_FILE / FREESWITCH_ACK_PROMPT_FILE config patterns. */
const SOUND_FILE_PATTERN = /^[A-Za-z0-9/_.:-]{1,300}$/;
/** Ended call ids remembered so that late events never produce a second `ended`. */
const MAX_REMEMBERED_ENDED = 10_000;
/** Calls tracked at once; beyond this the oldest (whose hangup was surely missed) are forgotten. */
const MAX_TRACKED_CALLS = 10_000;

interface TrackedCall {
  readonly callId: string;
  /** What to say once answered; undefined for calls we only hear about (another instance's, or not yet adopted). */
  request: CallRequest | undefined;
  ringing: boolean;
  answered: boolean;
  acknowledged: boolean;
  driven: boolean;
  /** Set when the originate's job result said -ERR and we wait for the hangup event. */
  jobFailure: { cause: string; at: Date; cancel: () => void } | undefined;
}

type EndedProgress = Extract<CallProgress, { kind: 'ended' }>;

export class FreeSwitchTelephony implements Telephony, InboundCallSource {
  readonly name = 'freeswitch' as const;

  private readonly client: EslClient;
  private readonly logger: EslLogger;
  private readonly clock: Clock;
  private readonly settings: OriginateSettings;
  private readonly promptFile: string | undefined;
  private readonly ackPrompt: string;
  private readonly startWaitMs: number;
  private readonly jobFailureGraceMs: number;
  private readonly progressListeners: ProgressListener[] = [];
  private readonly reconnectListeners: Array<() => void> = [];
  private readonly inboundListeners: Array<(report: InboundCallReport) => void> = [];
  private readonly calleeHeader: string;
  private readonly calls = new Map<string, TrackedCall>();
  private readonly ended = new Set<string>();
  private started = false;
  private stopped = false;
  private everConnected = false;
  private authFailed = false;
  private disconnectedSince: Date;

  constructor(options: FreeSwitchTelephonyOptions) {
    this.settings = { dialStringTemplate: options.dialStringTemplate, ttsEngine: options.ttsEngine, ttsVoice: options.ttsVoice };
    assertSafeOriginateSettings(this.settings);
    for (const [name, file] of [
      ['promptFile', options.promptFile],
      ['ackPromptFile', options.ackPromptFile],
    ] as const) {
      if (file !== undefined && !SOUND_FILE_PATTERN.test(file)) {
        throw new Error(`FreeSwitchTelephony: ${name} must match ${SOUND_FILE_PATTERN.source}`);
      }
    }
    this.promptFile = options.promptFile;
    this.ackPrompt = options.ackPromptFile ?? DEFAULT_ACK_PROMPT;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.startWaitMs = options.startWaitMs ?? 3000;
    this.jobFailureGraceMs = options.jobFailureGraceMs ?? 2000;
    this.calleeHeader = options.calleeHeader ?? 'Caller-Destination-Number';
    this.disconnectedSince = this.clock.now();
    this.client = new EslClient({
      host: options.host,
      port: options.port,
      password: options.password,
      logger: options.logger,
      ...(options.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: options.commandTimeoutMs }),
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
      ...(options.reconnect === undefined ? {} : { reconnect: options.reconnect }),
    });
    this.client.on('event', (event) => this.onEvent(event));
    this.client.on('connected', () => this.onConnected());
    this.client.on('disconnected', () => {
      this.disconnectedSince = this.clock.now();
    });
    this.client.on('auth_failed', () => {
      this.authFailed = true;
    });
  }

  /** Starts connecting; resolves after the first attempt's outcome (or startWaitMs). The client keeps reconnecting. */
  async start(): Promise<void> {
    if (this.started || this.stopped) return;
    this.started = true;
    this.disconnectedSince = this.clock.now();
    const firstOutcome = new Promise<void>((resolve) => {
      const onState = (state: EslClientState) => {
        if (state === 'connected' || state === 'disconnected' || state === 'stopped') done();
      };
      const timer = setTimeout(() => done(), this.startWaitMs);
      const done = () => {
        clearTimeout(timer);
        this.client.off('state', onState);
        this.client.off('auth_failed', done);
        resolve();
      };
      this.client.on('state', onState);
      this.client.on('auth_failed', done);
    });
    this.client.start();
    await firstOutcome;
    if (this.client.state !== 'connected') {
      this.logger.warn({ detail: this.status().detail }, 'FreeSWITCH not reachable yet; will keep reconnecting');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const call of this.calls.values()) call.jobFailure?.cancel();
    await this.client.stop();
  }

  async placeCall(request: CallRequest): Promise<void> {
    // Both throw UnsafeDialInputError before anything is sent: nobody is dialled.
    const command = buildOriginateCommand(request, this.settings);
    assertSafeMessage(request.message);
    const callId = request.callId;
    this.calls.get(callId)?.jobFailure?.cancel();
    this.ended.delete(callId);
    const call = this.track(callId, request);
    try {
      await this.client.bgapi(command, { jobUuid: callId });
    } catch (error) {
      const mapped = mapOriginateError(error);
      if (mapped instanceof CallNotPlacedError && this.calls.get(callId) === call) this.calls.delete(callId);
      this.logger.warn(
        { callId, correlationId: request.correlationId, err: { name: (error as Error).name, message: (error as Error).message } },
        mapped instanceof CallNotPlacedError ? 'Call not placed' : 'Call outcome unknown: reconcile with callExists before dialling again',
      );
      throw mapped;
    }
    this.logger.info({ callId, correlationId: request.correlationId }, 'Originate accepted by FreeSWITCH');
  }

  async adoptCall(request: CallRequest): Promise<void> {
    assertCallId(request.callId);
    const call = this.calls.get(request.callId) ?? this.track(request.callId, request);
    call.request = request;
    if (call.driven) return;
    if (!call.answered) {
      // The answer may have come while nobody listened: ask the channel.
      const answerEpoch = (await this.client.api(`uuid_getvar ${request.callId} answer_epoch`)).trim();
      if (/^[1-9]\d*$/.test(answerEpoch)) call.answered = true;
    }
    if (call.answered && !call.acknowledged && request.requireAck) {
      // So may the "1": play_and_get_digits keeps it on the channel. A callee who confirmed is not
      // asked again; the earlier prompt's queued hangup ends the call.
      const digit = (await this.client.api(`uuid_getvar ${request.callId} ${ACK_DIGIT_VARIABLE}`)).trim();
      if (digit === '1' && !call.acknowledged) {
        call.acknowledged = true;
        call.driven = true;
        this.emit({ callId: call.callId, kind: 'acknowledged', at: this.clock.now() });
        return;
      }
    }
    if (call.answered) this.drive(call);
  }

  async callExists(callId: string): Promise<boolean> {
    assertCallId(callId);
    const reply = (await this.client.api(`uuid_exists ${callId}`)).trim();
    if (reply === 'true') {
      if (!this.ended.has(callId) && !this.calls.has(callId)) this.track(callId, undefined);
      return true;
    }
    if (reply === 'false') return false;
    throw new Error(`Unexpected uuid_exists reply from FreeSWITCH: ${reply.slice(0, 80)}`);
  }

  async hangup(callId: string): Promise<void> {
    assertCallId(callId);
    const reply = (await this.client.api(`uuid_kill ${callId} ORIGINATOR_CANCEL`)).trim();
    if (reply.startsWith('+OK')) return;
    if (/^-ERR No such channel/i.test(reply)) return;
    throw new Error(`FreeSWITCH refused uuid_kill: ${reply.slice(0, 80)}`);
  }

  onProgress(listener: ProgressListener): void {
    this.progressListeners.push(listener);
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  status(): TelephonyStatus {
    if (this.client.state === 'connected') return { ok: true, detail: 'FreeSWITCH Event Socket connected' };
    const since = this.disconnectedSince.toISOString();
    if (this.stopped) return { ok: false, detail: 'FreeSWITCH Event Socket stopped' };
    if (this.authFailed) return { ok: false, detail: `FreeSWITCH refused the Event Socket password; disconnected since ${since}` };
    return { ok: false, detail: `FreeSWITCH Event Socket disconnected since ${since}` };
  }

  // ---- connection ---------------------------------------------------------------------------

  private onConnected(): void {
    this.authFailed = false;
    if (!this.everConnected) {
      this.everConnected = true;
      return;
    }
    this.logger.info({}, 'FreeSWITCH Event Socket reconnected; reconciling calls in flight');
    for (const listener of this.reconnectListeners) {
      try {
        listener();
      } catch (error) {
        this.logger.error({ err: { message: (error as Error).message } }, 'onReconnect listener threw');
      }
    }
  }

  // ---- events -------------------------------------------------------------------------------

  onInboundCall(listener: (report: InboundCallReport) => void): void {
    this.inboundListeners.push(listener);
  }

  /**
   * Inbound legs (Call-Direction: inbound) are calls to subscribers: CHANNEL_CREATE or
   * CHANNEL_PARK is ringing, CHANNEL_ANSWER answered, CHANNEL_HANGUP_COMPLETE ended. The calls the
   * gateway places carry `tig_call_id` (on both legs of a loopback) and are never reported.
   */
  private reportInbound(event: EslEvent): void {
    if (this.inboundListeners.length === 0) return;
    const state =
      event.name === 'CHANNEL_CREATE' || event.name === 'CHANNEL_PARK'
        ? 'ringing'
        : event.name === 'CHANNEL_ANSWER'
          ? 'answered'
          : event.name === 'CHANNEL_HANGUP_COMPLETE'
            ? 'ended'
            : undefined;
    const headers = event.headers;
    if (!state || headers['Call-Direction'] !== 'inbound') return;
    if (headers['variable_tig_call_id'] !== undefined || headers['variable_loopback_leg'] === 'B') return;
    const callId = headers['Unique-ID'];
    const callee = headers[this.calleeHeader] ?? headers['Caller-Destination-Number'];
    if (!callId || !callee) return;
    const report: InboundCallReport = {
      callId,
      caller: headers['Caller-Caller-ID-Number'] || 'anonymous',
      callerName: headers['Caller-Caller-ID-Name'] || undefined,
      callee,
      state,
    };
    for (const listener of this.inboundListeners) {
      try {
        listener(report);
      } catch (error) {
        this.logger.warn({ err: error, call_id: callId }, 'inbound call listener failed');
      }
    }
  }

  private onEvent(event: EslEvent): void {
    this.reportInbound(event);
    switch (event.name) {
      case 'BACKGROUND_JOB':
        this.onJob(event);
        return;
      case 'DTMF':
        this.onDtmf(event);
        return;
      case 'CHANNEL_CREATE':
        this.warnIfDuplicateChannel(event);
        return;
      case 'CHANNEL_PROGRESS':
      case 'CHANNEL_PROGRESS_MEDIA':
      case 'CHANNEL_ANSWER':
      case 'CHANNEL_HANGUP_COMPLETE':
        break;
      default:
        return;
    }
    const callId = ownCallId(event);
    if (callId === undefined || this.ended.has(callId)) return;
    const call = this.calls.get(callId) ?? this.track(callId, undefined);
    const at = eventTime(event, this.clock);
    if (event.name === 'CHANNEL_HANGUP_COMPLETE') {
      this.finish(call, this.endedFromHangup(call, event, at));
      return;
    }
    if (event.name === 'CHANNEL_ANSWER') {
      if (call.answered) return;
      call.answered = true;
      this.emit({ callId, kind: 'answered', at });
      this.drive(call);
      return;
    }
    // CHANNEL_PROGRESS / CHANNEL_PROGRESS_MEDIA
    if (call.ringing || call.answered) return;
    call.ringing = true;
    this.emit({ callId, kind: 'ringing', at });
  }

  private onDtmf(event: EslEvent): void {
    const callId = event.headers['Unique-ID'];
    if (callId === undefined) return;
    const call = this.calls.get(callId);
    if (!call || call.acknowledged || event.headers['DTMF-Digit'] !== '1') return;
    call.acknowledged = true;
    this.emit({ callId, kind: 'acknowledged', at: eventTime(event, this.clock) });
  }

  private onJob(event: EslEvent): void {
    const jobUuid = event.headers['Job-UUID'];
    if (jobUuid === undefined) return;
    const call = this.calls.get(jobUuid);
    // Only originates we placed use our call id as Job-UUID.
    if (!call?.request) return;
    const result = (event.body ?? '').trim();
    if (!result.startsWith('-ERR')) {
      this.logger.debug({ callId: call.callId }, 'Originate job succeeded (call answered)');
      return;
    }
    if (call.jobFailure) return;
    const cause = /^-ERR\s+([A-Z][A-Z0-9_]*)$/.exec(result)?.[1] ?? 'NORMAL_UNSPECIFIED';
    const at = eventTime(event, this.clock);
    // FreeSWITCH sends the job result before or after the channel's CHANNEL_HANGUP_COMPLETE (and
    // there is none when no channel was created): give the hangup event, richer, a chance first.
    const cancel = this.clock.setTimer(() => {
      if (this.calls.get(call.callId) !== call) return;
      this.finish(call, { callId: call.callId, kind: 'ended', at, cause, answered: false, acknowledged: false });
    }, this.jobFailureGraceMs);
    call.jobFailure = { cause, at, cancel };
  }

  /** A second channel carrying our tig_call_id that is not a loopback `-b` leg: FreeSWITCH dialled again. */
  private warnIfDuplicateChannel(event: EslEvent): void {
    const tig = event.headers.variable_tig_call_id;
    const uuid = event.headers['Unique-ID'];
    if (!tig || !uuid || tig === uuid || event.headers.variable_loopback_leg) return;
    if (!this.calls.has(tig)) return;
    this.logger.warn(
      { callId: tig, channel: uuid },
      'A second channel was created for a call of ours (origination_uuid in use?); its events are ignored',
    );
  }

  private endedFromHangup(call: TrackedCall, event: EslEvent, at: Date): EndedProgress {
    const h = event.headers;
    const cause = h['Hangup-Cause'] || h.variable_hangup_cause || 'NORMAL_UNSPECIFIED';
    const sipCode = parseSipCode(h.variable_sip_term_status) ?? parseSipCode(h.variable_sip_invite_failure_status);
    const answered =
      call.answered ||
      positive(h.variable_answer_epoch) ||
      positive(h['Caller-Channel-Answered-Time']) ||
      h.variable_endpoint_disposition === 'ANSWER';
    const acknowledged = call.acknowledged || h[`variable_${ACK_DIGIT_VARIABLE}`] === '1';
    const ended: EndedProgress = { callId: call.callId, kind: 'ended', at, cause, answered, acknowledged };
    if (sipCode !== undefined) ended.sipCode = sipCode;
    return ended;
  }

  private finish(call: TrackedCall, ended: EndedProgress): void {
    if (this.ended.has(call.callId)) return;
    call.jobFailure?.cancel();
    call.jobFailure = undefined;
    if (this.calls.get(call.callId) === call) this.calls.delete(call.callId);
    this.ended.add(call.callId);
    if (this.ended.size > MAX_REMEMBERED_ENDED) {
      const oldest = this.ended.values().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
    this.emit(ended);
  }

  // ---- driving an answered call ---------------------------------------------------------------

  private drive(call: TrackedCall): void {
    if (call.driven) return;
    const request = call.request;
    if (!request) {
      // Another instance's call (every connection hears every event), or one not adopted yet.
      this.logger.debug({ callId: call.callId }, 'answered call with no request here; its placing or adopting instance drives it');
      return;
    }
    call.driven = true;
    try {
      assertSafeMessage(request.message);
    } catch (error) {
      this.logger.error({ callId: call.callId, err: { message: (error as Error).message } }, 'Refusing to send the message');
      return;
    }
    const apps: Array<[app: string, arg: string]> = [];
    if (this.promptFile) apps.push(['playback', this.promptFile]);
    else apps.push(['speak', `${this.settings.ttsEngine}|${this.settings.ttsVoice}|${request.message}`]);
    if (request.requireAck) {
      apps.push(['play_and_get_digits', `1 1 3 5000 # ${this.ackPrompt} silence_stream://250 ${ACK_DIGIT_VARIABLE} \\d`]);
    }
    apps.push(['hangup', 'NORMAL_CLEARING']);
    // Queued at once: the client sends them in order, event-lock makes FreeSWITCH run them in order.
    const sends = apps.map(([app, arg]) =>
      this.client.command(`sendmsg ${call.callId}`, {
        'call-command': 'execute',
        'execute-app-name': app,
        'execute-app-arg': arg,
        'event-lock': 'true',
      }),
    );
    void Promise.allSettled(sends).then((results) => {
      const failed = results.flatMap((result, index) => (result.status === 'rejected' ? [{ app: apps[index]?.[0], reason: errorText(result.reason) }] : []));
      if (failed.length > 0) {
        this.logger.error(
          { callId: call.callId, correlationId: request.correlationId, failed },
          'FreeSWITCH did not take every sendmsg for an answered call; park_timeout will end it',
        );
      } else {
        this.logger.debug({ callId: call.callId, apps: apps.map(([app]) => app) }, 'Answered call driven');
      }
    });
  }

  // ---- helpers ------------------------------------------------------------------------------

  private track(callId: string, request: CallRequest | undefined): TrackedCall {
    const call: TrackedCall = { callId, request, ringing: false, answered: false, acknowledged: false, driven: false, jobFailure: undefined };
    this.calls.delete(callId);
    this.calls.set(callId, call);
    if (this.calls.size > MAX_TRACKED_CALLS) {
      const oldest = this.calls.values().next().value;
      if (oldest) {
        oldest.jobFailure?.cancel();
        this.calls.delete(oldest.callId);
      }
    }
    return call;
  }

  private emit(progress: CallProgress): void {
    for (const listener of this.progressListeners) {
      try {
        listener(progress);
      } catch (error) {
        this.logger.error({ callId: progress.callId, kind: progress.kind, err: { message: (error as Error).message } }, 'onProgress listener threw');
      }
    }
  }
}

/** The call id of an event about one of our channels: Unique-ID === variable_tig_call_id. */
function ownCallId(event: EslEvent): string | undefined {
  const uuid = event.headers['Unique-ID'];
  if (!uuid || uuid !== event.headers.variable_tig_call_id || !CALL_ID_PATTERN.test(uuid)) return undefined;
  return uuid;
}

/** Event-Date-Timestamp (microseconds since the epoch), else now. */
function eventTime(event: EslEvent, clock: Clock): Date {
  const us = event.headers['Event-Date-Timestamp'];
  if (us && /^[0-9]{1,20}$/.test(us)) {
    const ms = Math.floor(Number(us) / 1000);
    if (ms > 0 && Number.isFinite(ms)) return new Date(ms);
  }
  return clock.now();
}

function parseSipCode(text: string | undefined): number | undefined {
  if (!text || !/^[1-6][0-9]{2}$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

function positive(text: string | undefined): boolean {
  return text !== undefined && /^[0-9]+$/.test(text) && Number(text) > 0;
}

function errorText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/** What a failed `bgapi originate` means for the caller: nobody dialled, or not knowable. */
function mapOriginateError(error: unknown): Error {
  if (error instanceof UnsafeDialInputError) return error;
  const options = { cause: error };
  if (error instanceof EslNotConnectedError) return new CallNotPlacedError('FreeSWITCH Event Socket not connected; call not placed', options);
  if (error instanceof EslConnectionLostError) {
    return error.sent
      ? new CallOutcomeUnknownError('Event Socket connection lost after the originate was sent; the call may be ringing', options)
      : new CallNotPlacedError('Event Socket connection lost before the originate was sent; call not placed', options);
  }
  if (error instanceof EslTimeoutError) {
    return error.sent
      ? new CallOutcomeUnknownError('No reply from FreeSWITCH to the originate in time; the call may be ringing', options)
      : new CallNotPlacedError('The originate waited too long to be sent; call not placed', options);
  }
  if (error instanceof EslCommandError) return new CallNotPlacedError(`FreeSWITCH refused the originate (${error.replyText})`, options);
  if (error instanceof EslProtocolError) return new CallNotPlacedError(`The originate could not be encoded (${error.message})`, options);
  return new CallOutcomeUnknownError(`Unexpected error placing the call: ${errorText(error)}`, options);
}
