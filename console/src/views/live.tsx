/**
 * The event log as it happens: the latest rows, then every new one from the stream, filtered by
 * the server. Choosing a row shows the whole chain of its correlation id, which keeps growing live.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';
import type { EventLogItem, Page } from '../api';
import { Badge, ErrorNote, Field, formatTime, StreamBadge, useApi, useEventStream } from '../components';

const MAX_ROWS = 500;

interface Filter {
  type: string;
  device_id: string;
  msisdn: string;
  correlation_id: string;
}
const noFilter: Filter = { type: '', device_id: '', msisdn: '', correlation_id: '' };

function summary(event: EventLogItem): string {
  const d = event.details;
  const parts: string[] = [];
  for (const name of ['to', 'attempt', 'status', 'cause', 'hangup_cause', 'sip_code', 'reason', 'latency_ms', 'event_type', 'caller', 'callee', 'role', 'name']) {
    const value = d[name];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') continue;
    const text = String(value);
    parts.push(name === 'latency_ms' ? `${text} ms` : name === 'attempt' ? `#${text}` : text);
  }
  return parts.join(' · ');
}

export function EventTable({ events, onSelect, selected, caption }: { events: EventLogItem[]; onSelect?: (event: EventLogItem) => void; selected?: string | null; caption: string }) {
  return (
    <div class="table-wrap">
      <table class="events">
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Type</th>
            <th scope="col">Device</th>
            <th scope="col">Number</th>
            <th scope="col">Details</th>
            {onSelect && <th scope="col">Chain</th>}
          </tr>
        </thead>
        <tbody>
          {events.map((event) => (
            <tr key={event.id} class={`${event.status}${selected && event.correlation_id === selected ? ' in-chain' : ''}`} data-type={event.type}>
              <td class="time">{formatTime(event.at)}</td>
              <td>
                <span class={`type type-${event.type.split('.')[0] ?? ''}`}>{event.type}</span>
                {event.status !== 'ok' && event.status !== 'info' && <Badge value={event.status} />}
              </td>
              <td>{event.device_id}</td>
              <td>{event.msisdn}</td>
              <td class="details">{summary(event)}</td>
              {onSelect && (
                <td>
                  {event.correlation_id && (
                    <button type="button" class="link" onClick={() => onSelect(event)} aria-label={`Show the chain of ${event.type} at ${formatTime(event.at)}`}>
                      Chain
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function LiveView() {
  const api = useApi();
  const [draft, setDraft] = useState<Filter>(noFilter);
  const [filter, setFilter] = useState<Filter>(noFilter);
  const [events, setEvents] = useState<EventLogItem[]>([]);
  const [resumeFrom, setResumeFrom] = useState<number | undefined>();
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [chain, setChain] = useState<{ id: string; events: EventLogItem[] } | null>(null);

  // The latest rows first; the stream then goes on from the newest of them.
  useEffect(() => {
    let current = true;
    setLoaded(false);
    setError(null);
    api
      .get<Page<EventLogItem>>('/event-logs', { ...filter, limit: 100 })
      .then((page) => {
        if (!current) return;
        setEvents(page.items);
        setResumeFrom(page.items[0]?.id ?? 0);
        setLoaded(true);
      })
      .catch((failure: unknown) => current && setError(failure));
    return () => {
      current = false;
    };
  }, [api, filter]);

  const onEvents = useCallback((fresh: EventLogItem[]) => {
    setEvents((old) => {
      const seen = new Set(old.map((event) => event.id));
      const added = fresh.filter((event) => !seen.has(event.id));
      return [...added.reverse(), ...old].sort((a, b) => b.id - a.id).slice(0, MAX_ROWS);
    });
    setChain((open) => {
      if (!open) return open;
      const more = fresh.filter((event) => event.correlation_id === open.id && !open.events.some((known) => known.id === event.id));
      return more.length > 0 ? { ...open, events: [...open.events, ...more].sort((a, b) => a.id - b.id) } : open;
    });
  }, []);
  const state = useEventStream(loaded ? { ...filter } : null, onEvents, resumeFrom);

  const showChain = async (event: EventLogItem) => {
    if (!event.correlation_id) return;
    try {
      const page = await api.get<Page<EventLogItem>>('/event-logs', { correlation_id: event.correlation_id, limit: 500 });
      setChain({ id: event.correlation_id, events: page.items.reverse() });
      requestAnimationFrame(() => document.getElementById('chain-title')?.focus());
    } catch (failure) {
      setError(failure);
    }
  };

  const input = (name: keyof Filter, label: string, placeholder: string) => (
    <Field label={label}>
      {(id) => <input id={id} name={name} placeholder={placeholder} value={draft[name]} onInput={(event) => setDraft({ ...draft, [name]: event.currentTarget.value.trim() })} />}
    </Field>
  );

  return (
    <>
      <div class="heading-row">
        <h1>Live event log</h1>
        <StreamBadge state={state} />
      </div>
      <form
        class="filters"
        aria-label="Filter the event log"
        onSubmit={(event) => {
          event.preventDefault();
          setFilter(draft);
          setChain(null);
        }}
      >
        {input('type', 'Type', 'call.* or alarm.started')}
        {input('device_id', 'Device', 'hall-smoke')}
        {input('msisdn', 'Number', '+79161234567')}
        {input('correlation_id', 'Correlation id', '')}
        <div class="actions">
          <button type="submit">Apply filters</button>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setDraft(noFilter);
              setFilter(noFilter);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <ErrorNote error={error} />
      <div class={chain ? 'split' : ''}>
        <section aria-label="Events">
          {loaded && events.length === 0 && <p class="empty">Nothing yet: events appear here as they happen.</p>}
          <EventTable events={events} onSelect={(event) => void showChain(event)} selected={chain?.id ?? null} caption="Event log, newest first" />
        </section>
        {chain && (
          <section class="chain" aria-labelledby="chain-title">
            <div class="heading-row">
              <h2 id="chain-title" tabIndex={-1}>
                Chain <code>{chain.id}</code>
              </h2>
              <button type="button" class="secondary" onClick={() => setChain(null)}>
                Close
              </button>
            </div>
            <ol class="timeline">
              {chain.events.map((event) => (
                <li key={event.id} class={event.status}>
                  <span class="time">{formatTime(event.at)}</span> <span class="type">{event.type}</span> <span class="details">{summary(event)}</span>
                </li>
              ))}
            </ol>
          </section>
        )}
      </div>
    </>
  );
}
