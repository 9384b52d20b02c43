/** Schemas several routes share: problem responses and common field shapes. */
import { Type, type TSchema } from 'typebox';
import { E164_PATTERN } from '../phone-numbers/msisdn.js';
import { invalidField } from './problems.js';

/** A string restricted to a fixed list, as a plain JSON Schema `enum` (clear errors, clean OpenAPI). */
export function StringEnum<const T extends readonly string[]>(values: T, options: { description?: string; default?: T[number] } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code.' }),
    request_id: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details.' },
);

/** The problem responses a route can give, described (and serialised) as application/problem+json. */
export function problems(...statuses: number[]): Record<number, { description: string; content: Record<string, { schema: TSchema }> }> {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: problemDescriptions[status] ?? 'Problem', content: { 'application/problem+json': { schema: Type.Ref('Problem') } } },
    ]),
  );
}

const problemDescriptions: Record<number, string> = {
  400: 'The request cannot be read',
  401: 'No valid API key',
  403: 'The key may not call this route',
  404: 'Not found',
  409: 'Conflict with the current state',
  413: 'Body too large',
  415: 'Body not JSON',
  422: 'Invalid request; `errors` names the fields',
  429: 'Too many requests for this key; `Retry-After` says when to try again',
};

export const E164 = Type.String({ pattern: E164_PATTERN, description: 'Phone number in E.164 form.', examples: ['+79161234567'] });

/** A phone number as people write it; normalised to E.164 by the service. */
export const PhoneNumberInput = Type.String({
  minLength: 1,
  maxLength: 32,
  description: 'Phone number; common spellings accepted (`+7 916 123-45-67`, `8 (916) 123-45-67`), stored as E.164.',
  examples: ['+79161234567'],
});

export const Timestamp = Type.String({ format: 'date-time' });

/** A field that may be null. */
export function Nullable<T extends TSchema>(schema: T) {
  return Type.Union([schema, Type.Null()]);
}

/** A nullable timestamp column as the API shows it. */
export function isoOrNull(date: Date | null): string | null {
  return date?.toISOString() ?? null;
}

/** A date-time query parameter, as a Date, refused (422 naming it) outside years 1970 to 9999. */
export function parseTimestampParameter(field: string, text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text);
  const year = date.getUTCFullYear();
  if (Number.isNaN(date.getTime()) || year < 1970 || year > 9999) throw invalidField(field, 'must be a date-time between 1970 and 9999');
  return date;
}
