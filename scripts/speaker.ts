/**
 * A stand-in smart speaker for trying the gateway: prints every notification it receives and
 * whether its Standard Webhooks signature is valid.
 *
 *   npm run speaker -- --port 9000 --secret whsec_...
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';

const { values } = parseArgs({ options: { port: { type: 'string', default: '9000' }, secret: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
const verifier = values.secret ? new Webhook(values.secret) : undefined;

const server = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
    let signature = 'not checked (no --secret)';
    if (verifier) {
      try {
        verifier.verify(body, headers);
        signature = 'valid';
      } catch (error) {
        signature = `INVALID (${(error as Error).message})`;
      }
    }
    const notification = JSON.parse(body || '{}') as { type?: string; timestamp?: string; caller?: string; msisdn?: string };
    const lag = notification.timestamp ? `${Date.now() - Date.parse(notification.timestamp)} ms after the report` : '';
    console.log(`${new Date().toISOString().slice(11, 23)}  ${notification.type ?? '?'}  ${notification.caller ?? ''} -> ${notification.msisdn ?? ''}  signature ${signature}  ${lag}`);
    response.writeHead(signature.startsWith('INVALID') ? 401 : 204).end();
  });
});
server.listen(Number(values.port), values.host, () => console.log(`speaker listening on http://${values.host}:${values.port}/`));
