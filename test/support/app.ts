/** Builds the real gateway app on a test database, as the entry point does. */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type AppOptions } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export interface TestApp {
  app: FastifyInstance;
  database: TestDatabase;
  config: Config;
  /** Sends a request with the admin key unless `headers` says otherwise. */
  request(options: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function createTestApp(
  env: Record<string, string> = {},
  options: Pick<AppOptions, 'telephony' | 'clock' | 'instanceId' | 'dispatcher' | 'notifier' | 'logger' | 'eventStream'> & { database?: TestDatabase } = {},
): Promise<TestApp> {
  const { database: given, ...collaborators } = options;
  const database = given ?? (await createTestDatabase());
  // Speakers in tests are receivers on loopback, which the outbound policy refuses unless allowed.
  const config = loadConfig({ ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'silent', OUTBOUND_ALLOW_HOSTS: '127.0.0.1', ...env });
  const app = await buildApp({ config, storage: database.storage, logger: false, ...collaborators });
  await app.ready();
  return {
    app,
    database,
    config,
    request({ key = ADMIN_KEY, headers, ...options }) {
      return app.inject({ ...options, headers: { ...(key ? { 'x-api-key': key } : {}), ...headers } });
    },
    async close() {
      await app.close();
      await database.close();
    },
  };
}

/** Creates an API key of a role through the API and returns the key. */
export async function createKey(testApp: TestApp, role: 'admin' | 'webhook' | 'telephony', name = `${role} key`): Promise<string> {
  const response = await testApp.request({ method: 'POST', url: '/api/v1/api-keys', payload: { role, name } });
  if (response.statusCode !== 201) throw new Error(`creating a ${role} key failed: ${response.body}`);
  return response.json<{ key: string }>().key;
}
