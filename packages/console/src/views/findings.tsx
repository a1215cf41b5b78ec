import { useState } from 'preact/hooks';
import { admin, api, query } from '../api.js';
import {
  ActionButton,
  Badge,
  ErrorNote,
  Field,
  Json,
  POLL_MS,
  Section,
  Table,
  useResource,
  when,
} from '../components.js';
import { href } from '../route.js';

interface Finding {
  id: string;
  rule: string;
  severity: string;
  mode: string;
  workload: string;
  jti: string | null;
  tid: string | null;
  createdAt: number;
  evidence: unknown;
  response: unknown;
  outcome: unknown;
  risk: number;
  state: string;
  stateBy: string | null;
  note: string;
}

interface Detections {
  enabled: boolean;
  control: { paused: boolean; by?: string; reason?: string };
}

const STATES = ['open', 'acknowledged', 'resolved', 'false_positive'];

export function FindingsView() {
  const [state, setState] = useState('open');
  const list = useResource(
    () => api<{ findings: Finding[] }>('GET', `/admin/v1/detections/findings${query({ state, limit: 200 })}`),
    [state],
    POLL_MS,
  );
  const det = useResource(() => api<Detections>('GET', '/admin/v1/detections'), [], POLL_MS);
  const [selected, setSelected] = useState<string | null>(null);
  const paused = det.data?.control.paused === true;
  return (
    <div class="grid">
      <Section
        title="Automatic responses"
        actions={paused ? <Badge text="paused" tone="warn" /> : <Badge text="running" tone="ok" />}
      >
        <ErrorNote error={det.error} />
        {paused ? (
          <ActionButton
            label="Resume automatic responses"
            run={() => api('POST', '/admin/v1/detections/resume', { reason: 'from the console' })}
            onDone={det.reload}
          />
        ) : (
          <ActionButton
            label="Pause automatic responses"
            kind="danger"
            confirm="Pause every automatic response (findings are still raised)?"
            run={() => api('POST', '/admin/v1/detections/pause', { reason: 'from the console' })}
            onDone={det.reload}
          />
        )}
      </Section>
      <label class="field inline">
        <span>State</span>
        <select value={state} onChange={(e) => setState((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">any</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <Section title="Findings">
        <ErrorNote error={list.error} />
        <Table
          label="findings"
          rows={list.data?.findings}
          rowKey={(f) => f.id}
          empty="No findings in this state."
          columns={[
            {
              label: 'Finding',
              cell: (f) => (
                <button type="button" class="link" onClick={() => setSelected(f.id)}>
                  {f.rule}
                </button>
              ),
            },
            {
              label: 'Severity',
              cell: (f) => (
                <Badge
                  text={f.severity}
                  tone={f.severity === 'high' || f.severity === 'critical' ? 'bad' : 'warn'}
                />
              ),
            },
            { label: 'Workload', cell: (f) => f.workload || '—' },
            {
              label: 'Token',
              cell: (f) => (f.jti ? <a href={href('trace', { jti: f.jti })}>{f.jti}</a> : '—'),
            },
            { label: 'Raised', cell: (f) => when(f.createdAt) },
            { label: 'Risk', cell: (f) => f.risk },
            { label: 'State', cell: (f) => <Badge text={f.state} /> },
          ]}
        />
      </Section>
      {selected && <FindingDetail id={selected} onChanged={list.reload} />}
    </div>
  );
}

function FindingDetail({ id, onChanged }: { id: string; onChanged: () => void }) {
  const f = useResource(() => api<Finding>('GET', admin`/detections/findings/${id}`), [id]);
  const [note, setNote] = useState('');
  const set = (state: string) => () => api('POST', admin`/detections/findings/${id}`, { state, note });
  const done = () => {
    f.reload();
    onChanged();
  };
  return (
    <Section title={`Finding ${id}`}>
      <ErrorNote error={f.error} />
      {f.data && (
        <>
          <dl class="facts">
            <dt>Rule</dt>
            <dd>{f.data.rule}</dd>
            <dt>State</dt>
            <dd>
              <Badge text={f.data.state} /> {f.data.stateBy ? `by ${f.data.stateBy}` : ''} {f.data.note}
            </dd>
          </dl>
          <Field label="Note" value={note} onInput={setNote} />
          <div class="actions">
            <ActionButton label="Acknowledge" run={set('acknowledged')} onDone={done} />
            <ActionButton label="Resolve" run={set('resolved')} onDone={done} />
            <ActionButton label="Mark false positive" run={set('false_positive')} onDone={done} />
          </div>
          <h3>Evidence</h3>
          <Json value={f.data.evidence} />
          <h3>Response</h3>
          <Json value={{ response: f.data.response, outcome: f.data.outcome }} />
        </>
      )}
    </Section>
  );
}
