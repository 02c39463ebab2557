import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, pingTcp } from './ports.js';

/**
 * The EICAR anti-virus test file (https://www.eicar.org): harmless, and detected by every
 * scanner. Built from parts so that this source file itself is not flagged.
 */
export const eicar = Buffer.from(['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'].join(''), 'latin1');

/** The signature name the test clamd reports for EICAR. */
export const eicarSignature = 'Moat.Test.EICAR.UNOFFICIAL';

export interface TestClamd {
  port: number;
  stop(): Promise<void>;
}

const clamdPath = ['/usr/sbin/clamd', '/usr/bin/clamd'].find((p) => existsSync(p));

/**
 * A real clamd (Debian's clamav-daemon) on a free loopback port with a signature database of
 * its own: one body signature for EICAR, so no downloaded database is needed (freshclam cannot
 * reach the internet here). Mail scanning is on (MIME parts decoded, archives opened) and limits
 * that are exceeded are reported as a finding (Heuristics.Limits.Exceeded), as in production.
 */
export async function startClamd(): Promise<TestClamd> {
  if (!clamdPath) throw new Error('clamd not found: install Debian clamav-daemon (apt-get install clamav-daemon); .ci/run does');
  const dir = mkdtempSync(join(tmpdir(), 'moat-clamd-'));
  const db = join(dir, 'db');
  mkdirSync(db);
  // Extended body signature: name:target type (0, any):offset (*, anywhere):hex.
  writeFileSync(join(db, 'moat-test.ndb'), `Moat.Test.EICAR:0:*:${eicar.toString('hex')}\n`);
  const port = await freePort();
  writeFileSync(
    join(dir, 'clamd.conf'),
    [
      'Foreground yes',
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      `DatabaseDirectory ${db}`,
      `LogFile ${join(dir, 'clamd.log')}`,
      `PidFile ${join(dir, 'clamd.pid')}`,
      `TemporaryDirectory ${dir}`,
      'ScanMail yes',
      'ScanArchive yes',
      'AlertExceedsMax yes',
      'MaxRecursion 10',
      'StreamMaxLength 30M',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(clamdPath, [`--config-file=${join(dir, 'clamd.conf')}`], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (await ping(port)) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`clamd did not answer PING on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** clamd answers `zPING\0` with `PONG\0` once its database is loaded. */
function ping(port: number): Promise<boolean> {
  return pingTcp(port, 'zPING\0', (reply) => (reply.includes('\0') ? reply.startsWith('PONG') : null));
}
