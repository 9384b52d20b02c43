/** Schemas several routes share: problem responses and common field shapes. */
import { Type, type TSchema } from 'typebox';
import { E164_PATTERN } from '../phone-numbers/msisdn.js';

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

/** The problem responses a route can give, for its OpenAPI description. */
export function problems(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((status) => [status, Type.Ref('Problem')]));
}

export const E164 = Type.String({ pattern: E164_PATTERN, description: 'Phone number in E.164 form.', examples: ['+79161234567'] });

/** A phone number as people write it; normalised to E.164 by the service. */
export const PhoneNumberInput = Type.String({
  minLength: 1,
  maxLength: 32,
  description: 'Phone number; common spellings accepted (`+7 916 123-45-67`, `8 (916) 123-45-67`), stored as E.164.',
  examples: ['+79161234567'],
});

export const Timestamp = Type.String({ format: 'date-time' });
