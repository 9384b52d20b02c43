/**
 * buildApp(options): the whole gateway as one Fastify instance, built from a validated config and
 * the collaborators it is given (storage now; telephony and notifiers as they arrive). The entry
 * point (src/server.ts) and the tests build it the same way.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { ApiKeyService } from './api-keys/api-keys-service.js';
import { apiKeysRoutes } from './api-keys/api-keys-routes.js';
import { installAuthentication } from './auth/authenticate.js';
import type { Config } from './config/config.js';
import { Device } from './devices/devices-schemas.js';
import { devicesRoutes } from './devices/devices-routes.js';
import { DevicesService } from './devices/devices-service.js';
import { consoleRoutes } from './console/console-routes.js';
import { EventLogFeed } from './event-log/event-log-feed.js';
import { eventLogRoutes } from './event-log/event-log-routes.js';
import { eventLogStreamRoutes, type StreamOptions } from './event-log/event-log-stream.js';
import { healthRoutes, type ReadinessCheck } from './health/health-routes.js';
import { installErrorHandling, sendProblem } from './http/error-handler.js';
import { DOCS_PREFIX, installOpenApi } from './http/openapi.js';
import { ProblemSchema } from './http/schemas.js';
import { installValidation } from './http/validation.js';
import { GatewayLogController, installRequestCorrelation } from './http/request-log.js';
import { GatewayMetrics } from './metrics/metrics.js';
import { metricsRoutes } from './metrics/metrics-routes.js';
import { Rule } from './rules/rules-schemas.js';
import { rulesRoutes } from './rules/rules-routes.js';
import { RulesService } from './rules/rules-service.js';
import type { Storage } from './storage/database.js';
import { AlarmEscalation } from './alarms/alarm-escalation.js';
import { Alarm, Call, alarmsRoutes } from './alarms/alarms-routes.js';
import { AlarmsService } from './alarms/alarms-service.js';
import { CallDispatcher, type DispatcherOptions } from './alarms/call-dispatcher.js';
import { callTrigger } from './alarms/rule-triggers.js';
import { systemClock, type Clock } from './clock/clock.js';
import { deviceEventsRoutes } from './device-events/device-events-routes.js';
import { DeviceEventsService } from './device-events/device-events-service.js';
import { Webhook } from './device-events/webhook-signature.js';
import { handleClientError } from './http/client-errors.js';
import { installJsonBodyParser } from './http/json-body.js';
import { installRateLimit } from './http/rate-limit.js';
import { incomingCallsRoutes } from './incoming-calls/incoming-calls-routes.js';
import { IncomingCallsService } from './incoming-calls/incoming-calls-service.js';
import { SwitchCallFeed } from './incoming-calls/switch-feed.js';
import { closeHttpAgent } from './notifications/http-delivery.js';
import { MqttPublisher } from './notifications/mqtt-delivery.js';
import { NotificationDispatcher, type NotificationDispatcherOptions } from './notifications/notification-dispatcher.js';
import { OutboundPolicy } from './notifications/outbound-policy.js';
import { RetentionCleaner, type RetentionPolicy } from './retention/retention.js';
import { MockTelephony } from './telephony/mock/mock-telephony.js';
import { isInboundCallSource, type Telephony } from './telephony/telephony.js';

export const version: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface AppOptions {
  config: Config;
  storage: Storage;
  /** A pino logger, or Fastify logger options; tests pass `false` or a silent logger. */
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** The phone switch: FreeSWITCH or the mock (default: a mock on the clock). */
  telephony?: Telephony;
  clock?: Clock;
  /** This instance's name (see INSTANCE_ID). */
  instanceId?: string;
  dispatcher?: Partial<DispatcherOptions>;
  notifier?: Partial<NotificationDispatcherOptions>;
  /** The live event-log stream's heartbeat and buffer limits. */
  eventStream?: Partial<StreamOptions>;
  /** Where the built operator console is (default: console/dist). */
  consoleRoot?: string;
  retention?: Partial<RetentionPolicy>;
}

declare module 'fastify' {
  interface FastifyInstance {
    services: {
      apiKeys: ApiKeyService;
      devices: DevicesService;
      rules: RulesService;
      alarms: AlarmsService;
      deviceEvents: DeviceEventsService;
      dispatcher: CallDispatcher;
      telephony: Telephony;
      incomingCalls: IncomingCallsService;
      notifier: NotificationDispatcher;
      switchFeed: SwitchCallFeed | undefined;
      metrics: GatewayMetrics;
      eventFeed: EventLogFeed;
      /** Removes expired rows in the background; `stats` and `onDeleted` for metrics. */
      retention: RetentionCleaner;
    };
  }
}

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config, storage } = options;
  const logger = options.logger ?? false;
  const app = Fastify({
    ...(logger !== false && typeof (logger as FastifyBaseLogger).child === 'function'
      ? { loggerInstance: logger as FastifyBaseLogger }
      : { logger: logger as FastifyServerOptions['logger'] }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Slow clients and oversized heads are cut off by Node's parser, answered by handleClientError.
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    http: {
      maxHeaderSize: config.MAX_HEADER_BYTES,
      requestTimeout: config.REQUEST_TIMEOUT_MS,
      headersTimeout: Math.min(60_000, config.REQUEST_TIMEOUT_MS),
      // How often Node looks for requests over the timeout (its default, 30 s, would double it).
      connectionsCheckingInterval: Math.min(5_000, Math.max(25, Math.floor(config.REQUEST_TIMEOUT_MS / 4))),
    },
    clientErrorHandler: handleClientError,
    // device_id may be 128 characters, percent-encoded up to three times that.
    routerOptions: { maxParamLength: 512 },
    // A client-supplied request id is kept when it is safe to log; otherwise a fresh one.
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && requestIdPattern.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false } },
    // Request lines carry the route and the correlation id (src/http/request-log.ts).
    logController: new GatewayLogController(),
    return503OnClosing: true,
    // Errors the router raises before any handler (a malformed %-escape, an overlong parameter)
    // get the same problem+json answer as every other error.
    frameworkErrors: (error, request, reply) => {
      void reply.header('x-request-id', request.id);
      void sendProblem(request, reply, error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'uri_too_long' : 'bad_request', error.message);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Only JSON bodies: text/plain is refused with 415 rather than parsed and refused as "not an object".
  app.removeContentTypeParser('text/plain');

  const db = storage.db;
  const apiKeys = new ApiKeyService(db, config.ADMIN_API_KEY, { cacheTtlMs: config.API_KEY_CACHE_TTL_MS });
  const policy = new OutboundPolicy(config.OUTBOUND_ALLOW_HOSTS);
  const devices = new DevicesService(db, config.DEFAULT_COUNTRY, policy);
  const rules = new RulesService(db, devices);
  const clock = options.clock ?? systemClock;
  const telephony = options.telephony ?? new MockTelephony({ clock });
  const escalation = new AlarmEscalation(db, clock);
  const instanceId = options.instanceId ?? 'gateway';
  const metrics = new GatewayMetrics(
    { version, instance_id: instanceId, database: storage.kind, telephony: telephony.name },
    { db, clock, poolUsage: () => storage.poolUsage(), telephony, onCollectError: (error) => app.log.warn({ err: error }, 'metrics: the database could not be read') },
  );
  telephony.onReconnect(() => metrics.telephonyReconnects.inc());
  const liveness = { staleAfterMs: config.INSTANCE_STALE_AFTER_S * 1000, heartbeatIntervalMs: (config.INSTANCE_STALE_AFTER_S * 1000) / 4 };
  const dispatcher = new CallDispatcher({ db, telephony, escalation, clock, instanceId, logger: app.log, metrics }, { ...liveness, ...options.dispatcher });
  const afterCommit = dispatcher.afterCommit.bind(dispatcher);
  const deviceEvents = new DeviceEventsService({ db, rules, triggers: { call: callTrigger(escalation, clock, () => dispatcher.dialingInstance()) }, escalation, clock, afterCommit, metrics, logger: app.log });
  const alarms = new AlarmsService({ db, escalation, clock, afterCommit });
  const mqtt = new MqttPublisher({ policy });
  const notifier = new NotificationDispatcher(
    { db, clock, instanceId, logger: app.log, policy, mqtt, metrics },
    { concurrency: config.NOTIFICATION_CONCURRENCY, perHostConcurrency: config.NOTIFICATION_CONCURRENCY_PER_HOST, timeoutMs: config.NOTIFICATION_TIMEOUT_MS, staleAfterMs: liveness.staleAfterMs, ...options.notifier },
  );
  const incomingCalls = new IncomingCallsService({
    db,
    clock,
    defaultCountry: config.DEFAULT_COUNTRY,
    notificationTtlS: config.NOTIFICATION_TTL_S,
    notifications: notifier,
    logger: app.log,
    metrics,
  });
  const switchFeed =
    isInboundCallSource(telephony) && config.FREESWITCH_ANNOUNCE_INBOUND ? new SwitchCallFeed(incomingCalls, app.log) : undefined;
  if (switchFeed && isInboundCallSource(telephony)) telephony.onInboundCall((report) => switchFeed.accept(report));
  const retention = new RetentionCleaner(
    { db, clock, logger: app.log.child({ component: 'retention' }) },
    {
      eventLogDays: config.EVENT_LOG_RETENTION_DAYS,
      callDays: config.CALL_RETENTION_DAYS,
      notificationDays: config.NOTIFICATION_RETENTION_DAYS,
      batchSize: config.RETENTION_BATCH_SIZE,
      intervalMs: config.RETENTION_INTERVAL_S * 1000,
      ...options.retention,
    },
  );
  retention.onDeleted((table, rows) => metrics.retentionDeleted.inc({ table }, rows));
  const eventFeed = new EventLogFeed({ db, logger: app.log });
  app.decorate('services', { apiKeys, devices, rules, alarms, deviceEvents, dispatcher, telephony, incomingCalls, notifier, switchFeed, metrics, eventFeed, retention });
  const signatures = config.WEBHOOK_SIGNING_SECRET ? new Webhook(config.WEBHOOK_SIGNING_SECRET) : undefined;
  installJsonBodyParser(app, { keepRaw: signatures !== undefined });
  // The switch and the dispatcher run while the app does.
  app.addHook('onReady', async () => {
    await telephony.start();
    await dispatcher.start();
    await notifier.start();
    retention.start();
  });
  // Open event streams would keep the server from closing: end them first.
  app.addHook('preClose', async () => eventFeed.stop());
  app.addHook('onClose', async () => {
    await retention.stop();
    await dispatcher.stop();
    await telephony.stop();
    // Reports the switch sent until it stopped are recorded too, before the storage closes.
    await dispatcher.settle();
    await switchFeed?.settle();
    await notifier.stop();
    // Everything in flight is recorded: hand the calls still live on the switch to the other
    // instances now rather than when this one's heartbeat goes stale.
    await dispatcher.retire();
    await mqtt.close();
    await closeHttpAgent(policy);
  });

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  installRequestCorrelation(app);
  // Every answer is timed by its route pattern (never the raw URL: ids would explode the labels).
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequestDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  installValidation(app);
  installErrorHandling(app);
  installAuthentication(app, { apiKeys, db, publicPrefixes: [DOCS_PREFIX] });
  await installRateLimit(app, config.RATE_LIMIT_PER_KEY);
  app.addSchema(ProblemSchema);
  app.addSchema(Device);
  app.addSchema(Rule);
  app.addSchema(Alarm);
  app.addSchema(Call);
  await installOpenApi(app, version);

  const readiness: ReadinessCheck[] = [
    { name: 'database', check: async () => (await storage.ping(), { ok: true, detail: storage.kind }) },
    { name: 'telephony', check: async () => telephony.status() },
  ];
  await app.register(healthRoutes, { checks: readiness });
  await app.register(metricsRoutes, { metrics, token: config.METRICS_TOKEN });
  app.get('/', { config: { public: true }, schema: { hide: true } }, async () => ({
    name: 'TAS IoT Gateway',
    version,
    docs: DOCS_PREFIX,
    console: '/console/',
    openapi: '/openapi.json',
    health: '/healthz',
    ready: '/readyz',
  }));

  await app.register(
    async (api) => {
      await api.register(apiKeysRoutes, { apiKeys });
      await api.register(devicesRoutes, { devices });
      await api.register(rulesRoutes, { rules });
      await api.register(deviceEventsRoutes, { deviceEvents, db, signatures, metrics });
      await api.register(alarmsRoutes, { alarms, devices });
      await api.register(incomingCallsRoutes, { incomingCalls });
      await api.register(eventLogRoutes, { db, devices });
      await api.register(eventLogStreamRoutes, { db, devices, feed: eventFeed, options: options.eventStream });
    },
    { prefix: '/api/v1' },
  );
  await app.register(consoleRoutes, { root: options.consoleRoot });

  return app;
}
