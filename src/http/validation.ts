/**
 * Two Ajv instances: request bodies are checked strictly (no type coercion, unknown fields
 * rejected rather than silently removed), while query strings and path parameters, which are
 * text by nature, are coerced to the declared types.
 */
import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifySchema } from 'fastify';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

const common: Options = { allErrors: true, strict: false, removeAdditional: false, useDefaults: true };

export function installValidation(app: FastifyInstance): void {
  const bodies = addFormats(new Ajv({ ...common, coerceTypes: false }));
  const parameters = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));
  app.setValidatorCompiler(({ schema, httpPart }: { schema: FastifySchema; httpPart?: string }) =>
    (httpPart === 'body' ? bodies : parameters).compile(schema as object),
  );
}
