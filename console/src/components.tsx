/** Small pieces every view uses: the API context, the live-stream hook, messages, fields. */
import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useContext, useEffect, useId, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Api, type EventLogItem, type Query } from './api';
import { openEventStream, type StreamState } from './event-stream';

export const ApiContext = createContext<Api | null>(null);

export function useApi(): Api {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi outside the signed-in console');
  return api;
}

/** Follows the live event log (filtered by the server); `onEvents` sees every new row. */
export function useEventStream(filter: Query | null, onEvents: (events: EventLogItem[]) => void, lastEventId?: number): StreamState | 'off' {
  const api = useApi();
  const [state, setState] = useState<StreamState | 'off'>('off');
  const handler = useRef(onEvents);
  handler.current = onEvents;
  const filterKey = filter === null ? null : JSON.stringify(filter);
  useEffect(() => {
    if (filterKey === null) return undefined;
    return openEventStream(api.key, JSON.parse(filterKey) as Query, lastEventId, {
      onEvents: (events) => handler.current(events),
      onState: (next) => setState(next),
    });
  }, [api.key, filterKey, lastEventId]);
  return state;
}

export function StreamBadge({ state }: { state: StreamState | 'off' }) {
  const text = { off: 'Paused', connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', refused: 'Refused' }[state];
  return (
    <span class={`badge stream-${state}`} role="status">
      {text}
    </span>
  );
}

export function formatTime(iso: string | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function formatDateTime(iso: string | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  return `${date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${formatTime(iso)}`;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.errors.length > 0 ? `${error.detail}` : error.detail;
  return error instanceof Error ? error.message : String(error);
}

/** The API's own message, announced to screen readers. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

export function Badge({ value }: { value: string }) {
  return <span class={`badge status-${value}`}>{value.replace(/_/g, ' ')}</span>;
}

/** A labelled form field; the API's message for it (422 `errors`) shows under it. */
export function Field(props: { label: string; error?: string | undefined; hint?: string; children: (id: string, describedBy: string | undefined) => ComponentChildren }) {
  const id = useId();
  const messageId = `${id}-message`;
  const hintId = `${id}-hint`;
  const describedBy = [props.error ? messageId : '', props.hint ? hintId : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${props.error ? ' invalid' : ''}`}>
      <label for={id}>{props.label}</label>
      {props.children(id, describedBy)}
      {props.hint && (
        <small id={hintId} class="hint">
          {props.hint}
        </small>
      )}
      {props.error && (
        <small id={messageId} class="field-error">
          {props.error}
        </small>
      )}
    </div>
  );
}

/** Moves keyboard focus to the first field of a form that just opened. */
export function useFocusFirstField(): { current: HTMLFormElement | null } {
  const form = useRef<HTMLFormElement>(null);
  // A layout effect runs in the same task that inserts the form, so the focus is already there when
  // the form is first seen (a plain effect runs a frame later: a keystroke in between went astray).
  useLayoutEffect(() => {
    form.current?.querySelector<HTMLElement>('input:not([disabled]), select:not([disabled]), textarea')?.focus();
  }, []);
  return form;
}

/** A secret the API shows once (a new API key, a speaker's signing secret). */
export function ShownOnce({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  const id = useId();
  const [copied, setCopied] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useLayoutEffect(() => input.current?.select(), []);
  return (
    <section class="shown-once" aria-labelledby={`${id}-title`} role="region">
      <h3 id={`${id}-title`}>{label}</h3>
      <p>It is shown only this once: copy it now.</p>
      <div class="row">
        <label class="visually-hidden" for={id}>
          {label}
        </label>
        <input id={id} ref={input} class="secret" readOnly value={value} data-testid="shown-once" />
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard?.writeText(value).then(() => setCopied(true), () => setCopied(false));
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button type="button" class="secondary" onClick={onDone}>
          Done
        </button>
      </div>
    </section>
  );
}

/** A delete or revoke that asks once more, in the page (no blocking dialog). */
export function ConfirmButton({ label, confirmLabel, onConfirm, disabled }: { label: string; confirmLabel: string; onConfirm: () => void; disabled?: boolean }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" class="danger" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span class="confirm">
      <button
        type="button"
        class="danger"
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" class="secondary" onClick={() => setAsking(false)}>
        Keep
      </button>
    </span>
  );
}
