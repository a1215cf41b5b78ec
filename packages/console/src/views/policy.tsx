import { api, query } from '../api.js';
import { ErrorNote, Section, Table, useResource, when } from '../components.js';

interface Policy {
  version: string;
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
      <Section title={`Running policy ${p.data?.version ?? ''}`}>
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
            { label: 'Version', cell: (e) => String(e.data['version'] ?? '—') },
            { label: 'Change', cell: (e) => JSON.stringify(e.data['changes'] ?? e.data['diff'] ?? '') },
          ]}
        />
      </Section>
    </div>
  );
}
