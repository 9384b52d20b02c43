/**
 * FreeSWITCH Event Socket framing, without I/O (see /work/shared/fixtures/freeswitch-esl/README.md).
 *
 * A server frame is `Name: value\n` header lines, a blank line, then exactly `Content-Length`
 * BYTES of body when that header is present (`command/reply` and `auth/request` have none). LF
 * only. Event bodies (`text/event-plain`) are themselves `Key: url-encoded value` lines, a blank
 * line, and, for events with a body of their own (BACKGROUND_JOB), that body sized by the inner
 * `Content-Length`. `text/event-json` bodies are a JSON object, values not encoded, body in `_body`.
 */
import { EslProtocolError } from './esl-errors.js';

export interface EslFrame {
  /** Outer frame headers, raw (not URL-decoded); on duplicates the first value is kept. */
  headers: Record<string, string>;
  /** The Content-Length bytes after the headers, decoded as UTF-8. */
  body?: string;
}

export interface EslEvent {
  /** `Event-Name`, e.g. CHANNEL_ANSWER, BACKGROUND_JOB, CUSTOM. */
  name: string;
  /** Event headers; plain format: URL-decoded. Duplicated keys keep the first value. */
  headers: Record<string, string>;
  /** The event's own body: plain format, the bytes after the inner blank line; json, `_body`. */
  body?: string;
}

const LF = 0x0a;
const HEADER_END = Buffer.from('\n\n');
/** Refuse absurd frames instead of buffering forever (largest real events are a few tens of KB). */
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/**
 * Streaming frame parser. Push every chunk read from the socket, in order; it returns the frames
 * completed by that chunk (zero or more). Frames may be split at any byte, several may share a
 * chunk. Throws EslProtocolError on bytes that cannot be framed (the connection is then unusable).
 */
export class EslFrameParser {
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;
  /** Where to resume looking for the blank line that ends the headers. */
  private scanFrom = 0;
  private pending: { headers: Record<string, string>; length: number } | undefined;

  /** Bytes received but not yet part of a returned frame. */
  get bufferedBytes(): number {
    return this.end - this.start;
  }

  push(chunk: Buffer): EslFrame[] {
    this.append(chunk);
    const frames: EslFrame[] = [];
    for (;;) {
      if (this.pending) {
        const { headers, length } = this.pending;
        if (this.end - this.start < length) break;
        const body = this.buf.toString('utf8', this.start, this.start + length);
        this.start += length;
        this.scanFrom = this.start;
        this.pending = undefined;
        frames.push({ headers, body });
        continue;
      }
      // Tolerate stray blank lines between frames.
      while (this.start < this.end && this.buf[this.start] === LF) this.start++;
      if (this.scanFrom < this.start) this.scanFrom = this.start;
      if (this.start === this.end) break;
      const rel = this.buf.subarray(this.scanFrom, this.end).indexOf(HEADER_END);
      if (rel < 0) {
        if (this.end - this.start > MAX_HEADER_BYTES) {
          throw new EslProtocolError(`Event Socket frame headers exceed ${MAX_HEADER_BYTES} bytes`);
        }
        // The blank line may straddle this chunk and the next: re-scan the last byte.
        this.scanFrom = Math.max(this.start, this.end - 1);
        break;
      }
      const headerEnd = this.scanFrom + rel;
      const headers = parseHeaderBlock(this.buf.toString('utf8', this.start, headerEnd), false);
      this.start = headerEnd + HEADER_END.length;
      this.scanFrom = this.start;
      const lengthText = headers['Content-Length'];
      if (lengthText === undefined) {
        frames.push({ headers });
        continue;
      }
      this.pending = { headers, length: parseContentLength(lengthText) };
    }
    this.compact();
    return frames;
  }

  private append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.end + chunk.length > this.buf.length) {
      const live = this.end - this.start;
      const needed = live + chunk.length;
      if (needed <= this.buf.length) {
        this.buf.copy(this.buf, 0, this.start, this.end);
      } else {
        const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2, 4096));
        this.buf.copy(grown, 0, this.start, this.end);
        this.buf = grown;
      }
      this.scanFrom -= this.start;
      this.start = 0;
      this.end = live;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
  }

  private compact(): void {
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
      this.scanFrom = 0;
      // Do not keep a large buffer alive after one big frame.
      if (this.buf.length > 1024 * 1024) this.buf = Buffer.alloc(0);
    }
  }
}

function parseContentLength(text: string): number {
  if (!/^\d{1,10}$/.test(text.trim())) throw new EslProtocolError(`Invalid Content-Length "${text.slice(0, 20)}"`);
  const length = Number(text.trim());
  if (length > MAX_BODY_BYTES) throw new EslProtocolError(`Content-Length ${length} too large`);
  return length;
}

/** `Name: value` lines → record; first value wins on duplicates; lines without a colon are skipped. */
function parseHeaderBlock(block: string, urlDecode: boolean): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const rawLine of block.split('\n')) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    if (Object.hasOwn(headers, name)) continue;
    let value = line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    headers[name] = urlDecode ? safeDecodeURIComponent(value) : value;
  }
  return headers;
}

/** decodeURIComponent that returns the raw text instead of throwing on a malformed escape. */
export function safeDecodeURIComponent(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** The event carried by a `text/event-plain` or `text/event-json` frame; undefined for other frames or unreadable bodies. */
export function parseEvent(frame: EslFrame): EslEvent | undefined {
  const type = frame.headers['Content-Type'];
  if (frame.body === undefined) return undefined;
  if (type === 'text/event-plain') return parsePlainEvent(frame.body);
  if (type === 'text/event-json') return parseJsonEvent(frame.body);
  return undefined;
}

function parsePlainEvent(text: string): EslEvent | undefined {
  const blank = text.indexOf('\n\n');
  const headerText = blank < 0 ? text : text.slice(0, blank);
  const headers = parseHeaderBlock(headerText, true);
  const name = headers['Event-Name'];
  if (!name) return undefined;
  const event: EslEvent = { name, headers };
  if (blank >= 0) {
    let body = text.slice(blank + 2);
    const innerLength = headers['Content-Length'];
    if (innerLength !== undefined && /^\d+$/.test(innerLength)) {
      const bytes = Buffer.from(body, 'utf8');
      if (bytes.length > Number(innerLength)) body = bytes.toString('utf8', 0, Number(innerLength));
    }
    if (body.length > 0 || innerLength !== undefined) event.body = body;
  }
  return event;
}

function parseJsonEvent(text: string): EslEvent | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const headers: Record<string, string> = {};
  let body: string | undefined;
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === '_body') {
      if (typeof value === 'string') body = value;
      continue;
    }
    // FreeSWITCH serialises multi-valued headers as arrays: keep the first, as for plain.
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') headers[key] = first;
    else if (typeof first === 'number' || typeof first === 'boolean') headers[key] = String(first);
  }
  const name = headers['Event-Name'];
  if (!name) return undefined;
  return body === undefined ? { name, headers } : { name, headers, body };
}

/**
 * `command\n[Header: value\n]...\n`. Refuses (EslProtocolError) any CR or LF in the command or
 * the headers: a newline would end the command early and let the rest run as a second command.
 */
export function encodeCommand(command: string, extraHeaders?: Record<string, string>): string {
  if (command.trim().length === 0) throw new EslProtocolError('Empty Event Socket command');
  if (/[\r\n]/.test(command)) throw new EslProtocolError('Event Socket command contains a line break');
  let text = `${command}\n`;
  for (const [name, value] of Object.entries(extraHeaders ?? {})) {
    if (!/^[^\s:]+$/.test(name)) throw new EslProtocolError(`Invalid Event Socket header name "${name.slice(0, 40)}"`);
    if (/[\r\n]/.test(value)) throw new EslProtocolError(`Event Socket header ${name} contains a line break`);
    text += `${name}: ${value}\n`;
  }
  return `${text}\n`;
}
