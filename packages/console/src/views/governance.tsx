import { useState } from 'preact/hooks';
import { admin, api } from '../api.js';
import { ActionButton, Badge, ErrorNote, Json, POLL_MS, Section, Table, useResource } from '../components.js';

interface Exception {
  id: string;
  covers: unknown;
  owner: string;
  justification: string;
  status: string;
  expires: string;
}

interface Grant {
  id: string;
  workload: string;
  cls: string;
  reason: string;
  duration: number;
  emergency: boolean;
  requestedBy: string;
  requested: string;
  state: string;
  approvedBy?: string;
  ends?: string;
  open_review: boolean;
}

export function GovernanceView() {
  const ex = useResource(() => api<{ exceptions: Exception[] }>('GET', '/admin/v1/exceptions'), [], POLL_MS);
  const bg = useResource(() => api<{ breakglass: Grant[] }>('GET', '/admin/v1/breakglass'), [], POLL_MS);
  const orphaned = useResource(
    () => api<{ workloads: Array<{ id: string; owner?: string }> }>('GET', '/admin/v1/workloads/orphaned'),
    [],
  );
  const [until, setUntil] = useState('');
  const [note, setNote] = useState('');
  return (
    <div class="grid">
      <Section title="Break-glass requests">
        <ErrorNote error={bg.error} />
        <Table
          label="break-glass requests"
          rows={bg.data?.breakglass}
          rowKey={(g) => g.id}
          empty="No break-glass requests."
          columns={[
            { label: 'Workload', cell: (g) => g.workload },
            { label: 'Class', cell: (g) => g.cls },
            { label: 'Reason', cell: (g) => g.reason },
            { label: 'Requested by', cell: (g) => g.requestedBy },
            { label: 'Requested', cell: (g) => g.requested },
            {
              label: 'State',
              cell: (g) => <Badge text={g.state} tone={g.state === 'active' ? 'warn' : undefined} />,
            },
            {
              label: 'Act',
              cell: (g) =>
                g.state === 'pending' ? (
                  <ActionButton
                    label="Approve"
                    confirm={`Approve ${g.cls} for ${g.workload} (${g.duration} s)?`}
                    run={() => api('POST', admin`/breakglass/${g.id}/approve`)}
                    onDone={bg.reload}
                  />
                ) : g.approvedBy ? (
                  `approved by ${g.approvedBy}`
                ) : (
                  ''
                ),
            },
          ]}
        />
      </Section>
      <Section title="Exceptions">
        <ErrorNote error={ex.error} />
        <div class="search">
          <label class="field">
            <span>Renew until (YYYY-MM-DD)</span>
            <input value={until} onInput={(e) => setUntil((e.currentTarget as HTMLInputElement).value)} />
          </label>
          <label class="field">
            <span>Note</span>
            <input value={note} onInput={(e) => setNote((e.currentTarget as HTMLInputElement).value)} />
          </label>
        </div>
        <Table
          label="exceptions"
          rows={ex.data?.exceptions}
          rowKey={(e) => e.id}
          empty="No exceptions are registered."
          columns={[
            { label: 'Exception', cell: (e) => e.id },
            { label: 'Owner', cell: (e) => e.owner },
            { label: 'Justification', cell: (e) => e.justification },
            {
              label: 'Status',
              cell: (e) => <Badge text={e.status} tone={e.status === 'active' ? 'ok' : 'warn'} />,
            },
            { label: 'Expires', cell: (e) => e.expires },
            {
              label: 'Act',
              cell: (e) => (
                <span class="actions">
                  <ActionButton
                    label="Renew"
                    run={() => api('POST', admin`/exceptions/${e.id}/renew`, { until, note })}
                    onDone={ex.reload}
                  />
                  <ActionButton
                    label="Retire"
                    kind="danger"
                    confirm={`Retire ${e.id}?`}
                    run={() => api('POST', admin`/exceptions/${e.id}/retire`, { note })}
                    onDone={ex.reload}
                  />
                </span>
              ),
            },
          ]}
        />
      </Section>
      <Section title="Orphaned workloads">
        <Table
          label="orphaned workloads"
          rows={orphaned.data?.workloads}
          rowKey={(w) => w.id}
          empty="No workload has lost its owner."
          columns={[
            { label: 'Workload', cell: (w) => w.id },
            { label: 'Owner', cell: (w) => String(w.owner ?? '—') },
          ]}
        />
      </Section>
      <Reports />
    </div>
  );
}

function Reports() {
  const [verify, setVerify] = useState<unknown>(undefined);
  const [stale, setStale] = useState<unknown>(undefined);
  return (
    <Section title="Reports">
      <div class="actions">
        <ActionButton
          label="Run govern verify (last 7 days)"
          run={async () =>
            setVerify(
              (
                (await api('POST', '/admin/v1/govern/verify', { since_seconds: 7 * 86400 })) as {
                  report: unknown;
                }
              ).report,
            )
          }
        />
        <ActionButton
          label="List stale identities (30 days)"
          run={async () => setStale(await api('POST', '/admin/v1/govern/stale', { after: 30 * 86400 }))}
        />
      </div>
      {verify !== undefined && (
        <>
          <h3>govern verify</h3>
          <Json value={verify} />
        </>
      )}
      {stale !== undefined && (
        <>
          <h3>Stale identities</h3>
          <Json value={stale} />
        </>
      )}
    </Section>
  );
}
