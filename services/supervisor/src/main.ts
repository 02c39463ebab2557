import { fileURLToPath } from 'node:url';
import { ConfigError, configOrExit } from '@moat/runtime';
import { configSchema, processEnvironment } from './config.js';
import { StopSignals } from './signals.js';
import { StartupFailed, startSupervisor } from './supervisor.js';

// dist/main.js (or src/main.ts under tsx) sits three levels below the repository root.
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const config = configOrExit(configSchema);

let supervisor;
try {
  supervisor = await startSupervisor(config, { stdout: process.stdout, stderr: process.stderr, env: processEnvironment(), repoRoot, cwd: process.cwd(), nodePath: process.execPath });
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(78);
  }
  if (err instanceof StartupFailed) process.exit(err.exitCode);
  throw err;
}

const running = supervisor;
// Whatever ends the supervisor, no service outlives it.
process.on('exit', () => running.kill());
process.on('uncaughtException', (err) => {
  process.stderr.write(`supervisor crashed: ${err.stack ?? err.message}\n`);
  process.exit(70);
});
const signals = new StopSignals();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    const action = signals.next(Date.now());
    if (action === 'stop') void running.stop(signal);
    else if (action === 'force') {
      process.stderr.write(`second ${signal}: killing every service now\n`);
      process.exit(1);
    }
  });
}
process.exit(await running.done);
