import type { AuditEvent } from '@writ/sdk/wire';
import { useState } from 'preact/hooks';
import { api, query } from '../api.js';
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

export function AuditView() {
  const [form, setForm] = useState({ type: '', workload: '', jti: '' });
  const [filter, setFilter] = useState(form);
  const r = useResource(
    () =>
      api<{ events: AuditEvent[] }>(
        'GET',
        `/admin/v1/audit${query({ ...filter, order: 'desc', limit: 200 })}`,
      ),
    [filter],
    POLL_MS,
  );
  const [chain, setChain] = useState<unknown>(undefined);
  return (
    <div class="grid">
      <Section title="Chain">
        <ActionButton
          label="Verify the audit chain"
          run={async () => setChain(await api('POST', '/admin/v1/audit/verify'))}
        />
        {chain !== undefined && <Json value={chain} />}
      </Section>
      <form
        class="search"
        aria-label="filter audit events"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter(form);
        }}
      >
        <Field
          label="Type"
          value={form.type}
          onInput={(v) => setForm({ ...form, type: v })}
          placeholder="token.issued"
        />
        <Field
          label="Workload or actor"
          value={form.workload}
          onInput={(v) => setForm({ ...form, workload: v })}
        />
        <Field label="jti" value={form.jti} onInput={(v) => setForm({ ...form, jti: v })} />
        <button type="submit">Search</button>
      </form>
      <Section title="Events">
        <ErrorNote error={r.error} />
        <Table
          label="audit events"
          rows={r.data?.events}
          rowKey={(e) => String(e.seq)}
          empty="No events match."
          columns={[
            { label: 'Seq', cell: (e) => e.seq },
            { label: 'When', cell: (e) => when(e.ts) },
            { label: 'Type', cell: (e) => e.type },
            {
              label: 'Outcome',
              cell: (e) => (
                <Badge
                  text={e.outcome}
                  tone={e.outcome === 'success' ? 'ok' : e.outcome === 'refused' ? 'bad' : undefined}
                />
              ),
            },
            { label: 'Actor', cell: (e) => e.actor },
            { label: 'Subject', cell: (e) => e.subject ?? '' },
            { label: 'Data', cell: (e) => <code class="data">{JSON.stringify(e.data).slice(0, 300)}</code> },
          ]}
        />
      </Section>
    </div>
  );
}
