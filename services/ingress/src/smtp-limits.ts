/** The per-session limits, enforced on every connection (plaintext and after STARTTLS alike). */
export interface SessionLimits {
  /** Longest command line, CRLF not counted; longer ones get 500 5.5.2 and are not run. */
  maxCommandLineBytes: number;
  /** No byte from the client for this long, or one command line not complete this long after its first byte: 421 4.4.2. */
  idleTimeoutMs: number;
  /** From 354 to the final dot at most this long, however steadily the client drips: 421 4.4.2. */
  dataTimeoutMs: number;
  /** Command lines per session; the next one gets 421 4.7.0. */
  maxCommands: number;
  /** 5xx replies per session; the last one is followed by 421 4.7.0. */
  maxErrors: number;
  /** Unrecognized commands per session (500 5.5.1 each); the next one gets 421 4.7.0. */
  maxUnknownCommands: number;
}

/** The SMTP listener's limits besides the message size and the overall connection count. */
export interface SmtpLimits extends SessionLimits {
  /** Longest message line, CRLF not counted: 550 5.6.0. */
  maxMessageLineBytes: number;
  /** Largest header section: 552 5.3.4. */
  maxHeaderBytes: number;
  /** Concurrent connections per client IPv4 address or IPv6 /64: 421 4.7.0. */
  maxClientsPerIp: number;
}

/**
 * Production defaults, and the defaults of the MOAT_SMTP_* variables (config.ts, where each one's
 * reason is given).
 */
export const defaultSmtpLimits: Readonly<SmtpLimits> = {
  maxCommandLineBytes: 2_048,
  idleTimeoutMs: 300_000,
  dataTimeoutMs: 600_000,
  maxCommands: 10_000,
  maxErrors: 20,
  maxUnknownCommands: 10,
  maxMessageLineBytes: 65_536,
  maxHeaderBytes: 262_144,
  maxClientsPerIp: 50,
};
