import type { Revocation, RevocationPreview } from '@writ/sdk/wire';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ActionButton, ErrorNote, Field, POLL_MS, Section, Table, useResource, when } from '../components.js';

const KINDS = ['jti', 'tid', 'sub', 'client_id', 'cls', 'kid'] as const;

export function RevocationsView() {
  const list = useResource(
    () => api<{ revocations: Revocation[] }>('GET', '/admin/v1/revocations'),
    [],
    POLL_MS,
  );
  const [kind, setKind] = useState<string>('sub');
  const [value, setValue] = useState('');
  const [reason, setReason] = useState('revoked from the console');
  const [preview, setPreview] = useState<RevocationPreview | undefined>(undefined);
  const [previewError, setPreviewError] = useState<Error | undefined>(undefined);
  const predicate = () => ({ kind, value, reason });
  const doPreview = async (e: Event) => {
    e.preventDefault();
    setPreview(undefined);
    setPreviewError(undefined);
    try {
      setPreview(await api<RevocationPreview>('POST', '/admin/v1/revocations/preview', { kind, value }));
    } catch (err) {
      setPreviewError(err as Error);
    }
  };
  return (
    <div class="grid">
      <Section title="Revoke by predicate">
        <form class="search" onSubmit={doPreview} aria-label="revocation predicate">
          <label class="field">
            <span>Kind</span>
            <select
              value={kind}
              onChange={(e) => {
                setKind((e.currentTarget as HTMLSelectElement).value);
                setPreview(undefined);
              }}
            >
              {KINDS.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          </label>
          <Field
            label="Value"
            value={value}
            onInput={(v) => {
              setValue(v);
              setPreview(undefined);
            }}
          />
          <Field label="Reason" value={reason} onInput={setReason} />
          <button type="submit">Preview</button>
        </form>
        <ErrorNote error={previewError} />
        {preview && (
          <div class="preview" aria-live="polite">
            <p>
              This revocation hits <strong>{preview.live_tokens}</strong> live token
              {preview.live_tokens === 1 ? '' : 's'}
              {preview.truncated ? ` (of the newest ${preview.examined} examined)` : ''}.
            </p>
            <ActionButton
              label="Revoke"
              kind="danger"
              confirm={`Revoke every token with ${kind} = ${value}?`}
              run={() => api('POST', '/admin/v1/revocations', predicate())}
              onDone={() => {
                setPreview(undefined);
                list.reload();
              }}
            />
          </div>
        )}
      </Section>
      <Section title="Revocations in force">
        <ErrorNote error={list.error} />
        <Table
          label="revocations"
          rows={list.data?.revocations.slice().reverse()}
          rowKey={(r) => String(r.seq)}
          empty="Nothing is revoked."
          columns={[
            { label: 'Seq', cell: (r) => r.seq },
            { label: 'Kind', cell: (r) => r.kind },
            { label: 'Value', cell: (r) => r.value },
            { label: 'Reason', cell: (r) => r.reason },
            { label: 'Issued before', cell: (r) => r.issued_before ?? '—' },
            { label: 'Created', cell: (r) => when(r.created_at) },
          ]}
        />
      </Section>
    </div>
  );
}
