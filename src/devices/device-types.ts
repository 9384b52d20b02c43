/**
 * The kinds of device the registry knows. Adding a type is adding an entry here: the API schema,
 * the validation and the docs all read this table.
 */
export interface DeviceTypeSpec {
  description: string;
  /** Whether the device must, may not, or may give an endpoint the gateway delivers to. */
  endpoint: 'required' | 'forbidden';
  /** Devices the gateway sends to get a Standard Webhooks signing secret of their own. */
  signingSecret: boolean;
  /** Event types the device reports through the webhook intake (and rules can match). */
  events: readonly string[];
  /** Events that end the device's active alarms started by other events (`smoke_cleared` ends `smoke`). */
  clears?: Readonly<Record<string, readonly string[]>>;
  /** Whether calls to the device's number are announced on it. */
  announcesIncomingCalls: boolean;
}

export const deviceTypes = {
  speaker: {
    description: 'Smart speaker: announces incoming calls to the number it is bound to.',
    endpoint: 'required',
    signingSecret: true,
    events: [],
    announcesIncomingCalls: true,
  },
  sensor_smoke: {
    description: 'Smoke detector: its events (smoke, smoke_cleared, test) trigger rules.',
    endpoint: 'forbidden',
    signingSecret: false,
    events: ['smoke', 'smoke_cleared', 'test'],
    clears: { smoke_cleared: ['smoke'] },
    announcesIncomingCalls: false,
  },
} as const satisfies Record<string, DeviceTypeSpec>;

export type DeviceType = keyof typeof deviceTypes;
export const deviceTypeNames = Object.keys(deviceTypes) as DeviceType[];

/** Every event type some device reports. */
export const deviceEventTypes: readonly string[] = [...new Set(Object.values(deviceTypes).flatMap((spec): readonly string[] => spec.events))];

/** Device types that announce incoming calls. */
export const announcingDeviceTypes: readonly string[] = Object.entries(deviceTypes)
  .filter(([, spec]: [string, DeviceTypeSpec]) => spec.announcesIncomingCalls)
  .map(([name]) => name);
