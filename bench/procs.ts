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
