/**
 * `simulate call` and `simulate event`: play the TAS or the smart-home system against a running
 * gateway, over its HTTP API, exactly as they would.
 */
import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { ExitCode, parseOptions, UsageError, type Command, type CommandContext } from './command.js';

const connection = {
  url: { type: 'string' as const, default: 'http://127.0.0.1:8080' },
  key: { type: 'string' as const },
};

const connectionHelp = `  --url URL        the gateway (default http://127.0.0.1:8080)
  --key KEY        an API key (default: the environment's IOT_GATEWAY_API_KEY, else ADMIN_API_KEY)`;

function apiKey(given: string | undefined, context: CommandContext): string {
  const key = given ?? context.env.IOT_GATEWAY_API_KEY ?? context.env.ADMIN_API_KEY;
  if (!key) throw new UsageError('an API key is needed: --key KEY, or IOT_GATEWAY_API_KEY in the environment');
  return key;
}

async function post(context: CommandContext, base: string, key: string, route: string, body: object, signingSecret?: string): Promise<number> {
  let url: URL;
  try {
    url = new URL(route, base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new UsageError(`--url ${base} is not a URL`);
  }
  const payload = JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-api-key': key };
  if (signingSecret) Object.assign(headers, signedHeaders(signingSecret, payload));
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers, body: payload, signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
    context.stderr.write(`iot-gateway: cannot reach the gateway at ${url.origin}: ${cause}\n`);
    return ExitCode.failed;
  }
  const answer = await response.text();
  let shown = answer;
  try {
    shown = JSON.stringify(JSON.parse(answer), null, 2);
  } catch {
    // Not JSON: shown as it came.
  }
  const line = `POST ${url.pathname} -> ${response.status} ${response.statusText}\n${shown}\n`;
  if (response.ok) {
    context.stdout.write(line);
    return ExitCode.ok;
  }
  context.stderr.write(line);
  return response.status < 500 ? ExitCode.refused : ExitCode.failed;
}

function signedHeaders(secret: string, payload: string): Record<string, string> {
  const id = `msg_${randomUUID()}`;
  const at = new Date();
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, at, payload),
  };
}

export const simulateCommands: Command[] = [
  {
    path: ['simulate', 'call'],
    synopsis: 'simulate call         Report a call to a subscriber, as the TAS does.',
    help: `Usage: iot-gateway simulate call --from CALLER --to CALLEE [--state ringing|answered|ended]
                                [--call-id ID] [--caller-name NAME] [--url URL] [--key KEY]

Reports a call to a running gateway (POST /api/v1/incoming-calls, key role telephony or admin):
the speakers bound to CALLEE are told. Send ringing first, then answered and/or ended with the
same --call-id (printed by the first).
  --from CALLER    the caller's number
  --to CALLEE      the subscriber's number (any spelling)
  --state STATE    ringing (default), answered or ended
  --call-id ID     the call's id (default: a new one)
  --caller-name N  shown on the speakers
${connectionHelp}
Prints the gateway's answer. Exit: 0 accepted, 4 refused (4xx), 1 failed (5xx, unreachable).`,
    async run(args, context) {
      const { values } = parseOptions(args, {
        from: { type: 'string' },
        to: { type: 'string' },
        state: { type: 'string', default: 'ringing' },
        'call-id': { type: 'string' },
        'caller-name': { type: 'string' },
        ...connection,
      });
      if (!values.from || !values.to) throw new UsageError('simulate call needs --from CALLER and --to CALLEE');
      if (!['ringing', 'answered', 'ended'].includes(values.state)) throw new UsageError('--state must be ringing, answered or ended');
      const key = apiKey(values.key, context);
      const callId = values['call-id'] ?? `sim-${randomUUID()}`;
      return post(context, values.url, key, 'api/v1/incoming-calls', {
        call_id: callId,
        caller: values.from,
        callee: values.to,
        state: values.state,
        ...(values['caller-name'] ? { caller_name: values['caller-name'] } : {}),
      });
    },
  },
  {
    path: ['simulate', 'event'],
    synopsis: 'simulate event        Send a device event, as the smart-home system does.',
    help: `Usage: iot-gateway simulate event --device DEVICE_ID --type EVENT_TYPE [--event-id ID]
                                 [--data JSON] [--url URL] [--key KEY]

Sends a device event to a running gateway (POST /api/v1/webhooks/events, key role webhook or
admin): the rules matching it start alarms and calls.
  --device ID      the device's device_id
  --type TYPE      smoke, smoke_cleared or test for a smoke sensor
  --event-id ID    the sender's id of the event (default: a new one; the same id again is a duplicate)
  --data JSON      extra data, a JSON object
${connectionHelp}
With WEBHOOK_SIGNING_SECRET in the environment the event is signed (Standard Webhooks).
Prints the gateway's answer. Exit: 0 accepted, 4 refused (4xx), 1 failed (5xx, unreachable).`,
    async run(args, context) {
      const { values } = parseOptions(args, {
        device: { type: 'string' },
        type: { type: 'string' },
        'event-id': { type: 'string' },
        data: { type: 'string' },
        ...connection,
      });
      if (!values.device || !values.type) throw new UsageError('simulate event needs --device DEVICE_ID and --type EVENT_TYPE');
      let data: unknown;
      if (values.data !== undefined) {
        try {
          data = JSON.parse(values.data);
        } catch {
          throw new UsageError('--data must be a JSON object');
        }
      }
      const key = apiKey(values.key, context);
      return post(
        context,
        values.url,
        key,
        'api/v1/webhooks/events',
        { event_id: values['event-id'] ?? `sim-${randomUUID()}`, device_id: values.device, event_type: values.type, ...(data === undefined ? {} : { data }) },
        context.env.WEBHOOK_SIGNING_SECRET || undefined,
      );
    },
  },
];
