import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';

export interface Daemon {
  /** Ends the daemon (SIGTERM, then SIGKILL to its process group after 5 s) and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Runs a daemon in the foreground in a process group of its own (so a forced stop also ends the
 * workers it forked: rspamd, spamd), waits until `ready()` says it answers, and stops it cleanly.
 * A daemon that exits or does not answer within the bound is killed and reported with the end
 * of its output, which is usually the reason (a config error).
 */
export async function startDaemon(opts: { name: string; command: string; args: string[]; dir: string; ready: () => Promise<boolean>; timeoutMs: number }): Promise<Daemon> {
  const child = spawn(opts.command, opts.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (c: Buffer) => {
    output = (output + c.toString('utf8')).slice(-4_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // Already gone.
    }
  };
  const stop = async () => {
    killGroup('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    killGroup('SIGKILL');
    rmSync(opts.dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await opts.ready()) break;
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`${opts.name} did not become ready (${child.exitCode !== null ? `exited with ${child.exitCode}` : 'timed out'}): ${output.trim().slice(-1_500)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { stop };
}
