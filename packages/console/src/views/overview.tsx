import type { AdminOverview, LiveCountsFrame } from '@writ/sdk/wire';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { TimeChart } from '../chart.js';
import { Badge, ErrorNote, POLL_MS, Section, Table, useResource, when } from '../components.js';
import { href } from '../route.js';

/** While the live stream is open, the whole overview is asked for this rarely; counts arrive as they happen. */
const LIVE_POLL_MS = 30_000;
const MINUTE = 60_000;

/**
 * The live counters (docs/console.md, "Live counters"): open while the server streams them; closed (and
 * the page back to asking every 2 s) when the stream ends or fails.
 */
function useLiveCounts(): { open: boolean; counts: LiveCountsFrame[]; readUpTo: (now: number) => void } {
  const [open, setOpen] = useState(false);
  const [counts, setCounts] = useState<LiveCountsFrame[]>([]);
  useEffect(() => {
    if (typeof EventSource === 'undefined') return;
    const es = new EventSource('/admin/v1/events/live');
    es.addEventListener('hello', () => setOpen(true));
    es.addEventListener('counts', (e) => {
      const d = JSON.parse((e as MessageEvent<string>).data) as LiveCountsFrame;
      setCounts((c) => [...c.slice(-1000), d]);
    });
    es.addEventListener('end', () => {
      setOpen(false);
      es.close();
    });
    // EventSource reconnects by itself; until it does, the page asks every 2 s.
    es.onerror = () => setOpen(false);
    return () => es.close();
  }, []);
  return { open, counts, readUpTo: (now) => setCounts((c) => c.filter((x) => x.at > now)) };
}

/** The overview with the counts that arrived since it was read added to its minutes. */
function withLive(o: AdminOverview, counts: LiveCountsFrame[]): AdminOverview {
  if (counts.length === 0) return o;
  const issued = [...o.issued];
  const refused = [...o.refused];
  let revoked = 0;
  const from = o.minutes[0] ?? 0;
  for (const c of counts) {
    if (c.at <= o.now) continue;
    const i = Math.min(Math.floor((c.at - from) / MINUTE), issued.length - 1);
    if (i >= 0) {
      issued[i]! += c.issued;
      refused[i]! += c.refused;
    }
    revoked += c.revoked;
  }
  return {
    ...o,
    issued,
    refused,
    revocations: { total: o.revocations.total + revoked, in_window: o.revocations.in_window + revoked },
  };
}

export function OverviewView() {
  const live = useLiveCounts();
  const r = useResource(
    () => api<AdminOverview>('GET', '/admin/v1/overview'),
    [],
    live.open ? LIVE_POLL_MS : POLL_MS,
  );
  // A fresh overview holds everything up to its `now`: the counts of older frames are in it.
  useEffect(() => {
    if (r.data) live.readUpTo(r.data.now);
  }, [r.data]);
  // Counts alone do not name tokens: a frame that says tokens were issued or revoked has the lists
  // (recent tokens, active count) read again, at most once per POLL_MS.
  const lastRead = useRef(0);
  useEffect(() => {
    const changed = live.counts.some((c) => c.issued > 0 || c.revoked > 0);
    if (!changed || Date.now() - lastRead.current < POLL_MS) return;
    lastRead.current = Date.now();
    r.reload();
  }, [live.counts]);
  const o = r.data && withLive(r.data, live.counts);
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
        <p class="muted" data-live={live.open ? 'open' : 'polling'}>
          {live.open ? 'Live: counts arrive as they happen.' : 'Asking every 2 seconds.'}
        </p>
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
