/**
 * Row types of the database. They are generated from the migrations (schema.generated.ts, by
 * `npm run db:codegen`), and CI checks that the generated file matches them, so code and schema
 * cannot drift apart. This file only names the types the rest of the code uses.
 */
import type { Insertable, Selectable, Updateable } from 'kysely';
import type { ApiKeys, DB, Devices, EventLogs, Rules } from './schema.generated.js';

export type Database = DB;
export type ApiKeyRow = Selectable<ApiKeys>;
export type NewApiKeyRow = Insertable<ApiKeys>;
export type DeviceRow = Selectable<Devices>;
export type NewDeviceRow = Insertable<Devices>;
export type DeviceUpdate = Updateable<Devices>;
export type EventLogRow = Selectable<EventLogs>;
export type RuleRow = Selectable<Rules>;
export type NewRuleRow = Insertable<Rules>;
export type RuleUpdate = Updateable<Rules>;
