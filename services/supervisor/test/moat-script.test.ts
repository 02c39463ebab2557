import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a dependency-free .mjs script without type declarations
import { summarize, summaryLine, testExitCode } from '../../../scripts/moat.mjs';

type Counts = { passed: number; failed: number; skipped: number };
const summarizeReport = summarize as (report: unknown) => Counts;
const line = summaryLine as (c: Counts) => string;
const exitCode = testExitCode as (c: Counts, vitestCode: number) => number;

describe('scripts/moat.mjs test summary', () => {
  it('when tests pass, fail and are skipped, then the closing line counts each', () => {
    const counts = summarizeReport({
      numPassedTests: 10,
      numFailedTests: 2,
      numPendingTests: 1,
      numTodoTests: 1,
      testResults: [{ status: 'failed', assertionResults: [{ status: 'failed' }, { status: 'failed' }] }, { status: 'passed', assertionResults: [] }],
    });
    expect(counts).toEqual({ passed: 10, failed: 2, skipped: 2 });
    expect(line(counts)).toBe('10 passed, 2 failed, 2 skipped');
    expect(exitCode(counts, 1)).toBe(1);
  });

  it('when nothing is skipped, then the line is exactly "N passed, N failed"', () => {
    expect(line({ passed: 5, failed: 0, skipped: 0 })).toBe('5 passed, 0 failed');
    expect(exitCode({ passed: 5, failed: 0, skipped: 0 }, 0)).toBe(0);
  });

  it('when a test file fails to load, then it counts as a failure although no test failed', () => {
    const counts = summarizeReport({ numPassedTests: 3, numFailedTests: 0, testResults: [{ status: 'failed', message: 'Cannot find module', assertionResults: [] }] });
    expect(counts).toEqual({ passed: 3, failed: 1, skipped: 0 });
    expect(exitCode(counts, 1)).toBe(1);
  });

  it('when no test ran, then the run fails', () => {
    expect(exitCode({ passed: 0, failed: 0, skipped: 4 }, 0)).toBe(1);
  });

  it('when run without a known command, then it prints the usage and exits 64', () => {
    const script = fileURLToPath(new URL('../../../scripts/moat.mjs', import.meta.url));
    const result = spawnSync(process.execPath, [script, 'nonsense'], { encoding: 'utf8' });
    expect(result.status).toBe(64);
    expect(result.stderr).toContain('usage: node scripts/moat.mjs start|test|bench');
  });
});
