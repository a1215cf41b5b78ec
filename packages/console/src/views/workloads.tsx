import { useEffect, useState } from 'preact/hooks';
import { admin, api } from '../api.js';
import { TimeChart } from '../chart.js';
import {
  ActionButton,
  Badge,
  ErrorNote,
  Field,
  POLL_MS,
  Section,
  Table,
  useResource,
} from '../components.js';
import { href } from '../route.js';

interface Workload {
  id: string;
  owner?: string;
  environment?: string;
  classes: string[];
  state: string;
  attributes?: Record<string, unknown>;
  description?: string;
  [k: string]: unknown;
}

const tone = (state: string) => (state === 'active' ? 'ok' : state === 'quarantined' ? 'bad' : 'warn');

export function WorkloadsView() {
  const list = useResource(() => api<{ workloads: Workload[] }>('GET', '/admin/v1/workloads'), [], POLL_MS);
  const orphaned = useResource(
    () => api<{ workloads: Array<{ id: string }> }>('GET', '/admin/v1/workloads/orphaned'),
    [],
  );
  const [selected, setSelected] = useState<string | null>(null);
  const orphans = new Set((orphaned.data?.workloads ?? []).map((w) => w.id));
  return (
    <div class="grid">
      <ErrorNote error={list.error} />
      <Section title="Workloads">
        <Table
          label="workloads"
          rows={list.data?.workloads}
          rowKey={(w) => w.id}
          empty="No workloads are registered."
          columns={[
            {
              label: 'Workload',
              cell: (w) => (
                <button type="button" class="link" onClick={() => setSelected(w.id)}>
                  {w.id}
                </button>
              ),
            },
            { label: 'Owner', cell: (w) => String(w.owner ?? '—') },
            { label: 'Environment', cell: (w) => String(w.environment ?? '—') },
            { label: 'Classes', cell: (w) => w.classes.join(', ') },
            { label: 'Description', cell: (w) => w.description ?? '' },
            {
              label: 'Attributes',
              cell: (w) =>
                Object.entries(w.attributes ?? {})
                  .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
                  .join(' '),
            },
            {
              label: 'State',
              cell: (w) => (
                <>
                  <Badge text={w.state} tone={tone(w.state)} />
                  {orphans.has(w.id) ? <Badge text="orphaned" tone="warn" /> : null}
                </>
              ),
            },
          ]}
        />
      </Section>
      {selected && <WorkloadDetail id={selected} onChanged={list.reload} />}
    </div>
  );
}

function WorkloadDetail({ id, onChanged }: { id: string; onChanged: () => void }) {
  const w = useResource(
    () => api<Workload & { risk?: unknown }>('GET', admin`/workloads/${id}`),
    [id],
    POLL_MS,
  );
  const [reason, setReason] = useState('from the console');
  const [history, setHistory] = useState<{ x: number[]; y: number[] }>({ x: [], y: [] });
  const risk = riskScore(w.data?.risk);
  // One point per answer while the page is open (the API keeps no risk history).
  useEffect(() => {
    if (risk === undefined) return;
    const at = Date.now();
    setHistory((h) => (h.x.length >= 600 ? h : { x: [...h.x, at], y: [...h.y, risk] }));
  }, [w.data, risk]);
  const done = () => {
    w.reload();
    onChanged();
  };
  const state = (verb: string) => () => api('POST', admin`/workloads/${id}/${verb}`, { reason });
  return (
    <Section title={`Workload ${id}`}>
      <ErrorNote error={w.error} />
      {w.data && (
        <>
          <dl class="facts">
            <dt>State</dt>
            <dd>
              <Badge text={w.data.state} tone={tone(w.data.state)} />
            </dd>
            <dt>Owner</dt>
            <dd>{String(w.data.owner ?? '—')}</dd>
            <dt>Risk</dt>
            <dd>{risk ?? '—'}</dd>
            <dt>Tokens</dt>
            <dd>
              <a href={href('trace', { workload: id })}>trace its tokens</a> ·{' '}
              <a href={href('tasks', { workload: id })}>its tasks</a>
            </dd>
          </dl>
          {history.x.length > 1 && (
            <TimeChart
              title="risk while this page is open"
              x={history.x}
              series={[{ label: 'risk', values: history.y, stroke: '#d97706' }]}
              height={140}
            />
          )}
          <Field label="Reason" value={reason} onInput={setReason} />
          <div class="actions">
            <ActionButton label="Disable" confirm={`Disable ${id}?`} run={state('disable')} onDone={done} />
            <ActionButton
              label="Quarantine"
              kind="danger"
              confirm={`Quarantine ${id}?`}
              run={state('quarantine')}
              onDone={done}
            />
            <ActionButton label="Enable" run={state('enable')} onDone={done} />
            <ActionButton
              label="Revoke all its tokens"
              kind="danger"
              confirm={`Revoke every token issued to ${id}?`}
              run={() => api('POST', '/admin/v1/revocations', { kind: 'sub', value: id, reason })}
              onDone={done}
            />
          </div>
        </>
      )}
    </Section>
  );
}

function riskScore(r: unknown): number | undefined {
  if (typeof r === 'number') return r;
  if (r && typeof r === 'object') {
    const o = r as Record<string, unknown>;
    for (const k of ['score', 'risk', 'value']) if (typeof o[k] === 'number') return o[k] as number;
  }
  return undefined;
}
