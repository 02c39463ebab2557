import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serviceKinds } from '../src/config.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const supervisorMain = fileURLToPath(new URL('../src/main.ts', import.meta.url));

/** A services directory where every kind's dist/main.js is the fake service. */
export function fakeServicesDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-fake-services-'));
  const fake = fileURLToPath(new URL('./fixtures/fake-service.mjs', import.meta.url));
  for (const kind of serviceKinds) {
    mkdirSync(join(dir, kind, 'dist'), { recursive: true });
    copyFileSync(fake, join(dir, kind, 'dist', 'main.js'));
  }
  // The copies are ES modules: tell node so, as the real services' package.json does.
  copyFileSync(fileURLToPath(new URL('./fixtures/package.json', import.meta.url)), join(dir, 'package.json'));
  return dir;
}

/** A base port with `count` free ports after it, on 127.0.0.1. */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const ok = await Promise.all(Array.from({ length: count }, (_, i) => canBind(base + i)));
    if (ok.every(Boolean)) return base;
  }
  throw new Error('no free port range found');
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface RunningProcess {
  output: () => string;
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill: (signal: NodeJS.Signals) => void;
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>;
}

/** Runs the supervisor from its TypeScript sources (workspace packages via the `source` condition). */
export function runSupervisor(env: Record<string, string>): RunningProcess {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', supervisorMain], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listeners = new Set<() => void>();
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    for (const l of listeners) l();
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return {
    output: () => output,
    exited,
    kill: (signal) => child.kill(signal),
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(output)) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`output did not match ${pattern} within ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
        listeners.add(check);
        void exited.then(() => setTimeout(() => {
          if (listeners.has(check)) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`process exited before output matched ${pattern}:\n${output}`));
          }
        }, 50));
        check();
      }),
  };
}
