import { execFileSync } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { freePort, pingTcp } from './ports.js';

export interface TestSpamd {
  port: number;
  stop(): Promise<void>;
}

const spamdPath = ['/usr/sbin/spamd', '/usr/bin/spamd'].find((p) => existsSync(p));
/** Debian's SpamAssassin rules (shipped with the package; sa-update would download newer ones). */
const rulesDir = '/usr/share/spamassassin';
/** The .pre files that load SpamAssassin's plugins (its Check plugin among them: without it nothing is scanned). */
const siteDir = '/etc/spamassassin';

/**
 * A real spamd (Debian's spamd and spamassassin) on a free loopback port with a site configuration
 * of its own: Debian's rules and plugin list, local tests only (-L: no DNS blocklists, no network),
 * no Bayes or per-user files (nothing is learnt between runs), one child. Run as root, spamd
 * drops to debian-spamd, which owns the directory.
 */
export async function startSpamd(): Promise<TestSpamd> {
  if (!spamdPath) throw new Error('spamd not found: install Debian spamd and spamassassin (apt-get install spamd spamassassin); .ci/run does');
  const dir = mkdtempSync(join(tmpdir(), 'moat-spamd-'));
  for (const file of readdirSync(siteDir).filter((f) => f.endsWith('.pre'))) copyFileSync(join(siteDir, file), join(dir, file));
  writeFileSync(join(dir, 'local.cf'), ['use_bayes 0', 'bayes_auto_learn 0', 'skip_rbl_checks 1', ''].join('\n'));
  const port = await freePort();
  const args = [
    '-C', rulesDir,
    '--siteconfigpath', dir,
    '-L', '-x',
    '--listen', `127.0.0.1:${port}`,
    '-m', '1', '--min-children', '1', '--min-spare', '1', '--max-spare', '1',
    '-r', join(dir, 'spamd.pid'),
    '-s', 'stderr',
    '-H', dir,
  ];
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'debian-spamd']).toString());
    const gid = Number(execFileSync('id', ['-g', 'debian-spamd']).toString());
    for (const path of [dir, ...readdirSync(dir).map((f) => join(dir, f))]) chownSync(path, uid, gid);
    args.push('-u', 'debian-spamd', '-g', 'debian-spamd');
  }
  const daemon = await startDaemon({ name: 'spamd', command: spamdPath, args, dir, ready: () => pong(port), timeoutMs: 60_000 });
  return { port, stop: () => daemon.stop() };
}

/** spamd answers `PING SPAMC/1.5` with `SPAMD/1.5 0 PONG` once a child serves requests. */
function pong(port: number): Promise<boolean> {
  return pingTcp(port, 'PING SPAMC/1.5\r\n\r\n', (reply) => (reply.includes('\r\n') ? /^SPAMD\/\d+\.\d+ 0 PONG/.test(reply) : null));
}
