import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

/** How often live views ask again. */
export const POLL_MS = 2000;

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  reload: () => void;
}

/**
 * Loads `load()` now, again whenever `deps` change, and every `every` ms when given (live views).
 * An answer that arrives after a newer request started is dropped.
 */
export function useResource<T>(load: () => Promise<T>, deps: unknown[], every?: number): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    load().then(
      (d) => {
        if (mine !== generation.current) return;
        setData(d);
        setError(undefined);
      },
      (e: Error) => {
        if (mine === generation.current) setError(e);
      },
    );
  }, deps);
  useEffect(() => {
    run();
    if (every === undefined) return;
    const t = setInterval(run, every);
    return () => clearInterval(t);
  }, [run, every]);
  return { data, error, reload: run };
}

export function ErrorNote({ error }: { error: Error | undefined }) {
  if (!error) return null;
  const text =
    error instanceof ApiError
      ? `${error.error}: ${error.description || `HTTP ${error.status}`}`
      : error.message;
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

export const when = (ms: number | null | undefined): string =>
  ms === null || ms === undefined || !Number.isFinite(ms)
    ? '—'
    : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

/** Seconds since the epoch (JWT claims) as a time. */
export const whenSeconds = (s: number | null | undefined): string =>
  when(s === null || s === undefined ? s : s * 1000);

export function Section({
  title,
  children,
  actions,
}: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  return (
    <section class="card" aria-label={title}>
      <header class="card-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

export interface Column<T> {
  label: string;
  cell: (row: T) => ComponentChildren;
}

/** A table of rows; every cell is rendered as Preact children, so text stays text. */
export function Table<T>({
  rows,
  columns,
  empty,
  label,
  rowKey,
}: {
  rows: T[] | undefined;
  columns: Column<T>[];
  empty: string;
  label: string;
  rowKey: (row: T, i: number) => string;
}) {
  if (rows === undefined) return <p class="muted">Loading…</p>;
  if (rows.length === 0) return <p class="muted">{empty}</p>;
  return (
    <div class="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.label} scope="col">
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={rowKey(r, i)}>
              {columns.map((c) => (
                <td key={c.label}>{c.cell(r)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * A button that runs an action once confirmed: the first press asks (with `confirm` as the question),
 * the second does it. The result or the refusal is shown beside it.
 */
export function ActionButton({
  label,
  confirm,
  run,
  onDone,
  kind = 'normal',
}: {
  label: string;
  confirm?: string;
  run: () => Promise<unknown>;
  onDone?: () => void;
  kind?: 'normal' | 'danger';
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const go = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await run();
      setAsking(false);
      onDone?.();
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      {asking && confirm ? (
        <fieldset class="confirm" aria-label={`confirm ${label}`}>
          <span>{confirm}</span>
          <button type="button" class={kind} disabled={busy} onClick={go}>
            Confirm {label.toLowerCase()}
          </button>
          <button type="button" disabled={busy} onClick={() => setAsking(false)}>
            Cancel
          </button>
        </fieldset>
      ) : (
        <button type="button" class={kind} disabled={busy} onClick={() => (confirm ? setAsking(true) : go())}>
          {label}
        </button>
      )}
      <ErrorNote error={error} />
    </span>
  );
}

/** A labelled text input. */
export function Field({
  label,
  value,
  onInput,
  placeholder,
}: {
  label: string;
  value: string;
  onInput: (v: string) => void;
  placeholder?: string;
}) {
  return (
    <label class="field">
      <span>{label}</span>
      <input
        type="text"
        value={value}
        placeholder={placeholder}
        onInput={(e) => onInput((e.currentTarget as HTMLInputElement).value)}
      />
    </label>
  );
}

export function Badge({ text, tone }: { text: string; tone?: 'ok' | 'warn' | 'bad' | undefined }) {
  return <span class={`badge ${tone ?? ''}`}>{text}</span>;
}

/** Pretty-printed JSON as text (evidence, policy context, a govern verify report). */
export function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}
