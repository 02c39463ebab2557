import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcSample {
  pid: number;
  name: string;
  /** Peak resident set size (VmHWM), KiB. */
  peakRssKiB: number;
  /** User + system CPU time, ms. */
  cpuMs: number;
}

const clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** The direct children of a process (the supervisor's services), with their names. */
export function childProcesses(ppid: number): Array<{ pid: number; name: string }> {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(ppid)]).toString();
  } catch {
    return [];
  }
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [pid, ...args] = l.split(/\s+/);
      const cmd = args.join(' ');
      const m = /services\/([a-z]+)\/dist\/main\.js/.exec(cmd);
      return { pid: Number(pid), name: m?.[1] ?? cmd.slice(0, 30) };
    })
    // A process that is exiting shows as "[node]": not a service.
    .filter((p) => !p.name.startsWith('['));
}

export function sample(pid: number, name: string): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { pid, name, peakRssKiB: hwm, cpuMs: ((utime + stime) * 1000) / clockTicks };
  } catch {
    return null;
  }
}

/** Pids of the machine's shared services, to count their CPU too (honest CPU per message). */
export function pidsOf(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern])
      .toString()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** The children of a process named by their command (Postfix's daemons: smtpd, cleanup, qmgr…). */
export function childrenByCommand(ppid: number): Array<{ pid: number; name: string }> {
  try {
    return execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(ppid)])
      .toString()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length === 2)
      .map(([pid, name]) => ({ pid: Number(pid), name: name! }));
  } catch {
    return [];
  }
}

/** CPU ms of a process's children that exited and were waited for (cutime + cstime). */
export function reapedChildrenCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / clockTicks;
  } catch {
    return 0;
  }
}

export interface CpuSnapshot {
  at: number;
  byPid: Map<number, { name: string; cpuMs: number }>;
  /** CPU of the reaper's exited children so far (0 without a reaper). */
  reapedMs: number;
}

/**
 * CPU time and peak memory of one system's processes, by process name. `observe()` runs every
 * few hundred ms during the benchmark: it keeps each process's latest CPU time and its peak RSS.
 * With a reaper (Postfix's master, whose cleanup and smtp processes exit after max_use
 * messages), processes that exit during a run are counted too: their last sample goes to their
 * name, what they used after it (the reaper's cutime/cstime tells) to "exited after last sample".
 */
export class ProcessGroupMeter {
  private seen = new Map<number, { name: string; cpuMs: number; firstAt: number }>();
  /** Peak RSS (KiB) per process name: the largest single process of that name. */
  readonly peakRssKiB = new Map<string, number>();

  constructor(
    private readonly list: () => Array<{ pid: number; name: string }>,
    private readonly reaper?: () => number | null,
  ) {}

  observe(): Map<number, { name: string; cpuMs: number }> {
    const now = performance.now();
    const byPid = new Map<number, { name: string; cpuMs: number }>();
    for (const p of this.list()) {
      const s = sample(p.pid, p.name);
      if (!s) continue;
      byPid.set(p.pid, { name: p.name, cpuMs: s.cpuMs });
      const prev = this.seen.get(p.pid);
      this.seen.set(p.pid, { name: p.name, cpuMs: s.cpuMs, firstAt: prev?.firstAt ?? now });
      if (s.peakRssKiB > (this.peakRssKiB.get(p.name) ?? 0)) this.peakRssKiB.set(p.name, s.peakRssKiB);
    }
    return byPid;
  }

  snapshot(): CpuSnapshot {
    const reaper = this.reaper?.();
    return { at: performance.now(), byPid: this.observe(), reapedMs: reaper ? reapedChildrenCpuMs(reaper) : 0 };
  }

  /** CPU ms per process name between two snapshots. */
  delta(a: CpuSnapshot, b: CpuSnapshot): Record<string, number> {
    const out: Record<string, number> = {};
    const add = (name: string, ms: number) => (out[name] = (out[name] ?? 0) + ms);
    for (const [pid, after] of b.byPid) add(after.name, after.cpuMs - (a.byPid.get(pid)?.cpuMs ?? 0));
    if (this.reaper) {
      let sampledOfExited = 0;
      for (const [pid, s] of this.seen) {
        const exitedDuringRun = !b.byPid.has(pid) && (a.byPid.has(pid) || s.firstAt > a.at);
        if (!exitedDuringRun) continue;
        add(s.name, s.cpuMs - (a.byPid.get(pid)?.cpuMs ?? 0));
        sampledOfExited += s.cpuMs;
      }
      add('exited after last sample', Math.max(0, b.reapedMs - a.reapedMs - sampledOfExited));
    }
    // Forget processes that are gone, so the next run starts clean.
    for (const pid of this.seen.keys()) if (!b.byPid.has(pid)) this.seen.delete(pid);
    return out;
  }
}
