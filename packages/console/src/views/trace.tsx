import type { AuditEvent, TokenTrace } from '@writ/sdk/wire';
import { useState } from 'preact/hooks';
import { admin, api, query } from '../api.js';
import {
  ActionButton,
  Badge,
  ErrorNote,
  Field,
  POLL_MS,
  Section,
  Table,
  useResource,
  when,
  whenSeconds,
} from '../components.js';
import type { Route } from '../route.js';
import { href } from '../route.js';

export function TraceView({ route }: { route: Route }) {
  const jti = route.params.get('jti') ?? '';
  const workload = route.params.get('workload') ?? '';
  const task = route.params.get('task') ?? '';
  const [form, setForm] = useState({ jti, workload, task });
  const search = (e: Event) => {
    e.preventDefault();
    const p: Record<string, string> = {};
    for (const [k, v] of Object.entries(form)) if (v.trim() !== '') p[k] = v.trim();
    location.hash = href('trace', p);
  };
  return (
    <div class="grid">
      <form class="search" onSubmit={search} aria-label="find tokens">
        <Field label="jti" value={form.jti} onInput={(v) => setForm({ ...form, jti: v })} />
        <Field label="Workload" value={form.workload} onInput={(v) => setForm({ ...form, workload: v })} />
        <Field label="Task" value={form.task} onInput={(v) => setForm({ ...form, task: v })} />
        <button type="submit">Search</button>
      </form>
      {jti ? (
        <OneToken jti={jti} />
      ) : workload || task ? (
        <TokenList workload={workload} task={task} />
      ) : (
        <p class="muted">Search by jti, workload or task.</p>
      )}
    </div>
  );
}

function TokenList({ workload, task }: { workload: string; task: string }) {
  const r = useResource(async () => {
    if (task) {
      const t = await api<{
        tokens: Array<{ jti: string; aud: string; iat: number; exp: number; revoked: boolean }>;
      }>('GET', admin`/tasks/${task}`);
      return t.tokens.map((x) => ({ jti: x.jti, at: x.iat * 1000, aud: x.aud, sub: '' }));
    }
    const a = await api<{ events: AuditEvent[] }>(
      'GET',
      `/admin/v1/audit${query({ workload, type: 'token.issued', order: 'desc', limit: 200 })}`,
    );
    return a.events.map((e) => ({
      jti: e.jti ?? '',
      at: e.ts,
      aud: String(e.data['aud'] ?? ''),
      sub: e.subject ?? '',
    }));
  }, [workload, task]);
  return (
    <Section title={task ? `Tokens of task ${task}` : `Tokens issued to ${workload}`}>
      <ErrorNote error={r.error} />
      <Table
        label="tokens"
        rows={r.data}
        rowKey={(t) => t.jti}
        empty="No tokens found."
        columns={[
          { label: 'jti', cell: (t) => <a href={href('trace', { jti: t.jti })}>{t.jti}</a> },
          { label: 'Issued', cell: (t) => when(t.at) },
          { label: 'Audience', cell: (t) => t.aud },
        ]}
      />
    </Section>
  );
}

function OneToken({ jti }: { jti: string }) {
  const r = useResource(() => api<TokenTrace>('GET', admin`/audit/trace/${jti}`), [jti], POLL_MS);
  const t = r.data;
  const [reason, setReason] = useState('revoked from the console');
  const revoked = (t?.revocations.length ?? 0) > 0;
  return (
    <>
      <ErrorNote error={r.error} />
      {t && (
        <Section
          title={`Token ${t.jti}`}
          actions={revoked ? <Badge text="revoked" tone="bad" /> : <Badge text="not revoked" tone="ok" />}
        >
          {t.token && (
            <dl class="facts">
              <dt>Workload</dt>
              <dd>{t.token.sub}</dd>
              <dt>Class</dt>
              <dd>{t.token.cls}</dd>
              <dt>Audience</dt>
              <dd>{t.token.aud}</dd>
              <dt>Scope</dt>
              <dd>{t.token.scope}</dd>
              <dt>Task</dt>
              <dd>{t.token.tid ? <a href={href('tasks', { task: t.token.tid })}>{t.token.tid}</a> : '—'}</dd>
              <dt>Issued / expires</dt>
              <dd>
                {whenSeconds(t.token.iat)} / {whenSeconds(t.token.exp)}
              </dd>
              <dt>Uses</dt>
              <dd>
                {t.totals.allow} allowed, {t.totals.deny} denied
              </dd>
            </dl>
          )}
          {!revoked && (
            <div class="actions">
              <label class="field">
                <span>Reason</span>
                <input
                  value={reason}
                  onInput={(e) => setReason((e.currentTarget as HTMLInputElement).value)}
                />
              </label>
              <ActionButton
                label="Revoke this token"
                kind="danger"
                confirm={`Revoke ${t.jti}?`}
                run={() => api('POST', '/admin/v1/revocations', { kind: 'jti', value: t.jti, reason })}
                onDone={r.reload}
              />
            </div>
          )}
        </Section>
      )}
      {t && (
        <Section title="Timeline">
          <ol class="timeline" aria-label="timeline">
            {t.timeline.map((e, i) => (
              <li key={i} class={`tl-${e.what}`}>
                <span class="tl-at">{when(e.at)}</span> <Badge text={e.what} /> <span>{e.detail}</span>
              </li>
            ))}
          </ol>
        </Section>
      )}
      {t && (
        <Section title="Uses">
          <Table
            label="uses"
            rows={t.uses}
            rowKey={(u) => `${u.reporter}|${u.operation}|${u.source}|${u.decision}|${u.first_seen}`}
            empty="No use reported."
            columns={[
              { label: 'Operation', cell: (u) => u.operation },
              { label: 'Source', cell: (u) => u.source },
              {
                label: 'Decision',
                cell: (u) => <Badge text={u.decision} tone={u.decision === 'allow' ? 'ok' : 'bad'} />,
              },
              { label: 'Reason', cell: (u) => u.reason },
              { label: 'Count', cell: (u) => u.count },
              { label: 'User agent', cell: (u) => u.user_agent ?? '—' },
              { label: 'Reporter', cell: (u) => u.reporter },
              { label: 'Last seen', cell: (u) => when(u.last_seen) },
            ]}
          />
        </Section>
      )}
    </>
  );
}
