/** How the gateway serves the built console at /console, and what it says when it is not built. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
const built = mkdtempSync(path.join(tmpdir(), 'console-built-'));
const missing = path.join(built, 'not-there');

beforeAll(async () => {
  database = await createTestDatabase();
  mkdirSync(path.join(built, 'assets'));
  writeFileSync(path.join(built, 'index.html'), '<!doctype html><title>console</title><script src="/console/assets/index-abc.js"></script>');
  writeFileSync(path.join(built, 'assets/index-abc.js'), 'console.log("hi")');
  writeFileSync(path.join(built, 'secret.txt'), 'not an asset');
});
afterAll(async () => {
  await database.close();
  rmSync(built, { recursive: true, force: true });
});

async function appServing(root: string) {
  const config = loadConfig({ ADMIN_API_KEY: 'test-admin-key-0123456789abcdef', LOG_LEVEL: 'silent' });
  const app = await buildApp({ config, storage: database.storage, logger: false, consoleRoot: root });
  await app.ready();
  return app;
}

describe('/console', () => {
  it('serves the page and its assets without a key (they hold no data), the page uncached and the hashed assets for a year', async () => {
    const app = await appServing(built);
    try {
      const bare = await app.inject({ url: '/console' });
      expect(bare.statusCode).toBe(302);
      expect(bare.headers.location).toBe('/console/');
      const page = await app.inject({ url: '/console/' });
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-type']).toContain('text/html');
      expect(page.headers['cache-control']).toBe('no-cache');
      expect(page.body).toContain('<title>console</title>');
      // The page routes by #fragment; a deep path still gets the page.
      expect((await app.inject({ url: '/console/alarms' })).body).toContain('<title>console</title>');
      const asset = await app.inject({ url: '/console/assets/index-abc.js' });
      expect(asset.statusCode).toBe(200);
      expect(asset.headers['content-type']).toContain('javascript');
      expect(asset.headers['cache-control']).toContain('immutable');
      // Only the page and assets/ are served: nothing else of the folder, nothing outside it.
      for (const url of ['/console/assets/nope.js', '/console/secret.txt', '/console/assets/..%2F..%2Fpackage.json', '/console/assets/../index.html']) {
        const refused = await app.inject({ url });
        expect(refused.statusCode, url).toBe(404);
        expect(refused.headers['content-type'], url).toContain('application/problem+json');
      }
    } finally {
      await app.close();
    }
  });

  it('says to run `npm run build` when the console is not built', async () => {
    const app = await appServing(missing);
    try {
      const page = await app.inject({ url: '/console/' });
      expect(page.statusCode).toBe(503);
      expect(page.headers['content-type']).toContain('text/html');
      expect(page.body).toContain('The operator console is not built');
      expect(page.body).toContain('npm run build');
      // The API is unaffected.
      expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
