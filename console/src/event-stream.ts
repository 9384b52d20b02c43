/**
 * The live event log, read with fetch() and a stream reader so the key travels in a header
 * (EventSource cannot send one, and a key in a URL ends up in logs). Reconnects by itself with
 * backoff, sending the last id it saw as Last-Event-ID, so nothing is missed across a drop.
 */
import { queryString, type EventLogItem, type Query } from './api';

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'refused';

export interface StreamHandlers {
  onEvents(events: EventLogItem[]): void;
  onState(state: StreamState, detail?: string): void;
}

/** Splits server-sent-event text into blocks; returns the events and what is left unparsed. */
export function parseEventBlocks(text: string): { events: { id?: string; data: string }[]; rest: string; retry?: number } {
  const events: { id?: string; data: string }[] = [];
  let retry: number | undefined;
  const normalized = text.replace(/\r\n?/g, '\n');
  const blocks = normalized.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
    }
    if (data.length > 0) events.push({ ...(id === undefined ? {} : { id }), data: data.join('\n') });
  }
  return { events, rest, ...(retry === undefined ? {} : { retry }) };
}

/** Opens the stream; returns a function that closes it for good. */
export function openEventStream(key: string, filter: Query, lastEventId: number | undefined, handlers: StreamHandlers): () => void {
  let stopped = false;
  let controller: AbortController | undefined;
  let lastId = lastEventId;
  let retryMs = 2_000;
  let failures = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const connect = async (): Promise<void> => {
    controller = new AbortController();
    handlers.onState(failures === 0 ? 'connecting' : 'reconnecting');
    try {
      const headers: Record<string, string> = { 'x-api-key': key, accept: 'text/event-stream' };
      if (lastId !== undefined) headers['last-event-id'] = String(lastId);
      const response = await fetch(`/api/v1/event-logs/stream${queryString(filter)}`, { headers, signal: controller.signal, cache: 'no-store' });
      if (response.status === 401 || response.status === 403 || response.status === 422) {
        const problem = (await response.json().catch(() => ({}))) as { detail?: string };
        handlers.onState('refused', problem.detail ?? `HTTP ${response.status}`);
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      failures = 0;
      handlers.onState('live');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parsed = parseEventBlocks(buffer + value);
        buffer = parsed.rest;
        if (parsed.retry !== undefined) retryMs = parsed.retry;
        const events: EventLogItem[] = [];
        for (const event of parsed.events) {
          const item = JSON.parse(event.data) as EventLogItem;
          events.push(item);
          if (lastId === undefined || item.id > lastId) lastId = item.id;
        }
        if (events.length > 0) handlers.onEvents(events);
      }
    } catch {
      // A drop, or our own abort: handled below.
    }
    if (stopped) return;
    failures += 1;
    handlers.onState('reconnecting');
    timer = setTimeout(() => void connect(), Math.min(retryMs * failures, 15_000));
  };

  void connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    controller?.abort();
  };
}
