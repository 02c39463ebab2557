import { describe, expect, it } from 'vitest';
import { SessionCounters } from './session-counters.js';

describe('SessionCounters', () => {
  it('when commands reach the limit, then the last allowed one passes and the next does not', () => {
    const c = new SessionCounters({ maxCommands: 3, maxErrors: 10, maxUnknownCommands: 10 });
    expect([c.command(), c.command(), c.command(), c.command()]).toEqual([true, true, true, false]);
  });

  it('when unknown commands reach the limit, then the next one is refused', () => {
    const c = new SessionCounters({ maxCommands: 100, maxErrors: 100, maxUnknownCommands: 2 });
    expect([c.unknownCommand(), c.unknownCommand(), c.unknownCommand()]).toEqual([true, true, false]);
  });

  it('when the unknown-command limit is 0, then the first unknown command is refused', () => {
    const c = new SessionCounters({ maxCommands: 100, maxErrors: 100, maxUnknownCommands: 0 });
    expect(c.unknownCommand()).toBe(false);
  });

  it('when error replies reach the limit, then the one that reaches it ends the session', () => {
    const c = new SessionCounters({ maxCommands: 100, maxErrors: 3, maxUnknownCommands: 10 });
    expect([c.errorReply(), c.errorReply(), c.errorReply()]).toEqual([false, false, true]);
  });

  it('when one kind is counted, then the others are not touched', () => {
    const c = new SessionCounters({ maxCommands: 1, maxErrors: 1, maxUnknownCommands: 1 });
    expect(c.unknownCommand()).toBe(true);
    expect(c.command()).toBe(true);
    expect(c.errorReply()).toBe(true);
  });
});
