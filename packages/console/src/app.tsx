import { useEffect, useState } from 'preact/hooks';
import { currentSession, type Session, signOut, useCsrf } from './api.js';
import { ErrorNote } from './components.js';
import { href, readRoute } from './route.js';
import { AuditView } from './views/audit.js';
import { FindingsView } from './views/findings.js';
import { GovernanceView } from './views/governance.js';
import { OverviewView } from './views/overview.js';
import { PolicyView } from './views/policy.js';
import { RevocationsView } from './views/revocations.js';
import { TasksView } from './views/tasks.js';
import { TraceView } from './views/trace.js';
import { WorkloadsView } from './views/workloads.js';

/** The views, in the order of the navigation; `#/<path>?<params>` selects one. */
const VIEWS = [
  { path: '', label: 'Overview', view: OverviewView },
  { path: 'workloads', label: 'Workloads', view: WorkloadsView },
  { path: 'trace', label: 'Token trace', view: TraceView },
  { path: 'tasks', label: 'Tasks', view: TasksView },
  { path: 'revocations', label: 'Revocations', view: RevocationsView },
  { path: 'findings', label: 'Findings', view: FindingsView },
  { path: 'governance', label: 'Governance', view: GovernanceView },
  { path: 'policy', label: 'Policy', view: PolicyView },
  { path: 'audit', label: 'Audit', view: AuditView },
] as const;

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [route, setRoute] = useState(readRoute);
  useEffect(() => {
    currentSession().then((s) => {
      if (s) useCsrf(s.csrf);
      setSession(s);
    }, setError);
    const onHash = () => setRoute(readRoute());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  if (error) return <ErrorNote error={error} />;
  if (session === undefined) return <p class="muted">Loading…</p>;
  if (session === null)
    return (
      <main class="signin">
        <h1>Writ console</h1>
        <p>
          You are not signed in. Run <code>writ console</code> for a one-time sign-in link.
        </p>
        <p>
          <a class="button" href="/console/oidc/start">
            Sign in with your identity provider
          </a>
        </p>
      </main>
    );

  const current = VIEWS.find((v) => v.path === route.path) ?? VIEWS[0];
  const View = current.view;
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Writ</span>
        <nav aria-label="Views">
          {VIEWS.map((v) => (
            <a key={v.path} href={href(v.path)} aria-current={v === current ? 'page' : undefined}>
              {v.label}
            </a>
          ))}
        </nav>
        <span class="who">
          <span title="operator">{session.operator}</span>
          {session.person ? <span class="muted"> ({session.person})</span> : null}
          <button type="button" onClick={() => signOut().finally(() => location.assign('/console/'))}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        <h1>{current.label}</h1>
        <View route={route} />
      </main>
    </div>
  );
}
