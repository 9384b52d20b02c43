/** Recent calls to subscribers, and for one call each speaker notification: status, attempts, latency. */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { enc, type IncomingCall, type Page } from '../api';
import { Badge, ErrorNote, Field, formatDateTime, formatTime, StreamBadge, useApi, useEventStream } from '../components';

function CallDetail({ callId }: { callId: string }) {
  const api = useApi();
  const [call, setCall] = useState<IncomingCall | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api
      .get<IncomingCall>(`/incoming-calls/${enc(callId)}`)
      .then((found) => {
        setCall(found);
        setError(null);
      })
      .catch(setError);
  }, [api, callId]);
  useEffect(load, [load]);
  const state = useEventStream(call ? { correlation_id: call.correlation_id } : null, load);
  useEffect(() => {
    if (state === 'live') load();
  }, [state, load]);
  if (!call) return <ErrorNote error={error} />;
  return (
    <section class="detail" aria-labelledby="call-title" data-testid="call-detail">
      <div class="heading-row">
        <h2 id="call-title">
          Call {call.caller} → {call.callee} <Badge value={call.state} />
        </h2>
        <StreamBadge state={state} />
      </div>
      <dl class="facts">
        <dt>Call id</dt>
        <dd>
          <code>{call.call_id}</code>
        </dd>
        {call.caller_name && (
          <>
            <dt>Caller name</dt>
            <dd>{call.caller_name}</dd>
          </>
        )}
        <dt>Reported</dt>
        <dd>
          {formatDateTime(call.received_at)} ({call.source})
        </dd>
        {call.answered_at && (
          <>
            <dt>Answered</dt>
            <dd>{formatTime(call.answered_at)}</dd>
          </>
        )}
        {call.ended_at && (
          <>
            <dt>Ended</dt>
            <dd>{formatTime(call.ended_at)}</dd>
          </>
        )}
      </dl>
      <h3>Speaker deliveries</h3>
      {(call.notifications ?? []).length === 0 ? (
        <p class="empty">No speaker is bound to {call.callee}.</p>
      ) : (
        <div class="table-wrap">
          <table data-testid="deliveries">
            <caption class="visually-hidden">Notifications sent to speakers for this call</caption>
            <thead>
              <tr>
                <th scope="col">Speaker</th>
                <th scope="col">Notification</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Latency</th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {(call.notifications ?? []).map((notification) => (
                <tr key={notification.id}>
                  <td>{notification.device_id}</td>
                  <td>{notification.type.replace('incoming_call.', '')}</td>
                  <td>
                    <Badge value={notification.status} />
                  </td>
                  <td>{notification.attempts}</td>
                  <td>{notification.latency_ms === null ? '' : `${notification.latency_ms} ms`}</td>
                  <td class="details">{notification.last_error}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function IncomingCallsView({ selected }: { selected?: string | undefined }) {
  const api = useApi();
  const [msisdn, setMsisdn] = useState('');
  const [applied, setApplied] = useState('');
  const [calls, setCalls] = useState<IncomingCall[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api
      .get<Page<IncomingCall>>('/incoming-calls', { msisdn: applied, limit: 100 })
      .then((page) => {
        setCalls(page.items);
        setError(null);
      })
      .catch(setError);
  }, [api, applied]);
  useEffect(load, [load]);
  // New calls and delivery outcomes both change the list.
  const state = useEventStream({}, (events) => {
    if (events.some((event) => event.type.startsWith('incoming_call.') || event.type.startsWith('notification.'))) load();
  });
  useEffect(() => {
    if (state === 'live') load();
  }, [state, load]);
  return (
    <>
      <h1>Incoming calls</h1>
      <div class={selected ? 'split' : ''}>
        <section aria-label="Recent calls">
          <form
            class="filters"
            onSubmit={(event) => {
              event.preventDefault();
              setApplied(msisdn.trim());
            }}
          >
            <Field label="Subscriber number">{(id) => <input id={id} value={msisdn} placeholder="+79161234567" onInput={(event) => setMsisdn(event.currentTarget.value)} />}</Field>
            <div class="actions">
              <button type="submit">Search</button>
            </div>
          </form>
          <ErrorNote error={error} />
          {calls.length === 0 && <p class="empty">No calls.</p>}
          <ul class="cards">
            {calls.map((call) => (
              <li key={call.call_id} class={call.call_id === selected ? 'selected' : ''}>
                <a href={`#/calls/${enc(call.call_id)}`} aria-current={call.call_id === selected ? 'true' : undefined}>
                  <Badge value={call.state} /> <strong>{call.caller}</strong> → {call.callee}
                  {call.caller_name && <span class="muted"> ({call.caller_name})</span>}
                  <span class="muted"> · {formatDateTime(call.received_at)}</span>
                  {(call.deliveries ?? []).length > 0 && (
                    <ul class="deliveries" aria-label="Speaker deliveries">
                      {(call.deliveries ?? []).map((delivery) => (
                        <li key={`${delivery.device_id}-${delivery.type}`}>
                          {delivery.device_id} {delivery.type.replace('incoming_call.', '')} <Badge value={delivery.status} />
                          {delivery.latency_ms !== null && <span class="muted"> {delivery.latency_ms} ms</span>}
                        </li>
                      ))}
                    </ul>
                  )}
                </a>
              </li>
            ))}
          </ul>
        </section>
        {selected && <CallDetail key={selected} callId={selected} />}
      </div>
    </>
  );
}
