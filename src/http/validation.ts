/**
 * Two Ajv instances: request bodies are checked strictly (no type coercion, unknown fields
 * rejected rather than silently removed), while query strings and path parameters, which are
 * text by nature, are coerced to the declared types. After the schema, one more pass refuses
 * what PostgreSQL or a log line cannot carry: NUL characters, lone UTF-16 surrogates, and JSON
 * nested deeper than any real payload.
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifySchema } from 'fastify';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

const common: Options = { allErrors: true, strict: false, removeAdditional: false, useDefaults: true };

export const MAX_JSON_DEPTH = 32;

type ValidationPart = { schema: FastifySchema; httpPart?: string };

export function installValidation(app: FastifyInstance): void {
  const bodies = addFormats(new Ajv({ ...common, coerceTypes: false }));
  const parameters = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));
  app.setValidatorCompiler(({ schema, httpPart }: ValidationPart) => {
    const validate = (httpPart === 'body' ? bodies : parameters).compile(schema as object);
    return httpPart === 'headers' ? validate : withTextChecks(validate);
  });
}

function withTextChecks(validate: ValidateFunction): ValidateFunction {
  const checked = ((data: unknown) => {
    if (!validate(data)) {
      checked.errors = validate.errors;
      return false;
    }
    const problem = findUnsafeValue(data);
    checked.errors = problem ? [problem] : null;
    return !problem;
  }) as ValidateFunction;
  return checked;
}

/** The first string or key that cannot be stored as it is, or a nesting too deep; iterative, so depth cannot overflow the stack. */
export function findUnsafeValue(root: unknown): ErrorObject | undefined {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value: root, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value === 'string') {
      const reason = unsafeText(value);
      if (reason) return error(path, reason);
    } else if (value !== null && typeof value === 'object') {
      if (depth >= MAX_JSON_DEPTH) return error(path, `is nested more than ${MAX_JSON_DEPTH} levels deep`);
      for (const [key, inner] of Object.entries(value)) {
        const innerPath = `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
        const reason = unsafeText(key);
        if (reason) return error(path, `keys ${reason}`);
        stack.push({ value: inner, path: innerPath, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

function unsafeText(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain NUL characters';
  if (!(text as string & { isWellFormed(): boolean }).isWellFormed()) return 'must be valid Unicode (a lone surrogate was found)';
  return undefined;
}

function error(instancePath: string, message: string): ErrorObject {
  return { instancePath, schemaPath: '#', keyword: 'text', params: {}, message };
}
