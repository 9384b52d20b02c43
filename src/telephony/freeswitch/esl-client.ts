/**
 * FreeSWITCH Event Socket client (inbound mode: we connect to mod_event_socket, port 8021).
 *
 * Why our own client: the maintained `esl-lite` 3 re-sends, after a reconnect, the command whose
 * reply had not arrived, and FreeSWITCH 1.10 does not refuse an `originate` whose
 * `origination_uuid` is already in use: it dials again. A reconnect during an in-flight originate
 * could therefore ring someone twice. This client NEVER re-sends a command: when the connection is
 * lost every written or queued command rejects with EslConnectionLostError (`sent` tells which),
 * and the caller reconciles (`uuid_exists <origination_uuid>`) before deciding to dial again.
 *
 * Protocol notes: FreeSWITCH answers each command with exactly one `command/reply` or
 * `api/response` frame, in the order the commands arrived, while events interleave freely. Once
 * the connection is authenticated, commands are written without waiting for the replies of the
 * earlier ones (pipelined, at most MAX_WRITTEN at a time), and each reply goes to the oldest
 * command written: one round trip per command would cap a connection at a few hundred commands a
 * second. A command whose deadline passes while an earlier one still waits within its own fails
 * alone and keeps its place in line (its late reply is matched to it and dropped). When the oldest
 * unanswered command's deadline passes, FreeSWITCH is not answering: the connection is dropped
 * (and re-established), and every command written and not answered rejects with `sent: true`.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  EslAuthError,
  EslCommandError,
  EslConnectionLostError,
  EslNotConnectedError,
  EslProtocolError,
  EslTimeoutError,
  eslCommandName,
} from './esl-errors.js';
import { EslFrameParser, encodeCommand, parseEvent, type EslEvent, type EslFrame } from './esl-frames.js';

export interface EslLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type EslClientState = 'connecting' | 'connected' | 'disconnected' | 'stopped';

export const DEFAULT_ESL_EVENTS: readonly string[] = [
  'BACKGROUND_JOB',
  'CHANNEL_CREATE',
  'CHANNEL_PROGRESS',
  'CHANNEL_PROGRESS_MEDIA',
  'CHANNEL_ANSWER',
  'CHANNEL_PARK',
  'CHANNEL_HANGUP_COMPLETE',
  'DTMF',
];

export interface EslClientOptions {
  host: string;
  port: number;
  password: string;
  logger: EslLogger;
  /** Event names to subscribe to (default DEFAULT_ESL_EVENTS). */
  events?: readonly string[];
  /** `event plain` (default, what the fixtures show) or `event json`. */
  eventFormat?: 'plain' | 'json';
  /** Default per-command reply timeout (5000 ms). */
  commandTimeoutMs?: number;
  /** TCP connect + auth + event subscription must finish within this (5000 ms). */
  connectTimeoutMs?: number;
  /** Reconnect backoff with full jitter: random(0, min(max, initial * 2^attempt)). */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
}

export interface EslDisconnectInfo {
  reason: string;
}

export interface EslClientEvents {
  connected: [];
  disconnected: [EslDisconnectInfo];
  state: [EslClientState];
  event: [EslEvent];
  auth_failed: [EslAuthError];
}

export interface EslCommandOptions {
  timeoutMs?: number;
}

export interface EslBgapiOptions extends EslCommandOptions {
  /** Job-UUID to use (random if absent); the BACKGROUND_JOB event carries it. */
  jobUuid?: string;
}

/** A `command/reply` frame: `replyText` is its Reply-Text (e.g. `+OK event listener enabled plain`). */
export interface EslReply {
  replyText: string;
  headers: Record<string, string>;
  body?: string;
}

interface PendingCommand {
  readonly name: string;
  readonly wire: string;
  readonly timeoutMs: number;
  readonly resolve: (frame: EslFrame) => void;
  readonly reject: (error: Error) => void;
  sent: boolean;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
}

interface Connection {
  readonly id: number;
  readonly socket: net.Socket;
  readonly parser: EslFrameParser;
  /** Commands not written yet. */
  readonly queue: PendingCommand[];
  /** Commands written and waiting for their replies, oldest first. */
  readonly written: PendingCommand[];
  ready: boolean;
  closed: boolean;
  connectTimer: NodeJS.Timeout | undefined;
  closeReason: string | undefined;
}

const REPLY_TYPES = new Set(['command/reply', 'api/response']);
/** Most commands written and not answered on one connection. */
const MAX_WRITTEN = 64;

export class EslClient extends EventEmitter<EslClientEvents> {
  private readonly options: Required<Omit<EslClientOptions, 'reconnect' | 'logger'>> & {
    reconnect: { initialDelayMs: number; maxDelayMs: number };
  };
  private readonly logger: EslLogger;
  private currentState: EslClientState = 'disconnected';
  private started = false;
  private connection: Connection | undefined;
  private connectionSeq = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopPromise: Promise<void> | undefined;

  constructor(options: EslClientOptions) {
    super();
    this.logger = options.logger;
    this.options = {
      host: options.host,
      port: options.port,
      password: options.password,
      events: options.events ?? DEFAULT_ESL_EVENTS,
      eventFormat: options.eventFormat ?? 'plain',
      commandTimeoutMs: options.commandTimeoutMs ?? 5000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      reconnect: {
        initialDelayMs: options.reconnect?.initialDelayMs ?? 500,
        // Capped low: every second without the switch is a second an alarm cannot be called.
        maxDelayMs: options.reconnect?.maxDelayMs ?? 3_000,
      },
    };
    for (const name of this.options.events) {
      if (!/^[A-Za-z0-9_:.-]+$/.test(name)) throw new EslProtocolError(`Invalid event name "${name}"`);
    }
  }

  get state(): EslClientState {
    return this.currentState;
  }

  /** Connects, and keeps reconnecting (with backoff) whenever the connection is lost, until stop(). */
  start(): void {
    if (this.currentState === 'stopped') throw new Error('EslClient was stopped; create a new one');
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  /**
   * Stops reconnecting, rejects queued commands, sends `exit` (after the commands written, which
   * get their replies first) and waits for FreeSWITCH to close, at most 1 s. Leaves no timer running.
   */
  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    this.started = false;
    this.clearReconnectTimer();
    this.setState('stopped');
    const connection = this.connection;
    if (!connection || connection.closed) {
      this.stopPromise = Promise.resolve();
      return this.stopPromise;
    }
    this.stopPromise = new Promise<void>((resolve) => {
      connection.socket.once('close', () => resolve());
      for (const queued of connection.queue.splice(0)) {
        this.settle(queued, new EslConnectionLostError(queued.name, false));
      }
      if (!connection.ready) {
        this.destroy(connection, 'stopped');
        return;
      }
      const exit = this.makeCommand('exit', encodeCommand('exit'), 1000, () => this.destroy(connection, 'stopped'), () => {});
      connection.queue.push(exit);
      this.pump(connection);
      // If FreeSWITCH does not close after `+OK bye`, close ourselves.
      const guard = setTimeout(() => this.destroy(connection, 'stopped'), 1000);
      connection.socket.once('close', () => clearTimeout(guard));
    });
    return this.stopPromise;
  }

  /** `api <command>`: resolves with the api/response body as FreeSWITCH sent it (it may start with `-ERR`). */
  async api(command: string, options: EslCommandOptions = {}): Promise<string> {
    const frame = await this.send(`api ${command}`, undefined, options.timeoutMs);
    return frame.body ?? '';
  }

  /**
   * `bgapi <command>` with a Job-UUID header: resolves once FreeSWITCH accepted the job
   * (`+OK Job-UUID: ...`); the result comes later as a BACKGROUND_JOB event with that Job-UUID.
   * Rejects with EslCommandError on `-ERR`.
   */
  async bgapi(command: string, options: EslBgapiOptions = {}): Promise<{ jobUuid: string }> {
    const jobUuid = options.jobUuid ?? randomUUID();
    const reply = await this.command(`bgapi ${command}`, { 'Job-UUID': jobUuid }, options);
    const fromReply = reply.headers['Job-UUID'] ?? /^\+OK Job-UUID:\s*(\S+)/.exec(reply.replyText)?.[1];
    return { jobUuid: fromReply ?? jobUuid };
  }

  /**
   * Any other command (`filter`, `sendmsg <uuid>` with headers, `nixevent`...): resolves with the
   * command/reply, rejects with EslCommandError when its Reply-Text starts with `-ERR`.
   */
  async command(command: string, headers?: Record<string, string>, options: EslCommandOptions = {}): Promise<EslReply> {
    const frame = await this.send(command, headers, options.timeoutMs);
    const replyText = frame.headers['Reply-Text'] ?? '';
    if (replyText.startsWith('-ERR')) throw new EslCommandError(eslCommandName(command), replyText);
    return frame.body === undefined ? { replyText, headers: frame.headers } : { replyText, headers: frame.headers, body: frame.body };
  }

  private send(command: string, headers: Record<string, string> | undefined, timeoutMs?: number): Promise<EslFrame> {
    const name = eslCommandName(command);
    const wire = encodeCommand(command, headers);
    const connection = this.connection;
    if (this.currentState !== 'connected' || !connection?.ready || connection.closed || connection.socket.destroyed) {
      return Promise.reject(new EslNotConnectedError(name));
    }
    return new Promise<EslFrame>((resolve, reject) => {
      const pending = this.makeCommand(name, wire, timeoutMs ?? this.options.commandTimeoutMs, resolve, reject);
      pending.timer = setTimeout(() => this.onCommandTimeout(connection, pending), pending.timeoutMs);
      connection.queue.push(pending);
      this.pump(connection);
    });
  }

  private makeCommand(
    name: string,
    wire: string,
    timeoutMs: number,
    resolve: (frame: EslFrame) => void,
    reject: (error: Error) => void,
  ): PendingCommand {
    return { name, wire, timeoutMs, resolve, reject, sent: false, settled: false, timer: undefined };
  }

  private settle(pending: PendingCommand, outcome: Error | EslFrame): void {
    if (pending.settled) return;
    pending.settled = true;
    if (pending.timer) clearTimeout(pending.timer);
    pending.timer = undefined;
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  /**
   * Writes queued commands: before the connection is ready (auth, the event subscription) one at
   * a time, each after the reply of the one before; once ready, up to MAX_WRITTEN awaiting replies.
   */
  private pump(connection: Connection): void {
    const limit = connection.ready ? MAX_WRITTEN : 1;
    const wires: string[] = [];
    while (!connection.closed && !connection.socket.destroyed && connection.written.length < limit) {
      const next = connection.queue.shift();
      if (!next) break;
      connection.written.push(next);
      next.sent = true;
      this.logger.debug({ command: next.name, connection: connection.id }, 'ESL command sent');
      wires.push(next.wire);
    }
    // One write for the commands queued together.
    if (wires.length > 0) connection.socket.write(wires.join(''));
  }

  private onCommandTimeout(connection: Connection, pending: PendingCommand): void {
    pending.timer = undefined;
    if (pending.settled) return;
    if (!pending.sent) {
      // Still queued behind another command: it never left, the connection is not at fault.
      const index = connection.queue.indexOf(pending);
      if (index >= 0) connection.queue.splice(index, 1);
      this.settle(pending, new EslTimeoutError(pending.name, pending.timeoutMs, false));
      return;
    }
    const position = connection.written.indexOf(pending);
    if (connection.written.slice(0, position).some((earlier) => !earlier.settled)) {
      // Waiting behind an earlier command still within its own deadline: this one fails alone,
      // and keeps its place in line, so that its reply, when it comes, goes to nobody else.
      this.settle(pending, new EslTimeoutError(pending.name, pending.timeoutMs, true));
      return;
    }
    this.logger.warn(
      { command: pending.name, timeoutMs: pending.timeoutMs, connection: connection.id },
      'ESL command got no reply in time; dropping the connection (FreeSWITCH is not answering)',
    );
    this.settle(pending, new EslTimeoutError(pending.name, pending.timeoutMs, true));
    this.destroy(connection, `no reply to ${pending.name} within ${pending.timeoutMs} ms`);
  }

  private connect(): void {
    if (!this.started) return;
    this.setState('connecting');
    const id = ++this.connectionSeq;
    const { host, port } = this.options;
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 15_000);
    const connection: Connection = {
      id,
      socket,
      parser: new EslFrameParser(),
      queue: [],
      written: [],
      ready: false,
      closed: false,
      connectTimer: undefined,
      closeReason: undefined,
    };
    this.connection = connection;
    connection.connectTimer = setTimeout(() => {
      connection.connectTimer = undefined;
      this.logger.warn({ host, port, timeoutMs: this.options.connectTimeoutMs }, 'ESL connection not ready in time');
      this.destroy(connection, 'connect timeout');
    }, this.options.connectTimeoutMs);

    socket.on('data', (chunk: Buffer) => this.onData(connection, chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      connection.closeReason ??= error.code ?? error.message;
      this.logger.warn({ host, port, err: { code: error.code, message: error.message } }, 'ESL socket error');
    });
    socket.on('close', () => this.onClose(connection));
  }

  private onData(connection: Connection, chunk: Buffer): void {
    if (connection.closed) return;
    let frames: EslFrame[];
    try {
      frames = connection.parser.push(chunk);
    } catch (error) {
      this.logger.error({ err: { message: (error as Error).message } }, 'ESL protocol error; dropping the connection');
      this.destroy(connection, 'protocol error');
      return;
    }
    for (const frame of frames) {
      if (connection.closed) return;
      this.onFrame(connection, frame);
    }
  }

  private onFrame(connection: Connection, frame: EslFrame): void {
    const type = frame.headers['Content-Type'] ?? '';
    if (REPLY_TYPES.has(type)) {
      const pending = connection.written.shift();
      if (!pending) {
        this.logger.warn({ type, connection: connection.id }, 'ESL reply without a pending command; ignored');
        return;
      }
      this.settle(pending, frame);
      this.pump(connection);
      return;
    }
    if (type === 'auth/request') {
      this.authenticate(connection);
      return;
    }
    if (type.startsWith('text/event-')) {
      const event = parseEvent(frame);
      if (!event) {
        this.logger.warn({ type }, 'ESL event frame not understood; ignored');
        return;
      }
      this.emit('event', event);
      return;
    }
    if (type === 'text/disconnect-notice') {
      this.logger.info({ connection: connection.id }, 'FreeSWITCH is closing the Event Socket connection');
      connection.closeReason ??= 'disconnect notice';
      return;
    }
    if (type === 'text/rude-rejection') {
      this.logger.error({ host: this.options.host, body: frame.body?.trim() }, 'FreeSWITCH rejected the Event Socket connection (ACL)');
      connection.closeReason ??= 'rejected by FreeSWITCH ACL';
      return;
    }
    this.logger.debug({ type }, 'ESL frame ignored');
  }

  private authenticate(connection: Connection): void {
    if (connection.ready || connection.written.length > 0 || connection.queue.length > 0) {
      this.logger.warn({ connection: connection.id }, 'Unexpected auth/request; ignored');
      return;
    }
    const auth = this.makeCommand(
      'auth',
      encodeCommand(`auth ${this.options.password}`),
      this.options.connectTimeoutMs,
      (frame) => {
        const replyText = frame.headers['Reply-Text'] ?? '';
        if (!replyText.startsWith('+OK')) {
          const error = new EslAuthError(replyText);
          this.logger.error(
            { host: this.options.host, port: this.options.port, reply: replyText },
            'FreeSWITCH refused the Event Socket password; will retry with backoff',
          );
          connection.closeReason = 'authentication failed';
          this.emit('auth_failed', error);
          this.destroy(connection, 'authentication failed');
          return;
        }
        this.subscribe(connection);
      },
      () => {},
    );
    connection.queue.push(auth);
    this.pump(connection);
  }

  private subscribe(connection: Connection): void {
    const { eventFormat, events } = this.options;
    const command = `event ${eventFormat} ${events.join(' ')}`;
    const subscribe = this.makeCommand(
      'event',
      encodeCommand(command),
      this.options.connectTimeoutMs,
      (frame) => {
        const replyText = frame.headers['Reply-Text'] ?? '';
        if (!replyText.startsWith('+OK')) {
          this.logger.error({ reply: replyText }, 'FreeSWITCH refused the event subscription');
          this.destroy(connection, 'event subscription refused');
          return;
        }
        this.onReady(connection);
      },
      () => {},
    );
    connection.queue.push(subscribe);
    this.pump(connection);
  }

  private onReady(connection: Connection): void {
    if (connection.connectTimer) clearTimeout(connection.connectTimer);
    connection.connectTimer = undefined;
    if (this.currentState === 'stopped') return;
    connection.ready = true;
    this.attempt = 0;
    this.logger.info({ host: this.options.host, port: this.options.port, connection: connection.id }, 'Connected to FreeSWITCH Event Socket');
    this.setState('connected');
    this.emit('connected');
  }

  private destroy(connection: Connection, reason: string): void {
    if (connection.closed) return;
    connection.closeReason ??= reason;
    connection.socket.destroy();
  }

  private onClose(connection: Connection): void {
    if (connection.closed) return;
    connection.closed = true;
    if (connection.connectTimer) clearTimeout(connection.connectTimer);
    connection.connectTimer = undefined;
    const reason = connection.closeReason ?? 'closed by peer';
    const cause = new Error(reason);
    for (const written of connection.written.splice(0)) {
      this.settle(written, new EslConnectionLostError(written.name, true, { cause }));
    }
    for (const queued of connection.queue.splice(0)) {
      this.settle(queued, new EslConnectionLostError(queued.name, false, { cause }));
    }
    if (this.connection === connection) this.connection = undefined;
    const wasReady = connection.ready;
    connection.ready = false;
    if (this.currentState === 'stopped') {
      this.logger.info({ connection: connection.id }, 'Event Socket connection closed (stopped)');
      return;
    }
    if (wasReady) {
      this.logger.warn({ reason, connection: connection.id }, 'Lost the FreeSWITCH Event Socket connection');
    }
    this.setState('disconnected');
    if (wasReady) this.emit('disconnected', { reason });
    this.scheduleReconnect(reason);
  }

  private scheduleReconnect(reason: string): void {
    if (!this.started || this.reconnectTimer) return;
    const { initialDelayMs, maxDelayMs } = this.options.reconnect;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(this.attempt, 30));
    const delayMs = Math.round(Math.random() * ceiling);
    this.attempt++;
    this.logger.debug({ delayMs, attempt: this.attempt, reason }, 'ESL reconnect scheduled');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delayMs);
  }

  private clearReconnectTimer(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  private setState(state: EslClientState): void {
    if (this.currentState === state) return;
    if (this.currentState === 'stopped') return;
    this.currentState = state;
    this.emit('state', state);
  }
}
