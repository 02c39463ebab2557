/**
 * `npm run bench -- --filter`: the filter's checks, one by one, over a directory of real
 * messages (issue 5: "the filter's throughput (messages per second per core) and latency per
 * check").
 *
 * Each message goes through the checks the filter runs, in this one process, one message at a
 * time, with the same code and inputs as services/filter/src/filter.ts: header extraction, SPF/
 * DKIM/ARC/DMARC (mailauth, answered by a static DNS zone so the figure is the filter's work and
 * not a DNS server's), the built-in spam classifier, the MIME structure check, the virus scan
 * (a real clamd with the test signature database, when Debian's clamd is installed; `--no-clamd`
 * skips it) and the quarantine preview (made, as in the filter, only for the messages the spam
 * check quarantines). Per check: wall-time p50/p99/max. Throughput per core: messages ÷ CPU
 * seconds of this process (plus clamd's, read from /proc, when it scans): the work one core does
 * per message, with the broker and the store left out (the pipeline benchmark counts those).
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { staticResolver } from '@moat/runtime';
import { startClamd, type TestClamd } from '@moat/testkit';
import { authenticateMessage } from '../services/filter/src/auth-checks.js';
import { scanWithClamd } from '../services/filter/src/clamd.js';
import { extractHeaders } from '../services/filter/src/headers.js';
import { mimeStructureCheck } from '../services/filter/src/mime-structure.js';
import { buildPreview } from '../services/filter/src/quarantine-preview.js';
import { messageFiles } from '../services/filter/src/spam/corpus.js';
import { defaultSpamThresholds } from '../services/filter/src/spam/classify.js';
import { loadModel } from '../services/filter/src/spam/model.js';
import { SpamCheck } from '../services/filter/src/spam/spam-check.js';
import { checkForViruses } from '../services/filter/src/virus-check.js';
import { percentile, pidsOf, sample } from './procs.js';

export interface FilterBenchOptions {
  dirs: string[];
  /** At most this many messages (spread over the directories in order). */
  limit: number;
  clamd: boolean;
  /** Passes over the messages; the first is a warm-up and is not counted. */
  passes: number;
}

/** Where messages come from when no `--corpus` is given: the SpamAssassin split if it is there, else the repository's MIME corpus. */
export function defaultCorpusDirs(root: string): string[] {
  const sa = resolve(root, '..', 'shared', 'corpus', 'spamassassin', 'train');
  if (existsSync(join(sa, 'spam')) && existsSync(join(sa, 'ham'))) return [join(sa, 'ham'), join(sa, 'spam')];
  return [join(root, 'tests', 'fixtures', 'corpus', 'mime')];
}

type CheckName = 'headers' | 'auth' | 'mime' | 'spam' | 'virus' | 'preview';

interface Timings {
  byCheck: Record<CheckName, number[]>;
  total: number[];
  cpuMs: number;
  clamdCpuMs: number;
  messages: number;
  errors: Record<CheckName, number>;
}

const silent = pino({ level: 'silent' });

/** Every message file under a directory, recursively (the MIME corpus has sub-directories). */
async function walk(dir: string): Promise<string[]> {
  const out = await messageFiles(dir);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory() && !e.name.startsWith('.')) out.push(...(await walk(join(dir, e.name))));
  }
  return out;
}

/** Up to `limit` messages, the directories interleaved so a capped run still mixes ham and spam. */
async function collect(dirs: string[], limit: number): Promise<string[]> {
  const perDir = await Promise.all(dirs.map(walk));
  const out: string[] = [];
  for (let i = 0; out.length < limit && perDir.some((l) => i < l.length); i++) {
    for (const l of perDir) if (i < l.length && out.length < limit) out.push(l[i]!);
  }
  return out;
}

function clamdCpuMs(): number {
  return pidsOf('clamd --config-file=/tmp/moat-clamd-').reduce((sum, pid) => sum + (sample(pid, 'clamd')?.cpuMs ?? 0), 0);
}

export async function runFilterBench(opts: FilterBenchOptions, say: (line: string) => void): Promise<Record<string, unknown>> {
  const paths = await collect(opts.dirs, opts.limit);
  if (paths.length === 0) throw new Error(`no messages under ${opts.dirs.join(', ')}`);
  const messages = paths.map((p) => readFileSync(p));
  const bytes = messages.reduce((s, m) => s + m.length, 0);
  say(`filter bench: ${messages.length} messages (${(bytes / messages.length / 1024).toFixed(1)} KiB on average) from ${opts.dirs.join(', ')}`);
  const model = loadModel();
  const spam = new SpamCheck(model, defaultSpamThresholds);
  // No records: SPF none, DKIM none/neutral, DMARC none — mailauth still parses, canonicalises
  // and hashes every signature it finds, which is the work that scales with the message.
  const resolver = staticResolver({});
  let clamd: TestClamd | null = null;
  if (opts.clamd) {
    try {
      clamd = await startClamd();
    } catch (err) {
      say(`clamd not started (${(err as Error).message}); the virus check is skipped`);
    }
  }
  const scan = clamd ? (raw: Buffer) => scanWithClamd(raw, { host: '127.0.0.1', port: clamd!.port, timeoutMs: 10_000 }) : null;

  const passOnce = async (record: boolean): Promise<Timings> => {
    const t: Timings = { byCheck: { headers: [], auth: [], mime: [], spam: [], virus: [], preview: [] }, total: [], cpuMs: 0, clamdCpuMs: 0, messages: 0, errors: { headers: 0, auth: 0, mime: 0, spam: 0, virus: 0, preview: 0 } };
    const cpu0 = process.cpuUsage();
    const clamd0 = clamdCpuMs();
    for (const raw of messages) {
      const started = performance.now();
      const time = async <T>(name: CheckName, run: () => Promise<T>): Promise<T | null> => {
        const s = performance.now();
        try {
          return await run();
        } catch {
          t.errors[name]++;
          return null;
        } finally {
          t.byCheck[name].push(performance.now() - s);
        }
      };
      await time('headers', () => extractHeaders(raw));
      const auth = await time('auth', () => authenticateMessage(raw, { ip: '192.0.2.25', helo: 'mail.sender.example', mailFrom: 'someone@sender.example' }, { authservId: 'bench.moat.test', resolver, checkTimeoutMs: 5_000, log: silent }));
      await time('mime', async () => mimeStructureCheck(raw));
      const verdict = await time('spam', () => spam.run(raw, auth?.checks ?? []));
      if (scan) {
        const v = await time('virus', () => checkForViruses(raw, scan));
        if (v?.unavailable) t.errors.virus++;
      }
      // As in the filter: only a quarantined message gets a preview.
      if (verdict?.verdict === 'quarantine') await time('preview', () => buildPreview(raw));
      t.total.push(performance.now() - started);
      t.messages++;
    }
    const cpu = process.cpuUsage(cpu0);
    t.cpuMs = (cpu.user + cpu.system) / 1000;
    t.clamdCpuMs = clamdCpuMs() - clamd0;
    if (record) say(`  pass: ${t.messages} messages, ${t.cpuMs.toFixed(0)} ms CPU in the filter's code${scan ? `, ${t.clamdCpuMs.toFixed(0)} ms in clamd` : ''}`);
    return t;
  };

  try {
    await passOnce(false); // warm-up: JIT, mailauth's and postal-mime's first calls
    const passes: Timings[] = [];
    for (let i = 0; i < Math.max(1, opts.passes); i++) passes.push(await passOnce(true));
    const all = (pick: (t: Timings) => number[]) => passes.flatMap(pick).sort((a, b) => a - b);
    const n = passes.reduce((s, t) => s + t.messages, 0);
    const cpuMs = passes.reduce((s, t) => s + t.cpuMs, 0);
    const clamdMs = passes.reduce((s, t) => s + t.clamdCpuMs, 0);
    const row = (name: string, v: number[]) => ({ check: name, p50: percentile(v, 50), p99: percentile(v, 99), max: v[v.length - 1] ?? NaN, mean: v.reduce((s, x) => s + x, 0) / Math.max(v.length, 1) });
    const checks = (['headers', 'auth', 'mime', 'spam', 'virus', 'preview'] as CheckName[]).filter((c) => passes[0]!.byCheck[c].length > 0).map((c) => row(c === 'preview' ? `preview (${passes[0]!.byCheck.preview.length} quarantined)` : c, all((t) => t.byCheck[c])));
    const total = row('all checks, one message', all((t) => t.total));
    const errors = passes.reduce((acc, t) => { for (const [k, v] of Object.entries(t.errors)) acc[k] = (acc[k] ?? 0) + v; return acc; }, {} as Record<string, number>);
    const perCoreFilter = (n / cpuMs) * 1000;
    const perCoreWithClamd = (n / (cpuMs + clamdMs)) * 1000;
    const fmt = (x: number) => x.toFixed(2).padStart(9);
    say('');
    say(`latency per check, ms (wall, one message at a time; ${n} messages over ${passes.length} passes)`);
    say(`${'check'.padEnd(26)}${'p50'.padStart(9)}${'p99'.padStart(9)}${'max'.padStart(9)}${'mean'.padStart(9)}`);
    for (const r of [...checks, total]) say(`${r.check.padEnd(26)}${fmt(r.p50)}${fmt(r.p99)}${fmt(r.max)}${fmt(r.mean)}`);
    say('');
    say(`CPU per message: ${(cpuMs / n).toFixed(3)} ms in the filter's code${scan ? ` + ${(clamdMs / n).toFixed(3)} ms in clamd` : ''}`);
    say(`throughput per core: ${perCoreFilter.toFixed(0)} msg/s (filter's code)${scan ? `, ${perCoreWithClamd.toFixed(0)} msg/s with clamd's CPU counted` : ''}`);
    say(`errors (a check that threw): ${Object.entries(errors).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    say(`RSS of this process: ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MiB (model ${model.counts.tokens.size} tokens)`);
    return { messages: messages.length, meanBytes: bytes / messages.length, passes: passes.length, checks, total, cpuMsPerMessage: cpuMs / n, clamdCpuMsPerMessage: scan ? clamdMs / n : null, perCoreMsgPerSec: perCoreFilter, perCoreMsgPerSecWithClamd: scan ? perCoreWithClamd : null, errors, rssMiB: process.memoryUsage().rss / 1024 / 1024 };
  } finally {
    await clamd?.stop();
  }
}
