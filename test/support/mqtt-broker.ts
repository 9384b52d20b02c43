/**
 * An MQTT broker for tests: the machine's Mosquitto when TEST_MQTT_URL is set
 * (e.g. mqtt://127.0.0.1:1883), otherwise an in-process aedes broker on a random loopback port.
 */
import { once } from 'node:events';
import net from 'node:net';
import { Aedes } from 'aedes';

export interface TestBroker {
  /** `mqtt://host:port`, without a trailing slash. */
  url: string;
  kind: 'external' | 'aedes';
  close(): Promise<void>;
}

export async function startTestBroker(): Promise<TestBroker> {
  const external = process.env.TEST_MQTT_URL;
  if (external) {
    return { url: external.replace(/\/+$/, ''), kind: 'external', close: async () => {} };
  }
  const broker = await Aedes.createBroker();
  const server = net.createServer((socket) => broker.handle(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    kind: 'aedes',
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port nothing listens on (taken and released at once). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
