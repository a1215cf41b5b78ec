import { api } from '../api.js';
import { href } from '../app.js';
import { TimeChart } from '../chart.js';
import { Badge, ErrorNote, POLL_MS, Section, Table, useResource, when } from '../components.js';

/** `GET /admin/v1/overview` (docs/admin.md). */
export interface Overview {
  now: number;
  window_minutes: number;
  minutes: number[];
  issued: number[];
  refused: number[];
  refusals_by_reason: Array<{ reason: string; count: number }>;
  active_tokens: number;
  recent_tokens: Array<{
    jti: string;
    sub: string;
    aud: string;
    cls: string;
    iat: number;
    exp: number;
    revoked: boolean;
  }>;
  revocations: { total: number; in_window: number };
  findings_open: number;
  workloads: Record<string, number>;
  verifiers: { subscribed_in_window: number; connected_here: number };
  health: { store: string; store_ms: number | null; node: string; audit_head: number | null };
  truncated: boolean;
}

export function OverviewView() {
  const r = useResource(() => api<Overview>('GET', '/admin/v1/overview'), [], POLL_MS);
  const o = r.data;
  return (
    <div class="grid">
      <ErrorNote error={r.error} />
      <div class="tiles" aria-live="polite">
        <Tile label="Active tokens" value={o?.active_tokens} />
        <Tile label={`Issued (last ${o?.window_minutes ?? 30} min)`} value={o ? sum(o.issued) : undefined} />
        <Tile
          label={`Refused (last ${o?.window_minutes ?? 30} min)`}
          value={o ? sum(o.refused) : undefined}
        />
        <Tile label="Revocations" value={o?.revocations.total} />
        <Tile label="Open findings" value={o?.findings_open} />
        <Tile label="Verifier streams here" value={o?.verifiers.connected_here} />
      </div>
      {o?.truncated && (
        <p class="muted">Counts are drawn from the newest 1000 events of each kind in the window.</p>
      )}
      <Section title="Tokens per minute">
        {o ? (
          <TimeChart
            title="issued and refused per minute"
            x={o.minutes}
            series={[
              { label: 'issued', values: o.issued, stroke: '#2563eb' },
              { label: 'refused', values: o.refused, stroke: '#dc2626' },
            ]}
          />
        ) : (
          <p class="muted">Loading…</p>
        )}
      </Section>
      <Section title="Refusals by reason">
        <Table
          label="refusals by reason"
          rows={o?.refusals_by_reason}
          rowKey={(x) => x.reason}
          empty="No refusals in the window."
          columns={[
            { label: 'Reason', cell: (x) => x.reason },
            { label: 'Count', cell: (x) => x.count },
          ]}
        />
      </Section>
      <Section title="Recently issued tokens">
        <Table
          label="recently issued tokens"
          rows={o?.recent_tokens}
          rowKey={(t) => t.jti}
          empty="No tokens issued in the window."
          columns={[
            { label: 'jti', cell: (t) => <a href={href('trace', { jti: t.jti })}>{t.jti}</a> },
            { label: 'Workload', cell: (t) => t.sub },
            { label: 'Audience', cell: (t) => t.aud },
            { label: 'Class', cell: (t) => t.cls },
            { label: 'Expires', cell: (t) => when(t.exp * 1000) },
            {
              label: 'State',
              cell: (t) =>
                t.revoked ? (
                  <Badge text="revoked" tone="bad" />
                ) : t.exp * 1000 > (o?.now ?? 0) ? (
                  <Badge text="live" tone="ok" />
                ) : (
                  <Badge text="expired" />
                ),
            },
          ]}
        />
      </Section>
      <Section title="Health">
        {o ? (
          <dl class="facts">
            <dt>Store</dt>
            <dd>
              <Badge text={o.health.store} tone={o.health.store === 'ok' ? 'ok' : 'bad'} />
              {o.health.store_ms !== null ? ` ${o.health.store_ms} ms` : ''}
            </dd>
            <dt>Node</dt>
            <dd>{o.health.node}</dd>
            <dt>Audit head</dt>
            <dd>{o.health.audit_head ?? '—'}</dd>
            <dt>Workloads</dt>
            <dd>
              {Object.entries(o.workloads)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ') || 'none'}
            </dd>
            <dt>Verifier subscriptions (window)</dt>
            <dd>{o.verifiers.subscribed_in_window}</dd>
            <dt>As of</dt>
            <dd>{when(o.now)}</dd>
          </dl>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </Section>
    </div>
  );
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function Tile({ label, value }: { label: string; value: number | undefined }) {
  return (
    <div class="tile">
      <div class="tile-value">{value ?? '…'}</div>
      <div class="tile-label">{label}</div>
    </div>
  );
}
