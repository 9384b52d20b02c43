import { Type, type Static } from 'typebox';
import { PageQuery } from '../http/pagination.js';
import { E164, PhoneNumberInput, StringEnum, Timestamp } from '../http/schemas.js';
import { deviceTypeNames, deviceTypes } from './device-types.js';

export const DeviceId = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:@-]*$',
  description: "The smart-home system's own id of the device: letters, digits and . _ : @ -",
  examples: ['kitchen-smoke-1'],
});

export const DeviceTypeField = StringEnum(deviceTypeNames, {
  description: deviceTypeNames.map((name) => `\`${name}\`: ${deviceTypes[name].description}`).join(' '),
});

const Endpoint = Type.String({
  minLength: 1,
  maxLength: 2048,
  description: 'Where notifications go: an `http(s)://` URL (signed webhooks) or `mqtt://host:port/topic`. Speakers need one; sensors take none.',
  examples: ['https://speaker.example.net/notify', 'mqtt://127.0.0.1:1883/home/42/speaker'],
});

const Metadata = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  propertyNames: { minLength: 1, maxLength: 64 },
  maxProperties: 50,
  description: 'Free-form attributes of the device (room, model...): at most 50 keys of 1 to 64 characters.',
});

const Name = Type.String({ minLength: 1, maxLength: 200 });

export const CreateDeviceBody = Type.Object(
  {
    device_id: DeviceId,
    type: DeviceTypeField,
    msisdn: PhoneNumberInput,
    name: Type.Optional(Name),
    endpoint: Type.Optional(Endpoint),
    metadata: Type.Optional(Metadata),
    enabled: Type.Optional(Type.Boolean({ description: 'A disabled device is kept but receives and triggers nothing.' })),
  },
  { additionalProperties: false },
);
export type CreateDeviceBody = Static<typeof CreateDeviceBody>;

export const UpdateDeviceBody = Type.Object(
  {
    msisdn: Type.Optional(PhoneNumberInput),
    name: Type.Optional(Type.Union([Name, Type.Null()])),
    endpoint: Type.Optional(Type.Union([Endpoint, Type.Null()])),
    metadata: Type.Optional(Metadata),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1, description: 'Only the fields given change; `null` clears name or endpoint. device_id and type cannot change.' },
);
export type UpdateDeviceBody = Static<typeof UpdateDeviceBody>;

export const Device = Type.Object(
  {
    device_id: Type.String(),
    type: DeviceTypeField,
    msisdn: E164,
    name: Type.Union([Type.String(), Type.Null()]),
    endpoint: Type.Union([Type.String(), Type.Null()]),
    metadata: Type.Record(Type.String(), Type.Unknown()),
    enabled: Type.Boolean(),
    has_signing_secret: Type.Boolean(),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { $id: 'Device' },
);

export const DeviceWithSecret = Type.Object({
  ...Device.properties,
  signing_secret: Type.Optional(
    Type.String({ description: 'Standard Webhooks secret (`whsec_...`) the speaker verifies notifications with. Shown only now.' }),
  ),
});

export const SecretRotated = Type.Object({
  device_id: Type.String(),
  signing_secret: Type.String({ description: 'The new secret; the old one stops being used at once. Shown only now.' }),
});

export const DeviceParams = Type.Object({ device_id: DeviceId }, { additionalProperties: false });

export const DeviceListQuery = Type.Object(
  {
    type: Type.Optional(DeviceTypeField),
    msisdn: Type.Optional(PhoneNumberInput),
    ...PageQuery,
  },
  { additionalProperties: false },
);
