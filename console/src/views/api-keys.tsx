/** API keys: create (the key is shown once), list, revoke. */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, type ApiKey, type Page } from '../api';
import { Badge, ConfirmButton, ErrorNote, Field, formatDateTime, ShownOnce, useApi } from '../components';

export function ApiKeysView() {
  const api = useApi();
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [role, setRole] = useState<ApiKey['role']>('webhook');
  const [name, setName] = useState('');
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState('');
  const load = useCallback(() => {
    api
      .get<Page<ApiKey>>('/api-keys', { limit: 500 })
      .then((page) => setKeys(page.items))
      .catch(setError);
  }, [api]);
  useEffect(load, [load]);
  const fieldError = (field: string) => (error instanceof ApiError ? error.fieldMessage(field) : undefined);

  const create = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const key = await api.post<ApiKey>('/api-keys', { role, name: name.trim() });
      setCreated(key);
      setName('');
      load();
    } catch (failure) {
      setError(failure);
    }
  };
  const revoke = async (key: ApiKey) => {
    setError(null);
    try {
      await api.delete(`/api-keys/${key.id}`);
      setNotice(`Revoked ${key.name} (${key.key_prefix}…).`);
      load();
    } catch (failure) {
      setError(failure);
    }
  };

  return (
    <>
      <h1>API keys</h1>
      {created?.key && <ShownOnce label={`New ${created.role} key “${created.name}”`} value={created.key} onDone={() => setCreated(null)} />}
      <form class="filters editor-inline" onSubmit={(event) => void create(event)} aria-label="Create an API key" noValidate>
        <Field label="Role" error={fieldError('role')}>
          {(id) => (
            <select id={id} value={role} onChange={(event) => setRole(event.currentTarget.value as ApiKey['role'])}>
              <option value="webhook">webhook (smart-home system)</option>
              <option value="telephony">telephony (the TAS)</option>
              <option value="admin">admin (operators)</option>
            </select>
          )}
        </Field>
        <Field label="Name" error={fieldError('name')}>
          {(id, describedBy) => (
            <input id={id} value={name} placeholder="vendor cloud" aria-describedby={describedBy} aria-invalid={fieldError('name') ? true : undefined} onInput={(event) => setName(event.currentTarget.value)} />
          )}
        </Field>
        <div class="actions">
          <button type="submit">Create key</button>
        </div>
      </form>
      <p class="notice" role="status">
        {notice}
      </p>
      <ErrorNote error={error} />
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">API keys</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Key starts</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((key) => (
              <tr key={key.id}>
                <td>{key.name}</td>
                <td>{key.role}</td>
                <td>
                  <code>{key.key_prefix}…</code>
                </td>
                <td>{formatDateTime(key.created_at)}</td>
                <td>{key.revoked_at ? <Badge value="revoked" /> : <Badge value="active" />}</td>
                <td>{!key.revoked_at && <ConfirmButton label="Revoke" confirmLabel={`Revoke ${key.name}`} onConfirm={() => void revoke(key)} />}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
