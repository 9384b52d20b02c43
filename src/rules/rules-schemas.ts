import { Type, type Static } from 'typebox';
import { deviceEventTypes } from '../devices/device-types.js';
import { DeviceId } from '../devices/devices-schemas.js';
import { PageQuery } from '../http/pagination.js';
import { E164, PhoneNumberInput, StringEnum, Timestamp } from '../http/schemas.js';
import { RuleActionSchema, StoredRuleActionSchema } from './rule-actions.js';

export const DEFAULT_COOLDOWN_S = 60;
const MAX_COOLDOWN_S = 86_400;

export const RuleId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The id the gateway gave the rule.' });

export const EventTypeField = StringEnum(deviceEventTypes, { description: `Event type the rule matches: ${deviceEventTypes.join(', ')}.` });

const Name = Type.String({ minLength: 1, maxLength: 200, description: 'What the rule is for, for people.' });

const cooldownDescription = 'Seconds after the rule starts an alarm for a device during which that device starts no other alarm by this rule.';

const TargetDeviceId = Type.String({ ...DeviceId, description: 'Match events of this registered device only. Give this or `msisdn`.' });
const TargetMsisdn = Type.String({
  ...PhoneNumberInput,
  description: 'Match events of every device bound to this number (any common spelling, stored as E.164). Give this or `device_id`.',
});

export const CreateRuleBody = Type.Object(
  {
    name: Name,
    event_type: EventTypeField,
    device_id: Type.Optional(TargetDeviceId),
    msisdn: Type.Optional(TargetMsisdn),
    action: RuleActionSchema,
    enabled: Type.Optional(Type.Boolean({ default: true, description: 'A disabled rule is kept but matches nothing.' })),
    cooldown_s: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_COOLDOWN_S, default: DEFAULT_COOLDOWN_S, description: cooldownDescription })),
  },
  { additionalProperties: false, description: 'Exactly one of `device_id` and `msisdn`.' },
);
export type CreateRuleBody = Static<typeof CreateRuleBody>;

// No defaults here: the body validator fills defaults, and a patch must change only what it names.
export const UpdateRuleBody = Type.Object(
  {
    name: Type.Optional(Name),
    enabled: Type.Optional(Type.Boolean()),
    cooldown_s: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_COOLDOWN_S, description: cooldownDescription })),
    action: Type.Optional(RuleActionSchema),
    event_type: Type.Optional(EventTypeField),
    device_id: Type.Optional(TargetDeviceId),
    msisdn: Type.Optional(TargetMsisdn),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'Only the fields given change; `action` is replaced whole. Setting `device_id` clears `msisdn` and the other way round.',
  },
);
export type UpdateRuleBody = Static<typeof UpdateRuleBody>;

export const Rule = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    enabled: Type.Boolean(),
    event_type: Type.String(),
    device_id: Type.Union([Type.String(), Type.Null()], { description: 'The device the rule matches, or null when it matches by number.' }),
    msisdn: Type.Union([E164, Type.Null()], { description: 'The number whose devices the rule matches, or null when it matches one device.' }),
    action: StoredRuleActionSchema,
    cooldown_s: Type.Integer({ description: cooldownDescription }),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { $id: 'Rule' },
);

export const RuleParams = Type.Object({ id: RuleId }, { additionalProperties: false });

export const RuleListQuery = Type.Object(
  {
    event_type: Type.Optional(EventTypeField),
    device_id: Type.Optional(DeviceId),
    msisdn: Type.Optional(PhoneNumberInput),
    enabled: Type.Optional(Type.Boolean()),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type RuleListQuery = Static<typeof RuleListQuery>;
