import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The train and eval commands as a person runs them, on the 8 + 8 message sample in the repo. */
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const sample = fileURLToPath(new URL('./fixtures/spamassassin/', import.meta.url));
const cli = (name: string) => fileURLToPath(new URL(`../src/spam/${name}`, import.meta.url));

function run(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moat-spam-cli-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('filter:train and filter:eval', () => {
  it('when the same sample is trained twice, then both model files are byte for byte the same', async () => {
    const a = await run(cli('train-cli.ts'), [sample, '--out', join(dir, 'a.json'), '--cv', '4']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(a.stdout).toContain('trained on 8 spam and 8 ham');
    expect(a.stdout).toMatch(/4-fold cross-validation[^]*spam recall\s+\d+\.\d\d %[^]*ham false positives\s+\d+\.\d\d %/);
    const b = await run(cli('train-cli.ts'), [sample, '--out', join(dir, 'b.json')]);
    expect(b.code).toBe(0);
    expect(await readFile(join(dir, 'b.json'), 'utf8')).toBe(await readFile(join(dir, 'a.json'), 'utf8'));
  });

  it('when eval scores the sample with a model trained on it, then all spam is caught and no ham is quarantined', async () => {
    const model = join(dir, 'sample.json');
    expect((await run(cli('train-cli.ts'), [sample, '--out', model])).code).toBe(0);
    const r = await run(cli('eval-cli.ts'), ['--spam', join(sample, 'spam'), '--ham', join(sample, 'ham'), '--model', model, '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { model: string; builtIn: { spam: number; ham: number; recall: number; falsePositiveRate: number; accuracy: number; confusion: unknown }; cpuMsPerMessage: number };
    expect(report.model).toBe(model);
    expect(report.builtIn).toMatchObject({ spam: 8, ham: 8, recall: 1, falsePositiveRate: 0, accuracy: 1 });
    expect(report.builtIn.confusion).toEqual({ spam: { spam: 8, unsure: 0, ham: 0 }, ham: { spam: 0, unsure: 0, ham: 8 } });
    expect(report.cpuMsPerMessage).toBeGreaterThan(0);
  });

  it('when eval runs with the default model, then it prints the figures and the confusion matrix', async () => {
    const r = await run(cli('eval-cli.ts'), ['--spam', join(sample, 'spam'), '--ham', join(sample, 'ham')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/model .*spam-bayes\.json \(\d+ tokens, \d+ logistic weights; trained on 1012 spam, 2094 ham\)/);
    expect(r.stdout).toMatch(/confusion matrix\s+quarantined\s+unsure\s+ham\n\s+actual spam\s+\d+\s+\d+\s+\d+\n\s+actual ham\s+\d+\s+\d+\s+\d+/);
    expect(r.stdout).toMatch(/CPU \d+\.\d{3} ms\/message/);
  });

  it('when a directory does not exist or no directory is given, then the command fails and says why', async () => {
    const missing = await run(cli('eval-cli.ts'), ['--spam', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read the message directory .*nope/);
    const none = await run(cli('eval-cli.ts'), []);
    expect(none.code).toBe(64);
    expect(none.stderr).toContain('usage: npm run filter:eval');
  });
});
