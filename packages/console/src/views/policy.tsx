import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Badge, ErrorNote, Field, Json, Section, Table, useResource, when } from '../components.js';
import { filesDiff } from '../line-diff.js';

interface Policy {
  version: { id: string; policies?: number };
  warnings: unknown[];
  policies: Array<{ id: string; effect: string; file: string; line: number }>;
}

/** `GET /admin/v1/policy/versions`: the applied versions kept, newest first. */
interface VersionSummary {
  id: string;
  counter: number;
  created: number;
  applied_by: string | null;
  built_in: boolean;
  policies: number;
}

interface VersionSources extends VersionSummary {
  files: Array<{ file: string; text: string }>;
}

export function PolicyView() {
  const p = useResource(() => api<Policy>('GET', '/admin/v1/policy'), []);
  return (
    <div class="grid">
      <ErrorNote error={p.error} />
      <Section title={`Running policy set ${p.data?.version.id ?? ''}`}>
        <Table
          label="policies"
          rows={p.data?.policies}
          rowKey={(x) => x.id}
          empty="No policies are loaded."
          columns={[
            { label: 'Policy', cell: (x) => x.id },
            { label: 'Effect', cell: (x) => x.effect },
            { label: 'File', cell: (x) => `${x.file}:${x.line}` },
          ]}
        />
      </Section>
      <Explain />
      <Versions running={p.data?.version.id} />
    </div>
  );
}

const ACTIONS = ['issue', 'exchange', 'renew', 'read', 'write', 'export', 'delete'];

/** `POST /admin/v1/policy/explain`. */
interface Explained {
  decision: string;
  reasons: string[];
  errors: string[];
  considered: Array<{ id: string; effect: string; file: string; line: number }>;
  determining: Array<{ id: string; effect: string; file: string; line: number; text: string }>;
  context: unknown;
  policy_version: string;
}

/** "Explain this decision": a request typed in the page, decided by the running policies. */
function Explain() {
  const [workload, setWorkload] = useState('');
  const [action, setAction] = useState('read');
  const [resource, setResource] = useState('');
  const [risk, setRisk] = useState('');
  const [result, setResult] = useState<Explained | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setResult(undefined);
    try {
      const context = risk.trim() === '' ? {} : { risk: Number(risk) };
      setResult(
        await api<Explained>('POST', '/admin/v1/policy/explain', { workload, action, resource, context }),
      );
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Section title="Explain this decision">
      <form class="search" onSubmit={submit} aria-label="explain a decision">
        <Field label="Workload" value={workload} onInput={setWorkload} placeholder="spiffe://…" />
        <label class="field">
          <span>Action</span>
          <select value={action} onChange={(e) => setAction((e.currentTarget as HTMLSelectElement).value)}>
            {ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <Field label="Resource (audience)" value={resource} onInput={setResource} placeholder="https://…" />
        <Field label="Risk (0-100, optional)" value={risk} onInput={setRisk} />
        <button type="submit">Explain</button>
      </form>
      <ErrorNote error={error} />
      {result && (
        <div aria-live="polite">
          <p>
            <Badge text={result.decision} tone={result.decision === 'allow' ? 'ok' : 'bad'} />{' '}
            {result.reasons.length
              ? `by ${result.reasons.join(', ')}`
              : 'no policy applies (denied by default)'}{' '}
            · policy set {result.policy_version}
          </p>
          {result.determining.map((p) => (
            <div key={p.id}>
              <h3>
                {p.id} ({p.effect}, {p.file}:{p.line})
              </h3>
              <pre class="json">{p.text}</pre>
            </div>
          ))}
          {result.errors.length > 0 && <Json value={result.errors} />}
          <h3>Policies considered</h3>
          <p>{result.considered.map((p) => p.id).join(', ') || 'none'}</p>
          <h3>Context</h3>
          <Json value={result.context} />
        </div>
      )}
    </Section>
  );
}

/** The applied versions the store keeps, and a line diff of any two of them, file by file. */
function Versions({ running }: { running: string | undefined }) {
  const list = useResource(
    () => api<{ versions: VersionSummary[] }>('GET', '/admin/v1/policy/versions'),
    [running],
  );
  const versions = list.data?.versions;
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  // Until the operator chooses, the newest version against the one before it.
  const a = from || versions?.[1]?.id || '';
  const b = to || versions?.[0]?.id || '';
  const choose = (label: string, value: string, set: (v: string) => void) => (
    <label class="field">
      <span>{label}</span>
      <select value={value} onChange={(e) => set((e.currentTarget as HTMLSelectElement).value)}>
        {(versions ?? []).map((v) => (
          <option key={v.id} value={v.id}>
            {v.id}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <Section title="Policy versions">
      <ErrorNote error={list.error} />
      <Table
        label="policy versions"
        rows={versions}
        rowKey={(v) => v.id}
        empty="No policy version is kept yet."
        columns={[
          { label: 'Version', cell: (v) => (v.id === running ? `${v.id} (running)` : v.id) },
          { label: 'Applied', cell: (v) => when(v.created) },
          { label: 'By', cell: (v) => v.applied_by ?? 'unknown' },
          { label: 'Policies', cell: (v) => (v.built_in ? `${v.policies} (built in)` : String(v.policies)) },
        ]}
      />
      {versions && versions.length > 1 && (
        <form class="search" aria-label="compare policy versions" onSubmit={(e) => e.preventDefault()}>
          {choose('From', a, setFrom)}
          {choose('To', b, setTo)}
        </form>
      )}
      {a && b && <VersionDiff a={a} b={b} />}
    </Section>
  );
}

const MARK = { same: '  ', added: '+ ', removed: '- ' } as const;

function VersionDiff({ a, b }: { a: string; b: string }) {
  const sources = useResource(
    () =>
      Promise.all(
        [a, b].map((id) => api<VersionSources>('GET', `/admin/v1/policy/versions/${encodeURIComponent(id)}`)),
      ),
    [a, b],
  );
  if (sources.error) return <ErrorNote error={sources.error} />;
  if (!sources.data) return <p class="muted">Loading…</p>;
  const [x, y] = sources.data as [VersionSources, VersionSources];
  const files = filesDiff(x.files, y.files);
  return (
    <section aria-label="policy diff">
      <p>
        {x.id} → {y.id}: {files.filter((f) => f.status !== 'same').length} of {files.length} files differ
      </p>
      {files.map((f) => (
        <div key={f.file}>
          <h3>
            {f.file} <Badge text={f.status} tone={f.status === 'same' ? 'ok' : 'warn'} />
          </h3>
          {f.status !== 'same' && (
            <pre class="diff">
              {f.lines.map((l, i) => (
                // Text nodes only: policy text is never markup here.
                <span key={i} class={`diff-${l.kind}`}>
                  {MARK[l.kind]}
                  {l.text}
                </span>
              ))}
            </pre>
          )}
        </div>
      ))}
    </section>
  );
}
