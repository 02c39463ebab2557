export interface SessionCounterLimits {
  /** Command lines one session may send. */
  maxCommands: number;
  /** Error replies (5xx) one session may get; with the last one the session ends. */
  maxErrors: number;
  /** Unrecognized commands one session may send; the next one ends the session. */
  maxUnknownCommands: number;
}

/**
 * What one SMTP session has used of its limits. The limits end sessions that only cost us:
 * a client that keeps a connection busy with commands that never become mail, guesses commands
 * (an unknown-command storm is a scan or a confused non-SMTP client) or keeps getting refused
 * (address harvesting, spam runs). Counts are per connection and survive STARTTLS and RSET.
 */
export class SessionCounters {
  private commands = 0;
  private errors = 0;
  private unknown = 0;

  constructor(private readonly limits: SessionCounterLimits) {}

  /** Counts a command line; false when it is over the limit (answer 421 instead of running it). */
  command(): boolean {
    return ++this.commands <= this.limits.maxCommands;
  }

  /** Counts an unrecognized command; false when it is over the limit. */
  unknownCommand(): boolean {
    return ++this.unknown <= this.limits.maxUnknownCommands;
  }

  /** Counts an error reply; true when it reached the limit (the session ends after it). */
  errorReply(): boolean {
    return ++this.errors >= this.limits.maxErrors;
  }
}
