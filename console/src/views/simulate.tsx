/** Try the gateway from the page: a device event (as the smart-home system sends it) and an incoming call (as the TAS reports it). */
import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import { ErrorNote, Field, useApi } from '../components';

interface EventResult {
  event_id: string;
  status: string;
  matched_rules: number;
  alarm_ids: string[];
  suppressed: number;
  canceled_alarm_ids: string[];
}

const newId = (prefix: string) => `${prefix}-${new Date().toISOString().replace(/[-:T.Z]/g, '').slice(0, 14)}-${Math.random().toString(36).slice(2, 6)}`;

function DeviceEventForm() {
  const api = useApi();
  const [deviceId, setDeviceId] = useState('');
  const [eventType, setEventType] = useState('smoke');
  const [eventId, setEventId] = useState(() => newId('console'));
  const [result, setResult] = useState<EventResult | null>(null);
  const [error, setError] = useState<unknown>(null);
  const fieldError = (field: string) => (error instanceof ApiError ? error.fieldMessage(field) : undefined);
  const send = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setResult(null);
    try {
      setResult(await api.post<EventResult>('/webhooks/events', { event_id: eventId.trim(), device_id: deviceId.trim(), event_type: eventType }));
      setEventId(newId('console'));
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <form class="editor" onSubmit={(event) => void send(event)} aria-labelledby="simulate-event-title" noValidate>
      <h2 id="simulate-event-title">Device event</h2>
      <Field label="Device id" error={fieldError('device_id')}>
        {(id, describedBy) => <input id={id} name="device_id" value={deviceId} placeholder="hall-smoke" aria-describedby={describedBy} onInput={(e) => setDeviceId(e.currentTarget.value)} />}
      </Field>
      <Field label="Event type" error={fieldError('event_type')}>
        {(id) => (
          <select id={id} name="event_type" value={eventType} onChange={(e) => setEventType(e.currentTarget.value)}>
            <option value="smoke">smoke</option>
            <option value="smoke_cleared">smoke_cleared</option>
            <option value="test">test</option>
          </select>
        )}
      </Field>
      <Field label="Event id" error={fieldError('event_id')} hint="The sender's unique id: sending the same one again starts nothing new.">
        {(id, describedBy) => <input id={id} name="event_id" value={eventId} aria-describedby={describedBy} onInput={(e) => setEventId(e.currentTarget.value)} />}
      </Field>
      <ErrorNote error={error} />
      <div class="actions">
        <button type="submit">Send event</button>
      </div>
      {result && (
        <div class="result" role="status" data-testid="event-result">
          <p>
            Event <code>{result.event_id}</code> {result.status}: {result.matched_rules} rule(s) matched
            {result.suppressed > 0 ? `, ${result.suppressed} suppressed` : ''}.
          </p>
          {result.alarm_ids.length > 0 && (
            <ul>
              {result.alarm_ids.map((id) => (
                <li key={id}>
                  <a href={`#/alarms/${id}`}>Follow alarm {id.slice(0, 8)}</a>
                </li>
              ))}
            </ul>
          )}
          {result.canceled_alarm_ids.length > 0 && <p>Canceled {result.canceled_alarm_ids.length} alarm(s).</p>}
        </div>
      )}
    </form>
  );
}

function IncomingCallForm() {
  const api = useApi();
  const [callId, setCallId] = useState(() => newId('call'));
  const [caller, setCaller] = useState('+74951234567');
  const [callee, setCallee] = useState('');
  const [callerName, setCallerName] = useState('');
  const [state, setState] = useState('ringing');
  const [result, setResult] = useState<{ call_id: string; state: string; notified_devices: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const fieldError = (field: string) => (error instanceof ApiError ? error.fieldMessage(field) : undefined);
  const send = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      setResult(
        await api.post('/incoming-calls', {
          call_id: callId.trim(),
          caller: caller.trim(),
          callee: callee.trim(),
          state,
          ...(callerName.trim() ? { caller_name: callerName.trim() } : {}),
        }),
      );
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <form class="editor" onSubmit={(event) => void send(event)} aria-labelledby="simulate-call-title" noValidate>
      <h2 id="simulate-call-title">Incoming call</h2>
      <Field label="Subscriber number (callee)" error={fieldError('callee')}>
        {(id, describedBy) => <input id={id} name="callee" value={callee} placeholder="+7 916 123-45-67" aria-describedby={describedBy} onInput={(e) => setCallee(e.currentTarget.value)} />}
      </Field>
      <Field label="Caller" error={fieldError('caller')}>
        {(id, describedBy) => <input id={id} name="caller" value={caller} aria-describedby={describedBy} onInput={(e) => setCaller(e.currentTarget.value)} />}
      </Field>
      <Field label="Caller name" error={fieldError('caller_name')}>
        {(id, describedBy) => <input id={id} name="caller_name" value={callerName} placeholder="Mum" aria-describedby={describedBy} onInput={(e) => setCallerName(e.currentTarget.value)} />}
      </Field>
      <Field label="State" error={fieldError('state')}>
        {(id) => (
          <select id={id} name="state" value={state} onChange={(e) => setState(e.currentTarget.value)}>
            <option value="ringing">ringing</option>
            <option value="answered">answered</option>
            <option value="ended">ended</option>
          </select>
        )}
      </Field>
      <Field label="Call id" error={fieldError('call_id')} hint="Keep it to move the same call on (ringing, then answered, then ended).">
        {(id, describedBy) => <input id={id} name="call_id" value={callId} aria-describedby={describedBy} onInput={(e) => setCallId(e.currentTarget.value)} />}
      </Field>
      <ErrorNote error={error} />
      <div class="actions">
        <button type="submit">Report call</button>
        <button type="button" class="secondary" onClick={() => (setCallId(newId('call')), setState('ringing'), setResult(null))}>
          New call
        </button>
      </div>
      {result && (
        <div class="result" role="status" data-testid="call-result">
          <p>
            Call <code>{result.call_id}</code> is {result.state}; {result.notified_devices} speaker(s) to notify.
          </p>
          <a href={`#/calls/${encodeURIComponent(result.call_id)}`}>See the deliveries</a>
        </div>
      )}
    </form>
  );
}

export function SimulateView() {
  return (
    <>
      <h1>Simulate</h1>
      <p class="muted">Sent with your admin key, exactly as the smart-home system and the TAS would send them.</p>
      <div class="two-columns">
        <DeviceEventForm />
        <IncomingCallForm />
      </div>
    </>
  );
}
