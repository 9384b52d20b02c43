/**
 * Where a device is reached: `http(s)://...` for signed webhooks, `mqtt(s)://host[:port]/topic`
 * for a broker topic.
 */
export type Endpoint =
  | { transport: 'http'; url: string }
  | { transport: 'mqtt'; brokerUrl: string; topic: string };

export type EndpointResult = { ok: true; endpoint: Endpoint } | { ok: false; reason: string };

export function parseEndpoint(text: string): EndpointResult {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, reason: 'must be an absolute URL: http(s)://host/path or mqtt://host:port/topic' };
  }
  if (!url.hostname) return { ok: false, reason: 'must name a host' };
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    return { ok: true, endpoint: { transport: 'http', url: url.toString() } };
  }
  if (url.protocol === 'mqtt:' || url.protocol === 'mqtts:') {
    const topic = decodeURIComponent(url.pathname.replace(/^\//, ''));
    if (!topic) return { ok: false, reason: 'an mqtt endpoint needs a topic: mqtt://host:port/topic' };
    // `#` would be read as a URL fragment, so look for it in the text as given.
    if (/[+#]/.test(topic) || topic.includes('\u0000') || text.includes('#')) return { ok: false, reason: 'the mqtt topic may not contain the wildcards + or # (it is published to)' };
    if (url.search) return { ok: false, reason: 'an mqtt endpoint takes no query or fragment' };
    const port = url.port || (url.protocol === 'mqtts:' ? '8883' : '1883');
    const credentials = url.username ? `${url.username}${url.password ? `:${url.password}` : ''}@` : '';
    return { ok: true, endpoint: { transport: 'mqtt', brokerUrl: `${url.protocol}//${credentials}${url.hostname}:${port}`, topic } };
  }
  return { ok: false, reason: 'must use http, https, mqtt or mqtts' };
}

/** The endpoint as it may appear in logs: any password replaced. */
export function redactEndpoint(text: string | null): string | null {
  if (!text) return text;
  try {
    const url = new URL(text);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable)';
  }
}
