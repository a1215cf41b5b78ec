const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses `90`, `90s`, `15m`, `1h`, `2d` into whole seconds; undefined if it is none of those. */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const m = /^(\d{1,9})\s*([smhd]?)$/.exec(input.trim());
  if (!m) return undefined;
  return Number(m[1]) * (UNIT_SECONDS[m[2] || 's'] ?? 1);
}

/** Formats seconds the way a person writes them: 900 → "15m". */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
