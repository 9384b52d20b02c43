/** The columns of a device import or export file, shared by both and by their help texts. */
export const deviceColumns = ['device_id', 'type', 'msisdn', 'name', 'endpoint', 'enabled', 'metadata', 'signing_secret'] as const;

export type DeviceFileFormat = 'csv' | 'jsonl';
