/**
 * Alarms, active and past; one alarm with the timeline of each of its calls (queued, dialing,
 * ringing, answered, acknowledged, its end with the hangup cause), following it live, and cancel.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { enc, type Alarm, type AlarmCall, type Page } from '../api';
import { Badge, ConfirmButton, ErrorNote, Field, formatDateTime, formatTime, StreamBadge, useApi, useEventStream } from '../components';

const statuses = ['', 'active', 'resolved', 'exhausted', 'canceled'] as const;

function callSteps(call: AlarmCall): { label: string; at: string | null; tone: string }[] {
  const steps = [
    { label: 'queued', at: call.queued_at, tone: 'info' },
    { label: 'dialing', at: call.dialing_at, tone: 'info' },
    { label: 'ringing', at: call.ringing_at, tone: 'info' },
    { label: 'answered', at: call.answered_at, tone: 'ok' },
  ];
  // The confirmation has no time of its own in the call row; the call ends right after it.
  if (call.acknowledged) steps.push({ label: 'acknowledged (pressed 1)', at: call.ended_at ?? '', tone: 'ok' });
  if (call.ended_at) {
    const cause = [call.hangup_cause, call.sip_code ? `SIP ${call.sip_code}` : ''].filter(Boolean).join(', ');
    const ok = call.status === 'completed';
    steps.push({ label: `${ok ? 'ended' : call.status}${cause ? ` — ${cause}` : ''}`, at: call.ended_at, tone: ok ? 'ok' : call.status === 'canceled' ? 'info' : 'failed' });
  }
  return steps.filter((step) => step.at !== null);
}

function AlarmDetail({ id, onChanged }: { id: string; onChanged: () => void }) {
  const api = useApi();
  const [alarm, setAlarm] = useState<Alarm | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api
      .get<Alarm>(`/alarms/${enc(id)}`)
      .then((found) => {
        setAlarm(found);
        setError(null);
      })
      .catch(setError);
  }, [api, id]);
  useEffect(load, [load]);
  // Follow the alarm's own chain while it is shown.
  const state = useEventStream(alarm ? { correlation_id: alarm.correlation_id } : null, load);
  // Whatever happened between the first read and the stream opening.
  useEffect(() => {
    if (state === 'live') load();
  }, [state, load]);

  const cancel = async () => {
    try {
      setAlarm(await api.post<Alarm>(`/alarms/${enc(id)}/cancel`));
      onChanged();
    } catch (failure) {
      setError(failure);
    }
  };

  if (!alarm) return <ErrorNote error={error} />;
  const action = alarm.action;
  return (
    <section class="detail" aria-labelledby="alarm-title" data-testid="alarm-detail">
      <div class="heading-row">
        <h2 id="alarm-title" tabIndex={-1}>
          Alarm <Badge value={alarm.status} />
        </h2>
        <StreamBadge state={state} />
        {alarm.status === 'active' && <ConfirmButton label="Cancel alarm" confirmLabel="Yes, cancel it" onConfirm={() => void cancel()} />}
      </div>
      <ErrorNote error={error} />
      <dl class="facts">
        <dt>Device</dt>
        <dd>
          {alarm.device_id} ({alarm.event_type})
        </dd>
        <dt>Started</dt>
        <dd>{formatDateTime(alarm.started_at)}</dd>
        {alarm.ended_at && (
          <>
            <dt>Ended</dt>
            <dd>
              {formatDateTime(alarm.ended_at)} — {alarm.end_reason}
            </dd>
          </>
        )}
        <dt>Calls</dt>
        <dd>
          {(action.to ?? []).join(' → ')}, {action.attempts ?? '?'} attempt(s) each{action.require_ack ? ', must press 1' : ''}
        </dd>
        <dt>Message</dt>
        <dd>{action.message}</dd>
        <dt>Correlation id</dt>
        <dd>
          <code>{alarm.correlation_id}</code>
        </dd>
      </dl>
      <h3>Call timeline</h3>
      {(alarm.calls ?? []).length === 0 && <p class="empty">No call yet.</p>}
      <ol class="calls">
        {(alarm.calls ?? []).map((call) => (
          <li key={call.id} class={`call call-${call.status}`} data-testid="alarm-call">
            <div class="call-head">
              <strong>{call.to}</strong> <span class="muted">number {call.position + 1}, attempt {call.attempt}</span> <Badge value={call.status} />
              {call.acknowledged && <Badge value="acknowledged" />}
            </div>
            <ol class="timeline">
              {callSteps(call).map((step) => (
                <li key={step.label} class={step.tone}>
                  <span class="time">{formatTime(step.at)}</span> {step.label}
                </li>
              ))}
            </ol>
          </li>
        ))}
      </ol>
    </section>
  );
}

export function AlarmsView({ selected }: { selected?: string | undefined }) {
  const api = useApi();
  const [status, setStatus] = useState<string>('');
  const [alarms, setAlarms] = useState<Alarm[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api
      .get<Page<Alarm>>('/alarms', { status, limit: 100 })
      .then((page) => {
        setAlarms(page.items);
        setError(null);
      })
      .catch(setError);
  }, [api, status]);
  useEffect(load, [load]);
  const state = useEventStream({ type: 'alarm.*' }, load);
  useEffect(() => {
    if (state === 'live') load();
  }, [state, load]);

  return (
    <>
      <h1>Alarms</h1>
      <div class={selected ? 'split' : ''}>
        <section aria-label="Alarm list">
          <form class="filters" onSubmit={(event) => event.preventDefault()}>
            <Field label="Status">
              {(id) => (
                <select id={id} value={status} onChange={(event) => setStatus(event.currentTarget.value)}>
                  {statuses.map((value) => (
                    <option key={value} value={value}>
                      {value || 'all'}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </form>
          <ErrorNote error={error} />
          {alarms.length === 0 && <p class="empty">No alarms.</p>}
          <ul class="cards">
            {alarms.map((alarm) => (
              <li key={alarm.id} class={alarm.id === selected ? 'selected' : ''}>
                <a href={`#/alarms/${alarm.id}`} aria-current={alarm.id === selected ? 'true' : undefined}>
                  <Badge value={alarm.status} /> <strong>{alarm.device_id}</strong> {alarm.event_type}
                  <span class="muted"> · {formatDateTime(alarm.started_at)}</span>
                  {alarm.end_reason && <span class="muted"> · {alarm.end_reason}</span>}
                </a>
              </li>
            ))}
          </ul>
        </section>
        {selected && <AlarmDetail key={selected} id={selected} onChanged={load} />}
      </div>
    </>
  );
}
