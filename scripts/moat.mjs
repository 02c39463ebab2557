#!/usr/bin/env node
// The README's commands, for a machine with only Node 20 and npm:
//
//   npm start   → node scripts/moat.mjs start   install, build, migrate, run the stack
//   npm test    → node scripts/moat.mjs test    install, build (typecheck), every test,
//                                               then one closing "N passed, N failed" line
//   npm run bench → node scripts/moat.mjs bench
//   npm run test:chaos → node scripts/moat.mjs chaos   kills and outages under load; 0 lost or exit 1
//   npm run filter:train → node scripts/moat.mjs filter:train   rebuild the default spam model
//   npm run filter:eval  → node scripts/moat.mjs filter:eval    spam accuracy on .eml directories
//
// No dependencies: it runs before anything is installed. pnpm comes from the command itself
// (the pinned version through npx) unless that exact version is already on the PATH.
// Arguments after the command go to the supervisor, vitest or the benchmark
// (`npm test -- services/supervisor`). `--no-install` and `--no-build` skip those steps when
// iterating locally; CI uses neither. `npm test -- --chaos` also runs the chaos suite (CI does).
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const pnpmVersion = '12.4.2';
const root = fileURLToPath(new URL('..', import.meta.url));

/** `moat: …` lines, so the script's own steps stand out from the tools' output. */
function say(text) {
  process.stderr.write(`moat: ${text}\n`);
}

/** Runs a command with inherited stdio; resolves with its exit code (128+n for a signal). */
function run(command, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: 'inherit', ...opts });
    const forward = (signal) => child.kill(signal);
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    // The child decides how to stop (the supervisor drains the services); this script only
    // passes the signal on and waits. A Ctrl-C reaches the child from the terminal as well:
    // the supervisor counts a repeat within a second as the same request.
    for (const s of signals) process.on(s, forward);
    child.once('error', (err) => {
      say(`cannot run ${command}: ${err.message}`);
      for (const s of signals) process.off(s, forward);
      resolve(127);
    });
    child.once('exit', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      resolve(code ?? 128 + (signal ? signalNumber(signal) : 0));
    });
  });
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal] ?? 0;
}

/** Output of a short command, or null when it cannot run. */
function capture(command, args) {
  return new Promise((resolve) => {
    let out = '';
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.on('data', (c) => (out += c));
    child.once('error', () => resolve(null));
    child.once('exit', (code) => resolve(code === 0 ? out.trim() : null));
  });
}

/** pnpm at the pinned version: the one on the PATH if it is exactly that, else through npx. */
async function pnpmCommand() {
  if ((await capture('pnpm', ['--version'])) === pnpmVersion) return ['pnpm', []];
  return ['npx', ['--yes', `pnpm@${pnpmVersion}`]];
}

async function install() {
  const [command, prefix] = await pnpmCommand();
  say(`installing dependencies (pnpm ${pnpmVersion}, frozen lockfile)`);
  return run(command, [...prefix, 'install', '--frozen-lockfile']);
}

async function build() {
  say('building (tsc -b tsconfig.build.json)');
  return run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', 'tsconfig.build.json']);
}

/** Tests and the benchmark are not part of the build: typecheck them on their own (no output). */
async function typecheckTests() {
  say('typechecking tests (tsc -p tsconfig.test.json)');
  return run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.test.json']);
}

/** Install and build unless skipped; returns a non-zero code when a step failed. */
async function prepare(flags) {
  if (!flags.noInstall) {
    const code = await install();
    if (code !== 0) {
      say(`install failed (exit ${code})`);
      return code;
    }
  }
  if (!flags.noBuild) {
    const code = await build();
    if (code !== 0) {
      say(`build failed (exit ${code}): fix the type errors above`);
      return code;
    }
  }
  return 0;
}

/**
 * The closing counts from vitest's JSON report. A test file that failed outside any test (an
 * import error, a failing hook) has no failed test in it but is a failure all the same: it
 * counts as one.
 */
export function summarize(report) {
  const passed = report.numPassedTests ?? 0;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  const files = Array.isArray(report.testResults) ? report.testResults : [];
  const failedOutsideTests = files.filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
  const failed = (report.numFailedTests ?? 0) + failedOutsideTests;
  return { passed, failed, skipped };
}

/** The line CI reads: `N passed, N failed` (`, N skipped` when some were). */
export function summaryLine({ passed, failed, skipped }) {
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
}

/** The exit code of a test run: non-zero on any failure, and when no test ran at all. */
export function testExitCode(counts, vitestCode) {
  if (vitestCode !== 0 || counts.failed > 0) return vitestCode !== 0 ? vitestCode : 1;
  if (counts.passed + counts.failed === 0) return 1;
  return 0;
}

async function test(args, flags) {
  let prepared = await prepare(flags);
  if (prepared === 0 && !flags.noBuild) prepared = await typecheckTests();
  if (prepared !== 0) {
    process.stdout.write(`\n${summaryLine({ passed: 0, failed: 1, skipped: 0 })}\n`);
    return prepared;
  }
  const reportFile = join(tmpdir(), `moat-vitest-${process.pid}-${Date.now()}.json`);
  say(`running tests (vitest run${args.length > 0 ? ` ${args.join(' ')}` : ''})`);
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const code = await run(process.execPath, [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${reportFile}`, ...args]);
  let counts;
  try {
    counts = summarize(JSON.parse(readFileSync(reportFile, 'utf8')));
  } catch (err) {
    say(`vitest wrote no readable report (${err.message})`);
    counts = { passed: 0, failed: 0, skipped: 0 };
  } finally {
    rmSync(reportFile, { force: true });
  }
  if (code !== 0 && counts.failed === 0) {
    say(`vitest exited ${code} with errors outside any test (see above): counted as one failure`);
    counts = { ...counts, failed: 1 };
  }
  let chaosCode = 0;
  if (flags.chaos) {
    // The MIME fuzz run and the chaos suite (which restarts RabbitMQ and Postgres): CI asks for
    // them (.ci/run), a shared development machine should not.
    // Each program counts as one test.
    for (const program of ['mime-fuzz.ts', 'run.ts']) {
      say(`running tests/chaos/${program}`);
      const programCode = await run(process.execPath, ['--import', 'tsx', join(root, 'tests', 'chaos', program)]);
      counts = programCode === 0 ? { ...counts, passed: counts.passed + 1 } : { ...counts, failed: counts.failed + 1 };
      if (programCode !== 0) chaosCode = programCode;
    }
  }
  if (counts.passed + counts.failed === 0) say('no test ran');
  process.stdout.write(`\n${summaryLine(counts)}\n`);
  return testExitCode(counts, code !== 0 ? code : chaosCode);
}

async function start(args, flags) {
  const prepared = await prepare(flags);
  if (prepared !== 0) return prepared;
  // The supervisor checks RabbitMQ/Postgres/Redis, applies migrations, then runs the stack.
  say('starting the stack (node services/supervisor/dist/main.js)');
  return run(process.execPath, ['--enable-source-maps', join(root, 'services', 'supervisor', 'dist', 'main.js'), ...args]);
}

async function bench(args, flags) {
  const prepared = await prepare(flags);
  if (prepared !== 0) return prepared;
  return run(process.execPath, ['--import', 'tsx', join(root, 'bench', 'run.ts'), ...args]);
}

/** The chaos suite (tests/chaos/run.ts): kills, restarts and outages under load; exits 1 on any loss. */
async function chaos(args, flags) {
  const prepared = await prepare(flags);
  if (prepared !== 0) return prepared;
  return run(process.execPath, ['--import', 'tsx', join(root, 'tests', 'chaos', 'run.ts'), ...args]);
}

/** 10,000 mutated MIME messages through the stack (tests/chaos/mime-fuzz.ts): none lost or altered. */
async function mimeFuzz(args, flags) {
  const prepared = await prepare(flags);
  if (prepared !== 0) return prepared;
  return run(process.execPath, ['--import', 'tsx', join(root, 'tests', 'chaos', 'mime-fuzz.ts'), ...args]);
}

/** The spam classifier's train and eval commands (services/filter/src/spam/*-cli.ts), run from the build. */
function filterCommand(script) {
  return async (args, flags) => {
    const prepared = await prepare(flags);
    if (prepared !== 0) return prepared;
    return run(process.execPath, [join(root, 'services', 'filter', 'dist', 'spam', script), ...args]);
  };
}

const commands = {
  start,
  test,
  bench,
  chaos,
  'mime-fuzz': mimeFuzz,
  'filter:train': filterCommand('train-cli.js'),
  'filter:eval': filterCommand('eval-cli.js'),
  install: async () => install(),
  build: async () => build(),
};

export async function main(argv) {
  const [name, ...rest] = argv;
  const flags = { noInstall: rest.includes('--no-install'), noBuild: rest.includes('--no-build'), chaos: rest.includes('--chaos') };
  const args = rest.filter((a) => a !== '--no-install' && a !== '--no-build' && a !== '--chaos');
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    say(`usage: node scripts/moat.mjs ${Object.keys(commands).join('|')} [--no-install] [--no-build] [args…]`);
    return 64;
  }
  return command(args, flags);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
