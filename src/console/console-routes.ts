/**
 * The operator console: the static files `npm run build` writes to console/dist, served at
 * /console by the gateway itself. The files are public (they hold no data); every API call the
 * page makes carries the operator's key. The page routes by `#fragment`, so every path under
 * /console that is not a file gets index.html.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

export const CONSOLE_PREFIX = '/console';
export const defaultConsoleRoot = fileURLToPath(new URL('../../console/dist', import.meta.url));

/** Whether `npm run build` has written the console (the start-up banner says so). */
export function consoleBuilt(root: string = defaultConsoleRoot): boolean {
  return existsSync(path.join(root, 'index.html'));
}

const notBuilt = (root: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Operator console not built</title></head>
<body><h1>The operator console is not built</h1>
<p>Run <code>npm run build</code> (<code>npm ci</code> does it too), then reload this page.</p>
<p>Looked for <code>${root.replace(/[<>&]/g, '')}/index.html</code>.</p></body></html>
`;

export async function consoleRoutes(app: FastifyInstance, { root = defaultConsoleRoot }: { root?: string } = {}): Promise<void> {
  const hide = { hide: true };
  const config = { public: true };

  await app.register(fastifyStatic, { root, serve: false, index: false, wildcard: false });

  const sendIndex = (reply: FastifyReply) => {
    if (!consoleBuilt(root)) return reply.code(503).type('text/html; charset=utf-8').header('retry-after', '30').send(notBuilt(root));
    // The page itself is never cached, so a new build shows at once; its assets have hashed names.
    return reply.header('cache-control', 'no-cache').sendFile('index.html', { cacheControl: false });
  };

  app.get(CONSOLE_PREFIX, { config, schema: hide }, async (_request, reply) => reply.redirect(`${CONSOLE_PREFIX}/`));
  app.get(`${CONSOLE_PREFIX}/`, { config, schema: hide }, async (_request, reply) => sendIndex(reply));
  app.get(`${CONSOLE_PREFIX}/*`, { config, schema: hide }, async (request, reply) => {
    const file = (request.params as { '*': string })['*'];
    if (file.startsWith('assets/') && !file.includes('..') && existsSync(path.join(root, file))) {
      return reply.sendFile(file, { maxAge: '1y', immutable: true });
    }
    if (file.startsWith('assets/') || path.extname(file) !== '') return reply.callNotFound();
    return sendIndex(reply);
  });
}
