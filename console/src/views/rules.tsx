/** Rules: which device events call whom. List, create, edit, delete, with the API's messages. */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, type Page, type Rule } from '../api';
import { Badge, ConfirmButton, ErrorNote, Field, useFocusFirstField, useApi } from '../components';

interface RuleForm {
  name: string;
  event_type: string;
  match: 'device_id' | 'msisdn';
  target: string;
  to: string;
  message: string;
  attempts: string;
  retry_delay_s: string;
  ring_timeout_s: string;
  require_ack: boolean;
  cooldown_s: string;
  enabled: boolean;
}

const emptyForm: RuleForm = {
  name: '',
  event_type: 'smoke',
  match: 'device_id',
  target: '',
  to: '',
  message: '',
  attempts: '2',
  retry_delay_s: '60',
  ring_timeout_s: '30',
  require_ack: true,
  cooldown_s: '60',
  enabled: true,
};

function formOf(rule: Rule): RuleForm {
  return {
    name: rule.name,
    event_type: rule.event_type,
    match: rule.device_id ? 'device_id' : 'msisdn',
    target: rule.device_id ?? rule.msisdn ?? '',
    to: rule.action.to.join('\n'),
    message: rule.action.message,
    attempts: String(rule.action.attempts),
    retry_delay_s: String(rule.action.retry_delay_s),
    ring_timeout_s: String(rule.action.ring_timeout_s),
    require_ack: rule.action.require_ack,
    cooldown_s: String(rule.cooldown_s),
    enabled: rule.enabled,
  };
}

/** A number field as the API wants it: a number when it reads as one, else the text (the API names it). */
const numberOrText = (text: string): number | string => (/^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text);

function RuleEditor({ rule, onSaved, onCancel }: { rule: Rule | null; onSaved: (saved: Rule) => void; onCancel: () => void }) {
  const api = useApi();
  const [form, setForm] = useState<RuleForm>(rule ? formOf(rule) : emptyForm);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useFocusFirstField();
  const set = (changes: Partial<RuleForm>) => setForm({ ...form, ...changes });
  const fieldError = (name: string) => (error instanceof ApiError ? error.fieldMessage(name) : undefined);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = {
      name: form.name.trim(),
      event_type: form.event_type,
      [form.match]: form.target.trim(),
      action: {
        type: 'call',
        to: form.to
          .split(/[\n,;]+/)
          .map((number) => number.trim())
          .filter(Boolean),
        message: form.message.trim(),
        attempts: numberOrText(form.attempts),
        retry_delay_s: numberOrText(form.retry_delay_s),
        ring_timeout_s: numberOrText(form.ring_timeout_s),
        require_ack: form.require_ack,
      },
      cooldown_s: numberOrText(form.cooldown_s),
      enabled: form.enabled,
    };
    try {
      onSaved(rule ? await api.patch<Rule>(`/rules/${rule.id}`, body) : await api.post<Rule>('/rules', body));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const input = (name: 'name' | 'target' | 'attempts' | 'retry_delay_s' | 'ring_timeout_s' | 'cooldown_s', label: string, apiField: string, extra: { hint?: string; placeholder?: string; numeric?: boolean } = {}) => (
    <Field label={label} error={fieldError(apiField)} {...(extra.hint ? { hint: extra.hint } : {})}>
      {(id, describedBy) => (
        <input
          id={id}
          name={name}
          inputMode={extra.numeric ? 'numeric' : undefined}
          value={form[name]}
          placeholder={extra.placeholder}
          aria-invalid={fieldError(apiField) ? true : undefined}
          aria-describedby={describedBy}
          onInput={(event) => set({ [name]: event.currentTarget.value })}
        />
      )}
    </Field>
  );

  return (
    <form ref={formRef} class="editor" onSubmit={(event) => void submit(event)} aria-labelledby="rule-editor-title" noValidate>
      <h2 id="rule-editor-title">{rule ? `Edit rule ${rule.id}` : 'New rule'}</h2>
      {input('name', 'Name', 'name', { placeholder: 'Smoke in the hall' })}
      <Field label="Event type" error={fieldError('event_type')}>
        {(id) => (
          <select id={id} name="event_type" value={form.event_type} onChange={(event) => set({ event_type: event.currentTarget.value })}>
            <option value="smoke">smoke</option>
            <option value="smoke_cleared">smoke_cleared</option>
            <option value="test">test</option>
          </select>
        )}
      </Field>
      <fieldset class="field">
        <legend>Match events of</legend>
        <label class="inline">
          <input type="radio" name="match" checked={form.match === 'device_id'} onChange={() => set({ match: 'device_id' })} /> one device
        </label>
        <label class="inline">
          <input type="radio" name="match" checked={form.match === 'msisdn'} onChange={() => set({ match: 'msisdn' })} /> every device of a number
        </label>
      </fieldset>
      {input('target', form.match === 'device_id' ? 'Device id' : 'Subscriber number', form.match, { placeholder: form.match === 'device_id' ? 'hall-smoke' : '+79161234567' })}
      <Field label="Numbers to call, in order" error={fieldError('action.to')} hint="One per line; each is called until someone confirms.">
        {(id, describedBy) => (
          <textarea
            id={id}
            name="to"
            rows={3}
            value={form.to}
            aria-invalid={fieldError('action.to') ? true : undefined}
            aria-describedby={describedBy}
            onInput={(event) => set({ to: event.currentTarget.value })}
          />
        )}
      </Field>
      <Field label="Message" error={fieldError('action.message')} hint="Spoken to the callee.">
        {(id, describedBy) => (
          <input
            id={id}
            name="message"
            value={form.message}
            placeholder="Smoke detected in the hall"
            aria-invalid={fieldError('action.message') ? true : undefined}
            aria-describedby={describedBy}
            onInput={(event) => set({ message: event.currentTarget.value })}
          />
        )}
      </Field>
      <div class="grid-4">
        {input('attempts', 'Attempts per number', 'action.attempts', { numeric: true })}
        {input('retry_delay_s', 'Seconds between attempts', 'action.retry_delay_s', { numeric: true })}
        {input('ring_timeout_s', 'Ring timeout (s)', 'action.ring_timeout_s', { numeric: true })}
        {input('cooldown_s', 'Cooldown (s)', 'cooldown_s', { numeric: true })}
      </div>
      <div class="field checkbox">
        <input id="rule-ack" type="checkbox" checked={form.require_ack} onChange={(event) => set({ require_ack: event.currentTarget.checked })} />
        <label for="rule-ack">Callee must press 1 to confirm</label>
      </div>
      <div class="field checkbox">
        <input id="rule-enabled" type="checkbox" checked={form.enabled} onChange={(event) => set({ enabled: event.currentTarget.checked })} />
        <label for="rule-enabled">Enabled</label>
      </div>
      <ErrorNote error={error} />
      <div class="actions">
        <button type="submit" disabled={busy}>
          {rule ? 'Save changes' : 'Create rule'}
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function RulesView() {
  const api = useApi();
  const [rules, setRules] = useState<Rule[]>([]);
  const [editing, setEditing] = useState<Rule | 'new' | null>(null);
  const [search, setSearch] = useState('');
  const [notice, setNotice] = useState('');
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    api
      .get<Page<Rule>>('/rules', { limit: 500 })
      .then((page) => setRules(page.items))
      .catch(setError);
  }, [api]);
  useEffect(load, [load]);
  const needle = search.trim().toLowerCase();
  const shown = needle
    ? rules.filter((rule) => [rule.name, rule.device_id ?? '', rule.msisdn ?? '', rule.event_type, ...rule.action.to].some((text) => text.toLowerCase().includes(needle)))
    : rules;
  const remove = async (rule: Rule) => {
    try {
      await api.delete(`/rules/${rule.id}`);
      setNotice(`Deleted rule ${rule.id}.`);
      load();
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <>
      <div class="heading-row">
        <h1>Rules</h1>
        <button type="button" onClick={() => setEditing('new')}>
          New rule
        </button>
      </div>
      {editing && (
        <RuleEditor
          key={editing === 'new' ? 'new' : editing.id}
          rule={editing === 'new' ? null : editing}
          onCancel={() => setEditing(null)}
          onSaved={(saved) => {
            setEditing(null);
            setNotice(`Saved rule ${saved.id} (${saved.name}).`);
            load();
          }}
        />
      )}
      <form class="filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <Field label="Search">{(id) => <input id={id} type="search" value={search} placeholder="name, device or number" onInput={(event) => setSearch(event.currentTarget.value)} />}</Field>
      </form>
      <p class="notice" role="status">
        {notice}
      </p>
      <ErrorNote error={error} />
      <ul class="cards rules">
        {shown.map((rule) => (
          <li key={rule.id} data-rule={rule.name}>
            <div>
              <strong>{rule.name}</strong> {rule.enabled ? <Badge value="enabled" /> : <Badge value="disabled" />}
              <div class="muted">
                on <code>{rule.event_type}</code> from {rule.device_id ? `device ${rule.device_id}` : `devices of ${rule.msisdn ?? ''}`}: call {rule.action.to.join(' → ')} ({rule.action.attempts}×, {rule.action.retry_delay_s} s apart
                {rule.action.require_ack ? ', press 1' : ''}), cooldown {rule.cooldown_s} s
              </div>
            </div>
            <div class="row-actions">
              <button type="button" class="secondary" onClick={() => setEditing(rule)} aria-label={`Edit rule ${rule.name}`}>
                Edit
              </button>
              <ConfirmButton label="Delete" confirmLabel={`Delete rule ${rule.id}`} onConfirm={() => void remove(rule)} />
            </div>
          </li>
        ))}
      </ul>
      {shown.length === 0 && <p class="empty">No rules.</p>}
    </>
  );
}
