/**
 * The `originate` command for FreeSWITCH, built only from text that cannot change its meaning.
 *
 * An originate line is parsed by FreeSWITCH in several layers: `{a=b,c=d}` channel variables
 * (split on `,`, quoted with `'`), `[..]`/`<..>` per-leg variables, `|` and `,` between dial
 * strings (sequential / simultaneous ringing), `:_:` enterprise originate, `${...}` variable and
 * API expansion (`${system(...)}`!), then a space and the application. A phone number or caller id
 * carrying any of those characters could dial someone else, ring several people, or run commands
 * on the switch. So every input is validated strictly (E.164, lowercase uuid, integer timeout,
 * the config's template pattern), and the finished command is checked once more against the only
 * shape it can legitimately have: defence in depth, should a validator ever be loosened.
 */
import { isE164 } from '../../phone-numbers/msisdn.js';
import type { CallRequest } from '../telephony.js';

export type UnsafeDialInputField =
  | 'to'
  | 'callerId'
  | 'callId'
  | 'ringTimeoutS'
  | 'dialStringTemplate'
  | 'ttsEngine'
  | 'ttsVoice'
  | 'message'
  | 'command';

/**
 * Input that must never reach FreeSWITCH. Upstream validation should have refused it already, so
 * this is a programming error, not a call failure. The offending value is deliberately not part
 * of the message (it may be hostile, or a phone number).
 */
export class UnsafeDialInputError extends Error {
  override name = 'UnsafeDialInputError';
  readonly code = 'UNSAFE_DIAL_INPUT';

  constructor(
    readonly field: UnsafeDialInputField,
    reason: string,
  ) {
    super(`Refusing to build a FreeSWITCH command: ${field} ${reason}`);
  }
}

export interface OriginateSettings {
  /** FREESWITCH_DIAL_STRING, e.g. `sofia/gateway/tas/{number}`. */
  dialStringTemplate: string;
  /** FREESWITCH_TTS_ENGINE, e.g. `flite`. */
  ttsEngine: string;
  /** FREESWITCH_TTS_VOICE, e.g. `kal`. */
  ttsVoice: string;
}

/** Our call ids are channel uuids: exactly what crypto.randomUUID() produces. */
export const CALL_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Same as the FREESWITCH_DIAL_STRING config pattern. */
const TEMPLATE_PATTERN = /^[A-Za-z0-9/_.:@=-]*\{number\}[A-Za-z0-9/_.:@=-]*$/;
/** Same as the FREESWITCH_TTS_ENGINE / FREESWITCH_TTS_VOICE config patterns. */
const TTS_NAME_PATTERN = /^[A-Za-z0-9_-]{1,50}$/;
export const MAX_RING_TIMEOUT_S = 600;
/** How long a parked (answered) call may stay up beyond the ring timeout before FreeSWITCH hangs it up. */
export const PARK_GRACE_S = 120;

/** Every character an originate command built here can contain. */
const COMMAND_CHARSET = /^[A-Za-z0-9{}=,_/.:@+&() -]+$/;
/** The one shape a command built here can have. */
const COMMAND_SHAPE = new RegExp(
  '^originate \\{' +
    'origination_uuid=([0-9a-f-]{36}),tig_call_id=\\1,' +
    '(?:origination_caller_id_number=\\+[0-9]{7,15},)?' +
    'originate_timeout=[0-9]{1,3},ignore_early_media=true,park_timeout=[0-9]{1,3},' +
    'tts_engine=[A-Za-z0-9_-]{1,50},tts_voice=[A-Za-z0-9_-]{1,50}' +
    '\\}[A-Za-z0-9/_.:@=+-]+ &park\\(\\)$',
);

/** Throws UnsafeDialInputError unless `settings` match the config patterns. */
export function assertSafeOriginateSettings(settings: OriginateSettings): void {
  const { dialStringTemplate, ttsEngine, ttsVoice } = settings;
  if (typeof dialStringTemplate !== 'string' || !TEMPLATE_PATTERN.test(dialStringTemplate)) {
    throw new UnsafeDialInputError('dialStringTemplate', 'must be letters, digits and / _ . : @ = - around one {number}');
  }
  if (dialStringTemplate.split('{number}').length !== 2) {
    throw new UnsafeDialInputError('dialStringTemplate', 'must contain {number} exactly once');
  }
  if (typeof ttsEngine !== 'string' || !TTS_NAME_PATTERN.test(ttsEngine)) {
    throw new UnsafeDialInputError('ttsEngine', 'must be 1-50 letters, digits, _ or -');
  }
  if (typeof ttsVoice !== 'string' || !TTS_NAME_PATTERN.test(ttsVoice)) {
    throw new UnsafeDialInputError('ttsVoice', 'must be 1-50 letters, digits, _ or -');
  }
}

/** Throws UnsafeDialInputError unless `callId` is a lowercase uuid. */
export function assertCallId(callId: unknown): asserts callId is string {
  if (typeof callId !== 'string' || !CALL_ID_PATTERN.test(callId)) {
    throw new UnsafeDialInputError('callId', 'must be a lowercase uuid');
  }
}

/**
 * The text after `bgapi `:
 * `originate {origination_uuid=<id>,tig_call_id=<id>[,origination_caller_id_number=<E.164>],originate_timeout=<s>,ignore_early_media=true,park_timeout=<s+120>,tts_engine=<e>,tts_voice=<v>}<dial string> &park()`.
 * Throws UnsafeDialInputError when any input is not exactly what it must be.
 */
export function buildOriginateCommand(request: CallRequest, settings: OriginateSettings): string {
  assertSafeOriginateSettings(settings);
  assertCallId(request.callId);
  if (typeof request.to !== 'string' || !isE164(request.to)) {
    throw new UnsafeDialInputError('to', 'must be strict E.164 (+ and 7-15 digits)');
  }
  if (request.callerId !== undefined && (typeof request.callerId !== 'string' || !isE164(request.callerId))) {
    throw new UnsafeDialInputError('callerId', 'must be strict E.164 (+ and 7-15 digits) or absent');
  }
  const ring = request.ringTimeoutS;
  if (typeof ring !== 'number' || !Number.isInteger(ring) || ring < 1 || ring > MAX_RING_TIMEOUT_S) {
    throw new UnsafeDialInputError('ringTimeoutS', `must be an integer from 1 to ${MAX_RING_TIMEOUT_S}`);
  }

  const variables = [
    `origination_uuid=${request.callId}`,
    `tig_call_id=${request.callId}`,
    ...(request.callerId === undefined ? [] : [`origination_caller_id_number=${request.callerId}`]),
    `originate_timeout=${ring}`,
    'ignore_early_media=true',
    `park_timeout=${ring + PARK_GRACE_S}`,
    `tts_engine=${settings.ttsEngine}`,
    `tts_voice=${settings.ttsVoice}`,
  ];
  const dialString = settings.dialStringTemplate.replace('{number}', () => request.to);
  const command = `originate {${variables.join(',')}}${dialString} &park()`;
  assertCommandShape(command);
  return command;
}

/** Defence in depth: the finished command, whatever the validators above let through. */
function assertCommandShape(command: string): void {
  if (!COMMAND_CHARSET.test(command) || command.includes('  ')) {
    throw new UnsafeDialInputError('command', 'contains characters an originate must not contain');
  }
  const open = command.indexOf('{');
  const close = command.indexOf('}');
  if (open !== 'originate '.length || command.lastIndexOf('{') !== open || close < 0 || command.lastIndexOf('}') !== close) {
    throw new UnsafeDialInputError('command', 'has braces outside the channel variable block');
  }
  if (!COMMAND_SHAPE.test(command)) {
    throw new UnsafeDialInputError('command', 'does not have the shape of an originate built here');
  }
}

/** Longest spoken message accepted (a few sentences; TTS of more is not an alarm). */
export const MAX_MESSAGE_LENGTH = 1000;

/**
 * Throws UnsafeDialInputError unless `message` can be handed to `speak` as a sendmsg header:
 * no control characters or line breaks (they would end the Event Socket header and inject
 * another), no `${` (FreeSWITCH expands variables, and API calls such as `${system(...)}`, in
 * application arguments), not empty, at most MAX_MESSAGE_LENGTH characters.
 */
export function assertSafeMessage(message: unknown): asserts message is string {
  if (typeof message !== 'string' || message.trim().length === 0) {
    throw new UnsafeDialInputError('message', 'must be non-empty text');
  }
  if (message.length > MAX_MESSAGE_LENGTH) {
    throw new UnsafeDialInputError('message', `must be at most ${MAX_MESSAGE_LENGTH} characters`);
  }
  if (hasControlCharacter(message)) {
    throw new UnsafeDialInputError('message', 'must not contain control characters or line breaks');
  }
  if (message.includes('${')) {
    throw new UnsafeDialInputError('message', 'must not contain "${" (FreeSWITCH variable expansion)');
  }
}

/** C0 and C1 controls, DEL, and the Unicode line and paragraph separators. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029) return true;
  }
  return false;
}
