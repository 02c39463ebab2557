/**
 * A private Postfix instance for `pnpm bench --vs-postfix`: Debian's Postfix, configured as the
 * relay people run in front of a mail server today, delivering to the benchmark's sink.
 *
 * Everything lives under one directory of its own (config, queue, data, log); the system
 * instance (/etc/postfix, port 25) is never configured, started or stopped. The master daemon
 * has to start as root (it binds its listener and drops to the `postfix` user), so the
 * comparison needs root — `sudo npm run bench -- --vs-postfix`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const postfixBinary = '/usr/sbin/postfix';
const policyRcD = '/usr/sbin/policy-rc.d';

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const res = spawnSync(command, args, { env, encoding: 'utf8' });
  if (res.error) throw new Error(`${command} ${args.join(' ')}: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${res.status}:\n${res.stdout}${res.stderr}`);
  return res.stdout + res.stderr;
}

function listening(port: number): boolean {
  // `ss` prints one line per listening socket; the header alone means nothing listens.
  const out = spawnSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  return out.status === 0 && out.stdout.trim() !== '';
}

/**
 * Installs Debian's postfix package when /usr/sbin/postfix is missing, without ever running the
 * system instance: debconf is preseeded with "No configuration" (no /etc/postfix/main.cf, so
 * nothing listens on port 25), a policy-rc.d answering 101 ("action forbidden") stops the
 * package scripts from starting the service, and the service is disabled afterwards. An
 * existing policy-rc.d is put back as it was.
 */
export function ensurePostfixInstalled(say: (line: string) => void): void {
  if (process.getuid?.() !== 0) {
    throw new Error('--vs-postfix needs root: Postfix\'s master daemon starts as root (and the first run installs the postfix package); run `sudo npm run bench -- --vs-postfix`');
  }
  if (existsSync(postfixBinary)) return;
  say('installing Debian postfix for the comparison (No configuration; the system instance is not started)');
  const preseed = spawnSync('debconf-set-selections', { input: 'postfix postfix/main_mailer_type select No configuration\n', encoding: 'utf8' });
  if (preseed.status !== 0) throw new Error(`debconf-set-selections failed: ${preseed.stderr}`);
  const backup = existsSync(policyRcD) ? `${policyRcD}.moat-bench-${process.pid}` : null;
  if (backup) renameSync(policyRcD, backup);
  try {
    writeFileSync(policyRcD, '#!/bin/sh\n# Written by the Moat benchmark while it installs postfix: start no service.\nexit 101\n');
    chmodSync(policyRcD, 0o755);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'postfix'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    let res = install();
    if (res.status !== 0 && /Unable to locate package|has no installation candidate/.test(res.stderr)) {
      run('apt-get', ['update'], env);
      res = install();
    }
    if (res.status !== 0) throw new Error(`apt-get install postfix failed:\n${res.stdout.slice(-2000)}${res.stderr.slice(-2000)}`);
  } finally {
    unlinkSync(policyRcD);
    if (backup) renameSync(backup, policyRcD);
  }
  // Not started at boot either (systemd and sysvinit links); failures here mean there was
  // nothing to disable.
  spawnSync('systemctl', ['disable', 'postfix.service'], { stdio: 'ignore' });
  spawnSync('update-rc.d', ['postfix', 'disable'], { stdio: 'ignore' });
  if (listening(25)) throw new Error('something listens on port 25 after installing postfix: check the system instance before benchmarking');
}

export interface PostfixOptions {
  /** Directory of the instance (created, removed on stop); on a real disk so fsync means something. */
  dir: string;
  /** Loopback port of its smtpd. */
  port: number;
  /** The one domain it relays, and where it sends it. */
  relayDomain: string;
  sinkPort: number;
}

/**
 * main.cf of the relay. Every line that differs from Postfix 3.7's defaults is here, with why.
 * Throughput settings (process limits, concurrency, in_flow_delay, max_use) are the defaults.
 */
export function mainCf(o: PostfixOptions): string {
  return `# Private Postfix instance of the Moat benchmark (bench/postfix.ts). Non-defaults only.
compatibility_level = 3.6
config_directory = ${join(o.dir, 'etc')}
queue_directory = ${join(o.dir, 'queue')}
data_directory = ${join(o.dir, 'data')}
# The package's list of its own files (post-install reads it to create the queue directories).
meta_directory = /etc/postfix
# Postfix logs every message, as in production; here to a file of its own (no syslog needed).
maillog_file = ${join(o.dir, 'log', 'postfix.log')}
maillog_file_prefixes = ${o.dir}
myhostname = relay.postfix-bench.test
mydomain = postfix-bench.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# A relay: no local delivery at all, one relayed domain sent to its server by a static route.
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled on this relay
alias_maps =
alias_database =
relay_domains = ${o.relayDomain}
transport_maps = inline:{${o.relayDomain}=smtp:[127.0.0.1]:${o.sinkPort}}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# No DNS: the route is an address, and Moat's benchmark runs with static DNS and no reverse lookups too.
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
`;
}

/**
 * master.cf: Debian's default services without chroot (column 5 "n": the instance has no
 * chroot tree), smtpd on the loopback high port instead of port 25, and no local, virtual,
 * lmtp, pipe or pickup services (nothing is delivered locally or submitted by sendmail).
 */
export function masterCf(o: PostfixOptions): string {
  return `# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:${o.port} inet n       -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

export class PostfixInstance {
  readonly configDir: string;
  readonly queueDir: string;
  private started = false;

  constructor(readonly options: PostfixOptions) {
    this.configDir = join(options.dir, 'etc');
    this.queueDir = join(options.dir, 'queue');
  }

  /** Writes the configuration, lets `postfix check` create the queue, and starts the master. */
  start(): void {
    const o = this.options;
    // data_directory is left to `postfix check`, which creates it owned by the postfix user.
    for (const d of ['etc', 'queue', 'log']) mkdirSync(join(o.dir, d), { recursive: true });
    // Daemons reach data_directory as the postfix user by its absolute path.
    chmodSync(o.dir, 0o755);
    writeFileSync(join(this.configDir, 'main.cf'), mainCf(o));
    writeFileSync(join(this.configDir, 'master.cf'), masterCf(o));
    // `postfix check` runs post-install create-missing: queue directories owned by postfix,
    // maildrop and public by group postdrop, data_directory by postfix.
    run(postfixBinary, ['-c', this.configDir, 'check']);
    run(postfixBinary, ['-c', this.configDir, 'start']);
    this.started = true;
  }

  /** The non-default settings as Postfix itself reads them (for the record). */
  settings(): string {
    return execFileSync('postconf', ['-c', this.configDir, '-n']).toString();
  }

  masterPid(): number | null {
    try {
      return Number(readFileSync(join(this.queueDir, 'pid', 'master.pid'), 'utf8').trim()) || null;
    } catch {
      return null;
    }
  }

  /** Messages still in its queue (incoming, active, deferred, hold), counted from the disk. */
  queued(): number {
    let n = 0;
    for (const q of ['incoming', 'active', 'deferred', 'hold']) {
      const out = spawnSync('find', [join(this.queueDir, q), '-type', 'f'], { encoding: 'utf8' });
      n += out.stdout.split('\n').filter(Boolean).length;
    }
    return n;
  }

  logTail(lines = 30): string {
    return spawnSync('tail', ['-n', String(lines), join(this.options.dir, 'log', 'postfix.log')], { encoding: 'utf8' }).stdout ?? '';
  }

  /** Warning, error and fatal lines of its log: a misconfigured relay shows here, not as a slow one. */
  problems(): string[] {
    // grep, not a read: the log of a long run is a few hundred MB.
    const res = spawnSync('grep', ['-E', ': (warning|error|fatal|panic):', join(this.options.dir, 'log', 'postfix.log')], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return (res.stdout ?? '').split('\n').filter(Boolean);
  }

  /** Stops the master and its processes, then removes the instance's directory. */
  stop(): void {
    if (this.started) {
      const master = this.masterPid();
      spawnSync(postfixBinary, ['-c', this.configDir, 'stop'], { stdio: 'ignore' });
      // `postfix stop` signals the master and returns; its queue files stay open until it is gone.
      const deadline = Date.now() + 10_000;
      while (master && existsSync(`/proc/${master}`) && Date.now() < deadline) spawnSync('sleep', ['0.1']);
      this.started = false;
    }
    rmSync(this.options.dir, { recursive: true, force: true });
  }
}
