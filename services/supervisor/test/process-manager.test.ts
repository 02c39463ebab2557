import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PrefixedOutput } from '../src/output.js';
import { ProcessManager, type ManagerEvent, type ProcessSpec } from '../src/process-manager.js';

function harness(specs: ProcessSpec[], over: { stopTimeoutMs?: number; maxFastCrashes?: number } = {}) {
  let text = '';
  const events: ManagerEvent[] = [];
  const waiters: { match: (e: ManagerEvent) => boolean; resolve: () => void }[] = [];
  const sink = { write: (t: string) => (text += t) };
  const names = specs.map((s) => s.name);
  const manager = new ProcessManager(specs, {
    restart: { minDelayMs: 20, maxDelayMs: 100, stableAfterMs: 5_000, maxFastCrashes: over.maxFastCrashes ?? 3 },
    stopTimeoutMs: over.stopTimeoutMs ?? 5_000,
    stdout: new PrefixedOutput(sink, names, 'raw'),
    stderr: new PrefixedOutput(sink, names, 'raw'),
    onEvent: (e) => {
      events.push(e);
      for (const w of [...waiters]) if (w.match(e)) w.resolve();
    },
  });
  const until = (match: (e: ManagerEvent) => boolean) =>
    events.some(match) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ match, resolve }));
  return { manager, events, until, text: () => text };
}

const node = (name: string, script: string): ProcessSpec => ({ name, command: process.execPath, args: ['-e', script], env: { PATH: process.env.PATH ?? '' } });

describe('ProcessManager', () => {
  it('when a process crashes once, then it is restarted and its new output is prefixed too', async () => {
    // First run crashes; the restarted run (RESTARTED marker file absent → present) stays up.
    const marker = join(tmpdir(), `moat-pm-${process.pid}-${Date.now()}`);
    const script = `const fs=require('fs');if(!fs.existsSync('${marker}')){fs.writeFileSync('${marker}','');console.log('first run');process.exit(3)}console.log('second run');setInterval(()=>{},1000);process.on('SIGTERM',()=>{console.log('bye');process.exit(0)})`;
    const h = harness([node('worker', script), node('idle', `console.log('idle up');setInterval(()=>{},1000);process.on('SIGTERM',()=>process.exit(0))`)]);
    h.manager.start();
    await h.until((e) => e.type === 'started' && e.name === 'worker' && e.restarts === 1);
    await new Promise((r) => setTimeout(r, 300));
    const result = await h.manager.stop();
    expect(result.killed).toEqual([]);
    expect(h.events.find((e) => e.type === 'restarting')).toMatchObject({ name: 'worker', exit: { code: 3 }, delayMs: 20, fastCrashes: 1 });
    expect(h.text()).toContain('worker | first run\n');
    expect(h.text()).toContain('worker | second run\n');
    expect(h.text()).toContain('idle   | idle up\n');
    expect(h.text()).toContain('worker | bye\n');
    expect(h.manager.running()).toEqual([]);
    rmSync(marker, { force: true });
  });

  it('when the command cannot be started, then it is reported and retried until the manager gives up', async () => {
    const h = harness([{ name: 'ghost', command: '/nonexistent/binary', args: [], env: {} }], { maxFastCrashes: 2 });
    h.manager.start();
    await h.until((e) => e.type === 'gave-up');
    expect(h.events.filter((e) => e.type === 'spawn-failed')).toHaveLength(2);
    expect(h.events.at(-1)).toMatchObject({ type: 'gave-up', name: 'ghost', reason: 'crashed 2 times in a row, each within 5s of starting' });
    await h.manager.stop();
  });

  it('when stop() runs while a restart is pending, then the process is not started again', async () => {
    const h = harness([node('flaky', 'process.exit(1)')]);
    h.manager.start();
    await h.until((e) => e.type === 'restarting');
    await h.manager.stop();
    await new Promise((r) => setTimeout(r, 100));
    expect(h.events.filter((e) => e.type === 'started')).toHaveLength(1);
  });

  it('when a process ignores SIGTERM, then stop() kills it after the bound', async () => {
    const h = harness([node('stubborn', `process.on('SIGTERM',()=>console.log('no'));console.log('up');setInterval(()=>{},1000)`)], { stopTimeoutMs: 300 });
    h.manager.start();
    await h.until((e) => e.type === 'started');
    await new Promise((r) => setTimeout(r, 300));
    const result = await h.manager.stop();
    expect(result.killed).toEqual(['stubborn']);
    expect(h.events.find((e) => e.type === 'exited')).toMatchObject({ duringStop: true, exit: { signal: 'SIGKILL' } });
  });
});
