/**
 * Errors of the FreeSWITCH Event Socket client. Every one carries a stable `code`; the ones that
 * concern a command carry only its name ("api uuid_exists", "bgapi originate"), never its
 * arguments, which may hold phone numbers or the password.
 */

export type EslErrorCode =
  | 'ESL_AUTH_FAILED'
  | 'ESL_TIMEOUT'
  | 'ESL_CONNECTION_LOST'
  | 'ESL_NOT_CONNECTED'
  | 'ESL_COMMAND_FAILED'
  | 'ESL_PROTOCOL';

export class EslError extends Error {
  readonly code: EslErrorCode;

  constructor(code: EslErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** FreeSWITCH answered `auth` with `-ERR invalid` (wrong password or ACL). */
export class EslAuthError extends EslError {
  constructor(readonly replyText: string) {
    super('ESL_AUTH_FAILED', `FreeSWITCH refused the Event Socket password (${replyText})`);
  }
}

/**
 * A command got no reply in time. When `sent` is true the command reached FreeSWITCH and may have
 * taken effect (an originate may be dialling); the client drops the connection because any later
 * reply could no longer be matched to its command.
 */
export class EslTimeoutError extends EslError {
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
    readonly sent: boolean,
  ) {
    super('ESL_TIMEOUT', `No reply to "${command}" within ${timeoutMs} ms${sent ? '' : ' (never sent)'}`);
  }
}

/**
 * The connection closed while the command was queued (`sent: false`, it never left) or written and
 * waiting for its reply (`sent: true`: FreeSWITCH may have run it). It is never re-sent; check
 * (e.g. `uuid_exists`) before trying again.
 */
export class EslConnectionLostError extends EslError {
  constructor(
    readonly command: string,
    readonly sent: boolean,
    options?: { cause?: unknown },
  ) {
    super(
      'ESL_CONNECTION_LOST',
      `Event Socket connection lost ${sent ? 'after sending' : 'before sending'} "${command}"`,
      options,
    );
  }
}

/** A command was issued while the client was not connected and authenticated. */
export class EslNotConnectedError extends EslError {
  constructor(readonly command: string) {
    super('ESL_NOT_CONNECTED', `Event Socket not connected, "${command}" not sent`);
  }
}

/** FreeSWITCH replied `-ERR ...` to a command (`replyText` holds that text). */
export class EslCommandError extends EslError {
  constructor(
    readonly command: string,
    readonly replyText: string,
  ) {
    super('ESL_COMMAND_FAILED', `"${command}" failed: ${replyText}`);
  }
}

/** Bytes that do not follow the Event Socket protocol, or a command that would break it. */
export class EslProtocolError extends EslError {
  constructor(message: string) {
    super('ESL_PROTOCOL', message);
  }
}

/**
 * The loggable name of a command: its first word, plus the second for `api`/`bgapi`
 * ("bgapi originate {...}sofia/... &park" → "bgapi originate"). Never contains arguments.
 */
export function eslCommandName(command: string): string {
  const [first = '', second = ''] = command.trim().split(/\s+/, 2);
  const name = /^[A-Za-z_][\w-]*/.exec(first)?.[0] ?? '';
  if (name !== 'api' && name !== 'bgapi') return name;
  const sub = /^[A-Za-z_][\w-]*/.exec(second)?.[0];
  return sub ? `${name} ${sub}` : name;
}
