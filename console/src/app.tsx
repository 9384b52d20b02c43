/**
 * The console shell: sign-in with an admin key (kept in this tab's sessionStorage only), the
 * navigation, and `#/view/param` routing so every view has a link that survives a reload.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Api, ApiError } from './api';
import { ApiContext, Field } from './components';
import { AlarmsView } from './views/alarms';
import { ApiKeysView } from './views/api-keys';
import { DevicesView } from './views/devices';
import { IncomingCallsView } from './views/incoming-calls';
import { LiveView } from './views/live';
import { RulesView } from './views/rules';
import { SimulateView } from './views/simulate';

const KEY_STORAGE = 'tig-console-key';

const views = [
  { path: 'live', title: 'Live', render: () => <LiveView /> },
  { path: 'alarms', title: 'Alarms', render: (param?: string) => <AlarmsView selected={param} /> },
  { path: 'calls', title: 'Incoming calls', render: (param?: string) => <IncomingCallsView selected={param} /> },
  { path: 'devices', title: 'Devices', render: () => <DevicesView /> },
  { path: 'rules', title: 'Rules', render: () => <RulesView /> },
  { path: 'keys', title: 'API keys', render: () => <ApiKeysView /> },
  { path: 'simulate', title: 'Simulate', render: () => <SimulateView /> },
] as const;

function readRoute(): { view: string; param: string | undefined } {
  const [view = 'live', ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { view: views.some((candidate) => candidate.path === view) ? view : 'live', param: rest.length > 0 ? decodeURIComponent(rest.join('/')) : undefined };
}

export function App() {
  const [key, setKey] = useState<string | null>(() => sessionStorage.getItem(KEY_STORAGE));
  const api = useMemo(() => (key ? new Api(key) : null), [key]);
  if (!api) {
    return (
      <SignIn
        onSignedIn={(accepted) => {
          sessionStorage.setItem(KEY_STORAGE, accepted);
          setKey(accepted);
        }}
      />
    );
  }
  return (
    <ApiContext.Provider value={api}>
      <Shell
        onSignOut={() => {
          sessionStorage.removeItem(KEY_STORAGE);
          setKey(null);
        }}
      />
    </ApiContext.Provider>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (key: string) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const candidate = key.trim();
    if (!candidate) return setError('Paste an admin API key.');
    setBusy(true);
    setError(undefined);
    try {
      // Listing keys needs the admin role: the cheapest call that proves both key and role.
      await new Api(candidate).get('/api-keys', { limit: 1 });
      onSignedIn(candidate);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) setError('This key was refused: it is not valid or has been revoked.');
      else if (failure instanceof ApiError && failure.status === 403) setError(`This key is not an admin key. ${failure.detail}`);
      else setError(failure instanceof Error ? failure.message : String(failure));
      setBusy(false);
    }
  };
  return (
    <main class="sign-in">
      <form onSubmit={(event) => void submit(event)} aria-describedby="sign-in-about">
        <h1>TAS IoT Gateway</h1>
        <p id="sign-in-about">
          Operator console. Sign in with an <strong>admin</strong> API key; it is kept in this browser tab only, until you sign out or close the tab.
        </p>
        <Field label="Admin API key">
          {(id) => (
            <input
              id={id}
              type="password"
              autoComplete="off"
              spellcheck={false}
              value={key}
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? 'sign-in-error' : undefined}
              onInput={(event) => setKey(event.currentTarget.value)}
            />
          )}
        </Field>
        {error && (
          <p id="sign-in-error" class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const [route, setRoute] = useState(readRoute);
  const main = useRef<HTMLElement>(null);
  useEffect(() => {
    const follow = () => setRoute(readRoute());
    addEventListener('hashchange', follow);
    return () => removeEventListener('hashchange', follow);
  }, []);
  const current = views.find((view) => view.path === route.view) ?? views[0];
  useEffect(() => {
    document.title = `${current.title} · TAS IoT Gateway`;
  }, [current.title]);
  return (
    <>
      <a class="skip" href="#main" onClick={(event) => (event.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">TAS IoT Gateway</span>
        <nav aria-label="Console">
          <ul>
            {views.map((view) => (
              <li key={view.path}>
                <a href={`#/${view.path}`} aria-current={view.path === current.path ? 'page' : undefined}>
                  {view.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" class="secondary sign-out" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {current.render(route.param)}
      </main>
    </>
  );
}
