import { spawn, type ChildProcess } from 'node:child_process';
import { decideRestart, type ExitInfo, type RestartPolicy } from './backoff.js';
import type { PrefixedOutput } from './output.js';

/** A process to run and keep running. */
export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
}

export type ManagerEvent =
  | { type: 'started'; name: string; pid: number; restarts: number }
  | { type: 'spawn-failed'; name: string; error: string }
  | { type: 'exited'; name: string; exit: ExitInfo; duringStop: boolean }
  | { type: 'restarting'; name: string; exit: ExitInfo; delayMs: number; fastCrashes: number }
  | { type: 'gave-up'; name: string; exit: ExitInfo; reason: string; lastLines: string[] }
  | { type: 'killed'; name: string; pid: number };

export interface ManagerOptions {
  restart: RestartPolicy;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
  stdout: PrefixedOutput;
  stderr: PrefixedOutput;
  onEvent: (event: ManagerEvent) => void;
  /** Lines of each process's output kept for the give-up report. */
  keepLines?: number;
}

export interface StopResult {
  /** Processes that did not exit within the bound and were killed. */
  killed: string[];
}

interface Managed {
  spec: ProcessSpec;
  child: ChildProcess | null;
  startedAt: number;
  restarts: number;
  fastCrashes: number;
  restartTimer: NodeJS.Timeout | null;
  gaveUp: boolean;
  /** Resolves when the current child has exited (or failed to spawn). */
  exited: Promise<void>;
  lastLines: string[];
}

/**
 * Runs each process, restarts the ones that exit with back-off, and stops them all in order.
 *
 * Every child gets a process group of its own (`detached`): a Ctrl-C on the terminal then
 * reaches only the supervisor, which sends one SIGTERM to each service. Otherwise the terminal
 * would deliver SIGINT to every service at the same moment as the supervisor's SIGTERM, and a
 * service's shutdown treats a second signal as "exit now", skipping its drain.
 */
export class ProcessManager {
  private readonly managed: Managed[];
  private stopping = false;
  private readonly keepLines: number;

  constructor(
    specs: readonly ProcessSpec[],
    private readonly opts: ManagerOptions,
  ) {
    const names = new Set<string>();
    for (const spec of specs) {
      if (names.has(spec.name)) throw new Error(`two processes named ${spec.name}`);
      names.add(spec.name);
    }
    this.keepLines = opts.keepLines ?? 30;
    this.managed = specs.map((spec) => ({
      spec,
      child: null,
      startedAt: 0,
      restarts: 0,
      fastCrashes: 0,
      restartTimer: null,
      gaveUp: false,
      exited: Promise.resolve(),
      lastLines: [],
    }));
  }

  start(): void {
    for (const m of this.managed) this.spawn(m);
  }

  /** Names and pids of the processes running now. */
  running(): { name: string; pid: number }[] {
    return this.managed.flatMap((m) => (m.child?.pid !== undefined && m.child.exitCode === null && m.child.signalCode === null ? [{ name: m.spec.name, pid: m.child.pid }] : []));
  }

  /**
   * SIGTERM to every process, wait up to the bound for them to exit (each drains its work),
   * then SIGKILL the stragglers. No restart happens once stop() has begun.
   */
  async stop(): Promise<StopResult> {
    this.stopping = true;
    for (const m of this.managed) this.cancelRestart(m);
    const live = this.managed.filter((m) => m.child !== null);
    for (const m of live) this.signal(m, 'SIGTERM');
    const allExited = Promise.all(live.map((m) => m.exited)).then(() => true);
    const inTime = await Promise.race([allExited, delay(this.opts.stopTimeoutMs).then(() => false)]);
    if (inTime) return { killed: [] };
    const stragglers = live.filter((m) => m.child !== null);
    for (const m of stragglers) {
      const pid = m.child?.pid;
      this.signal(m, 'SIGKILL');
      if (pid !== undefined) this.opts.onEvent({ type: 'killed', name: m.spec.name, pid });
    }
    // SIGKILL cannot be ignored; the bound only guards against a zombie nobody reaps.
    await Promise.race([Promise.all(stragglers.map((m) => m.exited)), delay(5_000)]);
    return { killed: stragglers.map((m) => m.spec.name) };
  }

  /** SIGKILL to every process now (a second Ctrl-C, or the supervisor itself exiting). Synchronous. */
  killAll(): void {
    this.stopping = true;
    for (const m of this.managed) {
      this.cancelRestart(m);
      if (m.child) this.signal(m, 'SIGKILL');
    }
  }

  private spawn(m: Managed): void {
    const { spec } = m;
    let resolveExited!: () => void;
    m.exited = new Promise<void>((resolve) => {
      resolveExited = resolve;
    });
    m.startedAt = Date.now();
    const child = spawn(spec.command, spec.args, {
      env: spec.env,
      cwd: spec.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    m.child = child;
    const remember = (line: string) => {
      m.lastLines.push(line);
      if (m.lastLines.length > this.keepLines) m.lastLines.shift();
    };
    const out = this.opts.stdout.stream(spec.name, remember);
    const err = this.opts.stderr.stream(spec.name, remember);
    child.stdout?.on('data', (chunk: Buffer) => out.write(chunk));
    child.stdout?.on('end', () => out.end());
    child.stderr?.on('data', (chunk: Buffer) => err.write(chunk));
    child.stderr?.on('end', () => err.end());

    let ended = false;
    const onEnd = (exit: ExitInfo) => {
      if (ended) return;
      ended = true;
      if (m.child === child) m.child = null;
      resolveExited();
      this.afterExit(m, exit);
    };
    child.once('spawn', () => {
      if (child.pid !== undefined) this.opts.onEvent({ type: 'started', name: spec.name, pid: child.pid, restarts: m.restarts });
    });
    child.once('error', (error: Error) => {
      // 'error' without a pid: the process never started (missing binary, EACCES). With a pid it
      // is a failed kill() or IPC error, and 'exit' follows on its own.
      if (child.pid === undefined) {
        this.opts.onEvent({ type: 'spawn-failed', name: spec.name, error: error.message });
        onEnd({ code: null, signal: null, uptimeMs: 0 });
      }
    });
    // 'exit' can come before the last lines written to the pipes have been read ("drained",
    // a stack trace): finish on 'close', when stdout and stderr have ended. A grandchild that
    // inherited the pipes could hold them open, so 'close' gets a short grace, not forever.
    child.once('exit', (code, signal) => {
      const exit = { code, signal, uptimeMs: Date.now() - m.startedAt };
      const grace = setTimeout(() => onEnd(exit), 2_000);
      grace.unref();
      child.once('close', () => {
        clearTimeout(grace);
        onEnd(exit);
      });
    });
  }

  private afterExit(m: Managed, exit: ExitInfo): void {
    const name = m.spec.name;
    if (this.stopping) {
      this.opts.onEvent({ type: 'exited', name, exit, duringStop: true });
      return;
    }
    // A service never exits on its own while the stack runs, not even with code 0: every
    // exit here is a crash to recover from.
    this.opts.onEvent({ type: 'exited', name, exit, duringStop: false });
    const decision = decideRestart(exit, m.fastCrashes, this.opts.restart);
    m.fastCrashes = decision.fastCrashes;
    if (decision.action === 'give-up') {
      m.gaveUp = true;
      this.opts.onEvent({ type: 'gave-up', name, exit, reason: decision.reason, lastLines: [...m.lastLines] });
      return;
    }
    this.opts.onEvent({ type: 'restarting', name, exit, delayMs: decision.delayMs, fastCrashes: decision.fastCrashes });
    m.restartTimer = setTimeout(() => {
      m.restartTimer = null;
      if (this.stopping) return;
      m.restarts++;
      this.spawn(m);
    }, decision.delayMs);
  }

  private cancelRestart(m: Managed): void {
    if (m.restartTimer) clearTimeout(m.restartTimer);
    m.restartTimer = null;
  }

  /** Signals the child's whole process group (it is the group leader), else the child alone. */
  private signal(m: Managed, signal: NodeJS.Signals): void {
    const child = m.child;
    if (!child || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // Already gone: its 'exit' event is on the way.
      }
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
}
