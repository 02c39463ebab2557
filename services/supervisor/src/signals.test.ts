import { describe, expect, it } from 'vitest';
import { StopSignals } from './signals.js';

describe('StopSignals', () => {
  it('when the first signal arrives, then it is a graceful stop', () => {
    expect(new StopSignals(1_000).next(5_000)).toBe('stop');
  });

  it('when the same Ctrl-C arrives twice (terminal and npm), then the repeat is ignored', () => {
    const s = new StopSignals(1_000);
    s.next(5_000);
    expect(s.next(5_010)).toBe('ignore');
  });

  it('when another signal comes later, then it forces the exit', () => {
    const s = new StopSignals(1_000);
    s.next(5_000);
    expect(s.next(6_500)).toBe('force');
  });
});
