import { useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { Badge, ErrorNote, Field, Json, Section, Table, useResource, when } from '../components.js';

interface Policy {
  version: { id: string; policies?: number };
  warnings: unknown[];
  policies: Array<{ id: string; effect: string; file: string; line: number }>;
}

interface AuditEvent {
  seq: number;
  ts: number;
  actor: string;
  data: Record<string, unknown>;
}

export function PolicyView() {
  const p = useResource(() => api<Policy>('GET', '/admin/v1/policy'), []);
  const loads = useResource(
    () =>
      api<{ events: AuditEvent[] }>(
        'GET',
        `/admin/v1/audit${query({ type: 'policy.loaded', order: 'desc', limit: 50 })}`,
      ),
    [],
  );
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
      <Section title="Versions loaded">
        <ErrorNote error={loads.error} />
        <Table
          label="policy versions"
          rows={loads.data?.events}
          rowKey={(e) => String(e.seq)}
          empty="No policy load is recorded."
          columns={[
            { label: 'When', cell: (e) => when(e.ts) },
            { label: 'By', cell: (e) => e.actor },
            { label: 'Version', cell: (e) => versionOf(e.data['version']) },
            { label: 'Change', cell: (e) => JSON.stringify(e.data['changes'] ?? e.data['diff'] ?? '') },
          ]}
        />
      </Section>
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

/** A policy version as events record it: an id string, or an object holding one. */
function versionOf(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { id?: unknown }).id === 'string')
    return (v as { id: string }).id;
  return '—';
}
