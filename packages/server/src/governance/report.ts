import type { Violation } from './check.js';
import type { GovernanceRule } from './governance-file.js';

/**
 * `writ govern check` output: a table for people, JSON, SARIF 2.1.0 (code scanning) and JUnit XML (CI
 * test reports). Every form names the file, the field and the rule of each violation.
 */

export const REPORT_FORMATS = ['table', 'json', 'sarif', 'junit'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export interface CheckReport {
  rules: readonly GovernanceRule[];
  violations: readonly Violation[];
  /** The `writ` version, for the SARIF tool driver. */
  version: string;
}

export function formatReport(r: CheckReport, format: ReportFormat): string {
  switch (format) {
    case 'table':
      return table(r);
    case 'json':
      return JSON.stringify(
        { summary: summaryOf(r), violations: r.violations.map((v) => ({ ...v, ...locationOf(v) })) },
        null,
        2,
      );
    case 'sarif':
      return JSON.stringify(sarif(r), null, 2);
    case 'junit':
      return junit(r);
  }
}

function summaryOf(r: CheckReport) {
  const errors = r.violations.filter((v) => v.severity === 'error').length;
  return { rules: r.rules.length, errors, warnings: r.violations.length - errors, passed: errors === 0 };
}

/** `file:line` when the line is known. */
function where(v: Violation): string {
  return `${v.file}${v.line !== undefined ? `:${v.line}` : ''}${v.document > 1 ? ` (document ${v.document})` : ''}`;
}

function locationOf(v: Violation): { location: string } {
  return { location: where(v) };
}

function table(r: CheckReport): string {
  const s = summaryOf(r);
  const tail = `${s.errors} error${s.errors === 1 ? '' : 's'}, ${s.warnings} warning${s.warnings === 1 ? '' : 's'} (${s.rules} rule${s.rules === 1 ? '' : 's'} checked)`;
  if (r.violations.length === 0) return `governance: every rule holds; ${tail}`;
  const rows = [
    ['SEVERITY', 'RULE', 'FILE', 'FIELD', 'MESSAGE'],
    ...r.violations.map((v) => [v.severity, v.rule, where(v), v.field || '(document)', v.message]),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((cell, i) => (i < 4 ? cell.padEnd(widths[i]!) : cell)).join('  '));
  return `${lines.join('\n')}\n\ngovernance: ${tail}`;
}

/** SARIF 2.1.0 (OASIS): one run, every rule a reporting descriptor, every violation a result. */
function sarif(r: CheckReport) {
  const index = new Map(r.rules.map((rule, i) => [rule.id, i]));
  return {
    $schema: 'https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'writ govern check',
            version: r.version,
            rules: r.rules.map((rule) => ({
              id: rule.id,
              name: rule.check,
              shortDescription: { text: rule.description ?? `governance rule ${rule.id} (${rule.check})` },
              defaultConfiguration: { level: rule.severity },
              properties: {
                check: rule.check,
                ...(rule.environments ? { environments: rule.environments } : {}),
                ...(rule.sensitivity ? { sensitivity: rule.sensitivity } : {}),
              },
            })),
          },
        },
        columnKind: 'unicodeCodePoints',
        results: r.violations.map((v) => ({
          ruleId: v.rule,
          ...(index.has(v.rule) ? { ruleIndex: index.get(v.rule) } : {}),
          level: v.severity,
          message: { text: `${v.object}: ${v.field ? `${v.field}: ` : ''}${v.message}` },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: v.file.split('\\').join('/') },
                ...(v.line !== undefined ? { region: { startLine: v.line } } : {}),
              },
              logicalLocations: [
                { fullyQualifiedName: `${v.object}${v.field ? `.${v.field}` : ''}`, kind: 'member' },
              ],
            },
          ],
          properties: { field: v.field, object: v.object, document: v.document },
        })),
      },
    ],
  };
}

/** JUnit XML: one test case per rule; a rule broken by an error fails, warnings are its output. */
function junit(r: CheckReport): string {
  const cases = r.rules.map((rule) => {
    const mine = r.violations.filter((v) => v.rule === rule.id);
    const errors = mine.filter((v) => v.severity === 'error');
    const text = mine.map((v) => `${where(v)}: ${v.field || '(document)'}: ${v.message}`).join('\n');
    const name = `${rule.id} (${rule.check})`;
    if (mine.length === 0) return `    <testcase classname="governance" name="${xml(name)}"/>`;
    const body =
      errors.length > 0
        ? `<failure type="${xml(rule.check)}" message="${xml(`${errors.length} violation${errors.length === 1 ? '' : 's'} of ${rule.id}`)}">${xml(text)}</failure>`
        : `<system-out>${xml(text)}</system-out>`;
    return `    <testcase classname="governance" name="${xml(name)}">${body}</testcase>`;
  });
  const failures = r.rules.filter((rule) =>
    r.violations.some((v) => v.rule === rule.id && v.severity === 'error'),
  ).length;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="writ govern check" tests="${r.rules.length}" failures="${failures}">`,
    `  <testsuite name="governance" tests="${r.rules.length}" failures="${failures}" errors="0" skipped="0">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
  ].join('\n');
}

/** XML 1.0 text or attribute: the five entities escaped, characters XML cannot hold dropped. */
function xml(s: string): string {
  return s
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}
