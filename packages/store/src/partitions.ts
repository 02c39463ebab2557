import type { Pool } from '@moat/runtime';

/** Tables partitioned by day; each has a DEFAULT partition as a safety net. */
export const dailyPartitioned = ['messages', 'message_events'] as const;
export type DailyTable = (typeof dailyPartitioned)[number];

export function partitionName(table: DailyTable, day: Date): string {
  return `${table}_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`;
}

function startOfUtcDay(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
}

/**
 * Creates the daily partitions from `daysBack` ago to `daysAhead` from now. Idempotent and safe
 * to run from several processes: a concurrent creator or rows already in the default partition
 * for that day make the create fail, which is harmless (the default partition keeps them).
 */
export async function ensureDailyPartitions(pool: Pool, now = new Date(), daysBack = 1, daysAhead = 3): Promise<void> {
  const today = startOfUtcDay(now);
  for (const table of dailyPartitioned) {
    for (let offset = -daysBack; offset <= daysAhead; offset++) {
      const from = new Date(today.getTime() + offset * 86_400_000);
      const to = new Date(from.getTime() + 86_400_000);
      const name = partitionName(table, from);
      const exists = await pool.query('SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND n.nspname = current_schema()', [name]);
      if (exists.rowCount) continue;
      const created = await pool
        .query(`CREATE TABLE IF NOT EXISTS ${name} PARTITION OF ${table} FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`)
        .then(() => true)
        .catch(() => false);
      // Ciphertext never compresses: store bodies without the pglz attempt (see migration 1732700005000).
      if (created && table === 'messages') await pool.query(`ALTER TABLE ${name} ALTER COLUMN body SET STORAGE EXTERNAL`).catch(() => {});
    }
  }
}
