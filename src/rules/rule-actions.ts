/**
 * What a rule does when it matches: the registry of action types. Each entry brings its request
 * schema, the schema of its stored (normalised) form, `normalize` (checks what a schema cannot,
 * fills every default, turns numbers into E.164) and `describe` (one line for logs). Adding an
 * action (an SMS, a speaker announcement) is adding one entry to `ruleActions`: the API schema,
 * the validation and the rules service read this table and never look at a type themselves.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { invalidField } from '../http/problems.js';
import { E164, PhoneNumberInput } from '../http/schemas.js';

/** What an action's `normalize` may use from the service that calls it. */
export interface ActionHelpers {
  /** Where the action is in the request (`body.action`); errors name fields under it (`body.action.to.1`). */
  field: string;
  /** The E.164 form of a number written any common way, or a 422 naming `field`. */
  msisdnOf: (field: string, text: string) => string;
}

export interface RuleActionSpec<Schema extends TSchema, Stored extends { type: string }> {
  description: string;
  /** The action as the API accepts it; `type` is a literal naming the entry. */
  schema: Schema;
  /** The action as stored and returned: normalised, every default filled. */
  stored: TSchema;
  normalize(input: Static<Schema>, helpers: ActionHelpers): Stored;
  /** One line saying what the action does, for the event log. */
  describe(action: Stored): string;
}

// ---------------------------------------------------------------------------------------------
// call: phone calls down an escalation list until someone answers (or acknowledges).

/**
 * What a spoken message may contain: letters of any script, digits, spaces and `. , ! ? : ; - ( ) % + / № @ *`.
 * It is read out by FreeSWITCH, so quotes, braces, brackets, pipes, `&`, `\`, `<>`, `$`, control
 * characters and newlines can never reach a dial string or an application argument.
 * Ajv compiles patterns with the `u` flag, which `\p{...}` needs.
 */
export const MESSAGE_PATTERN = '^[\\p{L}\\p{M}\\p{N} .,!?:;()%+/№@*-]+$';
const speakable = new RegExp(MESSAGE_PATTERN, 'u');
const hasWords = /[\p{L}\p{N}]/u;

export const callDefaults = { ring_timeout_s: 30, attempts: 2, retry_delay_s: 60, require_ack: true } as const;
const MAX_CALL_NUMBERS = 10;

const CallActionInput = Type.Object(
  {
    type: Type.Literal('call'),
    to: Type.Array(PhoneNumberInput, {
      minItems: 1,
      maxItems: MAX_CALL_NUMBERS,
      description: `Numbers to call, in escalation order (1 to ${MAX_CALL_NUMBERS}, each once); any common spelling, stored as E.164.`,
    }),
    message: Type.String({
      minLength: 1,
      maxLength: 500,
      pattern: MESSAGE_PATTERN,
      description:
        'Spoken when the call is answered. Letters of any script, digits, spaces and `. , ! ? : ; - ( ) % + / № @ *` only: no quotes, brackets, braces, pipes, `&`, `\\`, `<>` or newlines.',
      examples: ['Пожар на кухне! Нажмите 1, чтобы подтвердить.'],
    }),
    caller_id: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 32,
        description: 'Number shown to the called party; unset means the switch default. Any common spelling, stored as E.164.',
        examples: ['+74951234567'],
      }),
    ),
    ring_timeout_s: Type.Optional(
      Type.Integer({ minimum: 5, maximum: 120, default: callDefaults.ring_timeout_s, description: 'Seconds a call rings before it counts as not answered.' }),
    ),
    attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: callDefaults.attempts, description: 'Calls to each number before the next one.' })),
    retry_delay_s: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3600, default: callDefaults.retry_delay_s, description: 'Seconds between two attempts on the same number.' }),
    ),
    require_ack: Type.Optional(
      Type.Boolean({
        default: callDefaults.require_ack,
        description: 'Whether the called party must acknowledge (not merely answer) for the alarm to stop escalating.',
      }),
    ),
  },
  { additionalProperties: false, title: 'Call action', description: 'Place alarm calls, escalating down `to`.' },
);

/** A stored `call` action: numbers in E.164, every default filled. */
export interface CallAction {
  type: 'call';
  /** E.164 numbers in escalation order, no duplicates. */
  to: string[];
  message: string;
  /** E.164, or null for the switch's default caller id. */
  caller_id: string | null;
  ring_timeout_s: number;
  /** Calls to each number. */
  attempts: number;
  retry_delay_s: number;
  require_ack: boolean;
}

const StoredCallAction = Type.Object(
  {
    type: Type.Literal('call'),
    to: Type.Array(E164),
    message: Type.String(),
    caller_id: Type.Union([E164, Type.Null()]),
    ring_timeout_s: Type.Integer(),
    attempts: Type.Integer(),
    retry_delay_s: Type.Integer(),
    require_ack: Type.Boolean(),
  },
  { title: 'Call action' },
);

const callAction = {
  description: 'Place alarm calls to a list of numbers, in order, until someone answers (or acknowledges).',
  schema: CallActionInput,
  stored: StoredCallAction,
  normalize(input, { field, msisdnOf }): CallAction {
    const firstIndex = new Map<string, number>();
    const to = input.to.map((text, index) => {
      const number = msisdnOf(`${field}.to.${index}`, text);
      const earlier = firstIndex.get(number);
      if (earlier !== undefined) throw invalidField(`${field}.to.${index}`, `is ${number} again (already ${field}.to.${earlier}); list each number once`);
      firstIndex.set(number, index);
      return number;
    });
    const message = input.message.trim();
    // The schema says the same; checked again because this text is handed to the switch.
    if (!speakable.test(message)) {
      throw invalidField(`${field}.message`, 'may contain letters, digits, spaces and . , ! ? : ; - ( ) % + / № @ * only');
    }
    if (!hasWords.test(message)) throw invalidField(`${field}.message`, 'must contain at least one letter or digit');
    return {
      type: 'call',
      to,
      message,
      caller_id: input.caller_id === undefined ? null : msisdnOf(`${field}.caller_id`, input.caller_id),
      ring_timeout_s: input.ring_timeout_s ?? callDefaults.ring_timeout_s,
      attempts: input.attempts ?? callDefaults.attempts,
      retry_delay_s: input.retry_delay_s ?? callDefaults.retry_delay_s,
      require_ack: input.require_ack ?? callDefaults.require_ack,
    };
  },
  describe(action) {
    return (
      `call ${action.to.join(', ')} (${action.attempts} attempt${action.attempts === 1 ? '' : 's'} each, ` +
      `ringing ${action.ring_timeout_s} s, ${action.retry_delay_s} s apart, until ${action.require_ack ? 'acknowledged' : 'answered'})`
    );
  },
} satisfies RuleActionSpec<typeof CallActionInput, CallAction>;

// ---------------------------------------------------------------------------------------------
// The registry.

export const ruleActions = { call: callAction } as const;

export type RuleActionType = keyof typeof ruleActions;
export const ruleActionTypes = Object.keys(ruleActions) as RuleActionType[];

type Specs = typeof ruleActions;
/** An action as the API accepts it (one of the registry's request schemas). */
export type RuleActionInput = { [K in RuleActionType]: Static<Specs[K]['schema']> }[RuleActionType];
/** An action as stored: normalised, every default filled. */
export type RuleAction = { [K in RuleActionType]: ReturnType<Specs[K]['normalize']> }[RuleActionType];

const actionsDescription = `What the rule does when it matches; \`type\` is one of: ${ruleActionTypes
  .map((type) => `\`${type}\` (${ruleActions[type].description})`)
  .join(', ')}.`;

/** The `action` of a request body: anyOf the registry's request schemas. */
export const RuleActionSchema = Type.Unsafe<RuleActionInput>(
  Type.Union(
    ruleActionTypes.map((type) => ruleActions[type].schema),
    { description: actionsDescription },
  ),
);

/** The `action` of a rule in responses: anyOf the registry's stored schemas. */
export const StoredRuleActionSchema = Type.Unsafe<RuleAction>(
  Type.Union(
    ruleActionTypes.map((type) => ruleActions[type].stored),
    { description: 'The action as stored: numbers in E.164, every default shown.' },
  ),
);

/** The entries seen without their types, so code dispatching on `type` needs no switch over them. */
interface AnyActionSpec {
  normalize(input: RuleActionInput, helpers: ActionHelpers): RuleAction;
  describe(action: RuleAction): string;
}

const untypedActions = ruleActions as unknown as Readonly<Partial<Record<string, AnyActionSpec>>>;

function specOf(type: string): AnyActionSpec {
  const spec = Object.hasOwn(untypedActions, type) ? untypedActions[type] : undefined;
  if (!spec) throw new Error(`unknown rule action type ${JSON.stringify(type)}`);
  return spec;
}

/** The stored form of a validated action (422 naming the field for what the schema cannot check). */
export function normalizeAction(input: RuleActionInput, helpers: ActionHelpers): RuleAction {
  return specOf(input.type).normalize(input, helpers);
}

export function describeAction(action: RuleAction): string {
  return specOf(action.type).describe(action);
}

/**
 * A 422 saying which action types exist, when `action.type` names none of them. Run before the
 * schema: anyOf alone would only say that no branch matched, branch by branch.
 */
export function checkActionType(action: unknown, field: string): void {
  if (!action || typeof action !== 'object' || Array.isArray(action)) return;
  const type = (action as { type?: unknown }).type;
  if (type === undefined) return; // the schema reports it as required
  if (typeof type === 'string' && Object.hasOwn(ruleActions, type)) return;
  throw invalidField(`${field}.type`, `must be one of: ${ruleActionTypes.join(', ')}`);
}

/** A stored action read back from the database (the jsonb column). */
export function storedAction(value: unknown): RuleAction {
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.hasOwn(ruleActions, type)) throw new Error(`stored rule action has an unknown type: ${JSON.stringify(type)}`);
  return value as RuleAction;
}
