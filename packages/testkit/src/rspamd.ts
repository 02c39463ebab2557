import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { freePort } from './ports.js';

/** GTUBE (https://spamassassin.apache.org/gtube/): every spam engine's test string; rspamd answers `reject`. */
export const gtube = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/**
 * rspamd's own test variant (answered only with `enable_test_patterns`, which the test rspamd
 * sets): action `add header` at that action's score. Moat's built-in rules do not know it, so
 * it shows rspamd's part of a combined score on its own.
 */
export const gtubeAddHeader = 'YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

export interface TestRspamd {
  /** The normal worker's port: `http://127.0.0.1:<port>/checkv2`. */
  port: number;
  url: string;
  stop(): Promise<void>;
}

const rspamdPath = ['/usr/bin/rspamd', '/usr/sbin/rspamd'].find((p) => existsSync(p));

/**
 * Modules switched off in the test rspamd: each asks DNS (there is none here, so they would add
 * points for "no reverse DNS", "HELO does not resolve", … to every message) or a network service.
 * Modules that need Redis switch themselves off, as no Redis is configured.
 */
const offlineModules = ['hfilter', 'rbl', 'surbl', 'spf', 'dkim', 'dmarc', 'arc', 'asn', 'fuzzy_check', 'mx_check', 'emails', 'whitelist', 'dkim_signing', 'phishing', 'rspamd_update'];

/**
 * Compiled Hyperscan databases, kept between runs: compiling them is most of rspamd's start-up
 * time (about 30 s on a busy 2-core machine, a few seconds with the cache). Safe to share: files
 * are named by the hash of what they compile.
 */
const hyperscanCache = join(tmpdir(), 'moat-rspamd-hs-cache');

/**
 * A real rspamd (Debian's package) on a free loopback port, with a configuration of its own: the
 * stock rules and modules (Debian's /etc/rspamd/common.conf), a single normal worker (the one
 * that answers /checkv2 and /ping), no controller or proxy, no Redis, DNS pointed at a closed
 * loopback port so lookups fail at once instead of waiting for a resolver that cannot be reached,
 * and GTUBE on (it always is; the test variants too). Run as root, rspamd refuses to keep its
 * privileges: it is started with -u/-g _rspamd and its directories belong to that user.
 */
export async function startRspamd(): Promise<TestRspamd> {
  if (!rspamdPath) throw new Error('rspamd not found: install Debian rspamd (apt-get install rspamd); .ci/run does');
  const dir = mkdtempSync(join(tmpdir(), 'moat-rspamd-'));
  const local = join(dir, 'local');
  mkdirSync(join(local, 'local.d'), { recursive: true });
  mkdirSync(hyperscanCache, { recursive: true });
  const [port, deadDnsPort] = [await freePort(), await freePort()];
  for (const module of offlineModules) writeFileSync(join(local, 'local.d', `${module}.conf`), 'enabled = false;\n');
  writeFileSync(
    join(dir, 'rspamd.conf'),
    `.include "$CONFDIR/common.conf"
options {
  pidfile = "${dir}/rspamd.pid";
  filters = "chartable,regexp";
  url_tld = "\${SHAREDIR}/effective_tld_names.dat";
  hs_cache_dir = "${hyperscanCache}/";
  cache_file = "${dir}/symbols.cache";
  control_socket = "${dir}/rspamd.sock mode=0600";
  tempdir = "${dir}";
  explicit_modules = ["settings"];
  allow_raw_input = true;
  enable_test_patterns = true;
  task_timeout = 8s;
  local_addrs = [];
  dns {
    nameserver = ["127.0.0.1:${deadDnsPort}"];
    timeout = 0.1s;
    retransmits = 0;
    sockets = 1;
  }
}
logging {
  type = "file";
  filename = "${dir}/rspamd.log";
  level = "warning";
}
worker "normal" {
  bind_socket = "127.0.0.1:${port}";
  count = 1;
  mime = true;
  task_timeout = 8s;
}
`,
  );
  const args = ['-f', '-c', join(dir, 'rspamd.conf'), '--var', `DBDIR=${dir}`, '--var', `RUNDIR=${dir}`, '--var', `LOGDIR=${dir}`, '--var', `LOCAL_CONFDIR=${local}`];
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', '_rspamd']).toString());
    const gid = Number(execFileSync('id', ['-g', '_rspamd']).toString());
    for (const path of [dir, local, join(local, 'local.d'), hyperscanCache, ...readdirSync(hyperscanCache).map((f) => join(hyperscanCache, f))]) chownSync(path, uid, gid);
    args.push('-u', '_rspamd', '-g', '_rspamd');
  }
  const url = `http://127.0.0.1:${port}`;
  const daemon = await startDaemon({ name: 'rspamd', command: rspamdPath, args, dir, ready: () => pong(url), timeoutMs: 120_000 });
  return { port, url, stop: () => daemon.stop() };
}

/** rspamd's workers answer GET /ping with `pong` once they serve requests. */
function pong(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(`${url}/ping`, { timeout: 1_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'pong'));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}
