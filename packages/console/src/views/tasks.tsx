import { useState } from 'preact/hooks';
import { admin, api, query } from '../api.js';
import { ActionButton, Badge, ErrorNote, POLL_MS, Section, Table, useResource, when } from '../components.js';
import { href, type Route } from '../route.js';

interface Task {
  id: string;
  workload: string;
  purpose: string;
  labels: Record<string, string>;
  opened_by: string;
  opened_at: number;
  deadline: number;
  state: 'open' | 'closed';
  close_reason: string | null;
}

export function TasksView({ route }: { route: Route }) {
  const workload = route.params.get('workload') ?? '';
  const [state, setState] = useState('');
  const r = useResource(
    () => api<{ tasks: Task[] }>('GET', `/admin/v1/tasks${query({ workload, state, limit: 200 })}`),
    [workload, state],
    POLL_MS,
  );
  const selected = route.params.get('task');
  return (
    <div class="grid">
      <ErrorNote error={r.error} />
      <label class="field inline">
        <span>State</span>
        <select value={state} onChange={(e) => setState((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">any</option>
          <option value="open">open</option>
          <option value="closed">closed</option>
        </select>
      </label>
      <Section title={workload ? `Tasks of ${workload}` : 'Tasks'}>
        <Table
          label="tasks"
          rows={r.data?.tasks}
          rowKey={(t) => t.id}
          empty="No tasks."
          columns={[
            { label: 'Task', cell: (t) => <a href={href('tasks', { task: t.id })}>{t.id}</a> },
            { label: 'Workload', cell: (t) => t.workload },
            { label: 'Purpose', cell: (t) => t.purpose },
            {
              label: 'Labels',
              cell: (t) =>
                Object.entries(t.labels)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' '),
            },
            { label: 'Opened', cell: (t) => when(t.opened_at) },
            {
              label: 'State',
              cell: (t) => <Badge text={t.state} tone={t.state === 'open' ? 'ok' : undefined} />,
            },
            {
              label: 'Act',
              cell: (t) =>
                t.state === 'open' ? (
                  <ActionButton
                    label="Close"
                    confirm="Close the task and revoke its tokens?"
                    run={() =>
                      api('POST', admin`/tasks/${t.id}/close`, { reason: 'closed from the console' })
                    }
                    onDone={r.reload}
                  />
                ) : (
                  (t.close_reason ?? '')
                ),
            },
          ]}
        />
      </Section>
      {selected && (
        <p>
          <a href={href('trace', { task: selected })}>Tokens of task {selected}</a>
        </p>
      )}
    </div>
  );
}
