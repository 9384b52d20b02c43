/**
 * The device registry: list and search, create, edit, delete, and rotate a speaker's signing
 * secret. The API validates; its messages show next to the fields they name.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, enc, type Device, type Page } from '../api';
import { Badge, ConfirmButton, ErrorNote, Field, useFocusFirstField, ShownOnce, useApi } from '../components';

interface DeviceForm {
  device_id: string;
  type: 'speaker' | 'sensor_smoke';
  msisdn: string;
  name: string;
  endpoint: string;
  enabled: boolean;
}
const emptyForm: DeviceForm = { device_id: '', type: 'speaker', msisdn: '', name: '', endpoint: '', enabled: true };

function DeviceEditor({ device, onSaved, onCancel }: { device: Device | null; onSaved: (saved: Device) => void; onCancel: () => void }) {
  const api = useApi();
  const [form, setForm] = useState<DeviceForm>(
    device ? { device_id: device.device_id, type: device.type, msisdn: device.msisdn, name: device.name ?? '', endpoint: device.endpoint ?? '', enabled: device.enabled } : emptyForm,
  );
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useFocusFirstField();
  const fieldError = (name: string) => (error instanceof ApiError ? error.fieldMessage(name) : undefined);
  const set = (changes: Partial<DeviceForm>) => setForm({ ...form, ...changes });

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const saved = device
        ? await api.patch<Device>(`/devices/${enc(device.device_id)}`, {
            msisdn: form.msisdn,
            name: form.name.trim() === '' ? null : form.name,
            ...(form.type === 'speaker' ? { endpoint: form.endpoint.trim() === '' ? null : form.endpoint.trim() } : {}),
            enabled: form.enabled,
          })
        : await api.post<Device>('/devices', {
            device_id: form.device_id.trim(),
            type: form.type,
            msisdn: form.msisdn,
            ...(form.name.trim() ? { name: form.name.trim() } : {}),
            ...(form.type === 'speaker' ? { endpoint: form.endpoint.trim() } : {}),
            enabled: form.enabled,
          });
      onSaved(saved);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const text = (name: 'device_id' | 'msisdn' | 'name' | 'endpoint', label: string, extra: { hint?: string; placeholder?: string; disabled?: boolean } = {}) => (
    <Field label={label} error={fieldError(name)} {...(extra.hint ? { hint: extra.hint } : {})}>
      {(id, describedBy) => (
        <input
          id={id}
          name={name}
          value={form[name]}
          placeholder={extra.placeholder}
          disabled={extra.disabled}
          aria-invalid={fieldError(name) ? true : undefined}
          aria-describedby={describedBy}
          onInput={(event) => set({ [name]: event.currentTarget.value })}
        />
      )}
    </Field>
  );

  return (
    <form ref={formRef} class="editor" onSubmit={(event) => void submit(event)} aria-labelledby="device-editor-title" noValidate>
      <h2 id="device-editor-title">{device ? `Edit ${device.device_id}` : 'New device'}</h2>
      {text('device_id', 'Device id', { placeholder: 'kitchen-speaker', disabled: device !== null })}
      <Field label="Type" error={fieldError('type')}>
        {(id) => (
          <select id={id} name="type" value={form.type} disabled={device !== null} onChange={(event) => set({ type: event.currentTarget.value as DeviceForm['type'] })}>
            <option value="speaker">speaker (announces incoming calls)</option>
            <option value="sensor_smoke">sensor_smoke (its events trigger rules)</option>
          </select>
        )}
      </Field>
      {text('msisdn', 'Subscriber number', { placeholder: '+7 916 123-45-67', hint: 'Any common spelling; stored in E.164.' })}
      {text('name', 'Name', { placeholder: 'Kitchen' })}
      {form.type === 'speaker' && text('endpoint', 'Endpoint', { placeholder: 'https://speaker.example.net/notify', hint: 'http(s):// (signed webhooks) or mqtt://host:port/topic' })}
      <div class="field checkbox">
        <input id="device-enabled" type="checkbox" checked={form.enabled} onChange={(event) => set({ enabled: event.currentTarget.checked })} />
        <label for="device-enabled">Enabled</label>
      </div>
      <ErrorNote error={error} />
      <div class="actions">
        <button type="submit" disabled={busy}>
          {device ? 'Save changes' : 'Create device'}
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function DevicesView() {
  const api = useApi();
  const [devices, setDevices] = useState<Device[]>([]);
  const [type, setType] = useState('');
  const [search, setSearch] = useState('');
  const [editing, setEditing] = useState<Device | 'new' | null>(null);
  const [secret, setSecret] = useState<{ deviceId: string; value: string } | null>(null);
  const [notice, setNotice] = useState('');
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(() => {
    api
      .get<Page<Device>>('/devices', { type, limit: 500 })
      .then((page) => setDevices(page.items))
      .catch(setError);
  }, [api, type]);
  useEffect(load, [load]);

  const needle = search.trim().toLowerCase();
  const digits = needle.replace(/[^\d]/g, '');
  const shown = needle
    ? devices.filter(
        (device) =>
          device.device_id.toLowerCase().includes(needle) ||
          (device.name ?? '').toLowerCase().includes(needle) ||
          (digits.length >= 3 && device.msisdn.includes(digits)),
      )
    : devices;

  const remove = async (device: Device) => {
    try {
      await api.delete(`/devices/${enc(device.device_id)}`);
      setNotice(`Deleted ${device.device_id}.`);
      load();
    } catch (failure) {
      setError(failure);
    }
  };
  const rotate = async (device: Device) => {
    try {
      const rotated = await api.post<{ device_id: string; signing_secret: string }>(`/devices/${enc(device.device_id)}/rotate-secret`);
      setSecret({ deviceId: rotated.device_id, value: rotated.signing_secret });
    } catch (failure) {
      setError(failure);
    }
  };

  return (
    <>
      <div class="heading-row">
        <h1>Devices</h1>
        <button type="button" onClick={() => setEditing('new')}>
          New device
        </button>
      </div>
      {secret && <ShownOnce label={`Signing secret of ${secret.deviceId}`} value={secret.value} onDone={() => setSecret(null)} />}
      {editing && (
        <DeviceEditor
          key={editing === 'new' ? 'new' : editing.device_id}
          device={editing === 'new' ? null : editing}
          onCancel={() => setEditing(null)}
          onSaved={(saved) => {
            setEditing(null);
            setNotice(`Saved ${saved.device_id}.`);
            if (saved.signing_secret) setSecret({ deviceId: saved.device_id, value: saved.signing_secret });
            load();
          }}
        />
      )}
      <form class="filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <Field label="Search">{(id) => <input id={id} type="search" value={search} placeholder="id, name or number" onInput={(event) => setSearch(event.currentTarget.value)} />}</Field>
        <Field label="Type">
          {(id) => (
            <select id={id} value={type} onChange={(event) => setType(event.currentTarget.value)}>
              <option value="">all</option>
              <option value="speaker">speaker</option>
              <option value="sensor_smoke">sensor_smoke</option>
            </select>
          )}
        </Field>
      </form>
      <p class="notice" role="status">
        {notice}
      </p>
      <ErrorNote error={error} />
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">Devices</caption>
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Type</th>
              <th scope="col">Number</th>
              <th scope="col">Endpoint</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((device) => (
              <tr key={device.device_id} data-device={device.device_id}>
                <td>
                  <strong>{device.device_id}</strong>
                  {device.name && <div class="muted">{device.name}</div>}
                </td>
                <td>{device.type}</td>
                <td>{device.msisdn}</td>
                <td class="details">{device.endpoint ?? (device.type === 'speaker' ? <Badge value="no endpoint" /> : '')}</td>
                <td>{device.enabled ? <Badge value="enabled" /> : <Badge value="disabled" />}</td>
                <td class="row-actions">
                  <button type="button" class="secondary" onClick={() => setEditing(device)} aria-label={`Edit ${device.device_id}`}>
                    Edit
                  </button>
                  {device.has_signing_secret && (
                    <button type="button" class="secondary" onClick={() => void rotate(device)} aria-label={`Rotate the secret of ${device.device_id}`}>
                      Rotate secret
                    </button>
                  )}
                  <ConfirmButton label="Delete" confirmLabel={`Delete ${device.device_id}`} onConfirm={() => void remove(device)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {shown.length === 0 && <p class="empty">No devices{needle ? ' match' : ''}.</p>}
    </>
  );
}
