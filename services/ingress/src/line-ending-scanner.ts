const CR = 0x0d;
const LF = 0x0a;

/**
 * Finds a bare CR (not followed by LF) or a bare LF (not preceded by CR) in a byte stream fed
 * chunk by chunk, as the DATA stream arrives. RFC 5321 §2.3.8: in SMTP, CR and LF occur only
 * together as CRLF. Servers disagree on what a bare one means at end-of-data (`<LF>.<LF>`,
 * `<CR>.<CR>`, `<LF>.<CR><LF>`: SMTP smuggling, CVE-2023-51764/51765/51766), and the client that
 * relays the message on rewrites them as CRLF, so a body holding one can neither be relayed
 * safely nor unchanged.
 *
 * Pure and incremental: a CR at the end of one chunk is judged by the first byte of the next
 * (or by the end of the stream). Once a bare one is seen, later chunks are not looked at.
 */
export class LineEndingScanner {
  private crPending = false;
  private bare = false;

  /** Whether a bare CR or LF has been seen so far (a CR at the very end is not judged yet). */
  get foundBare(): boolean {
    return this.bare;
  }

  push(chunk: Uint8Array): void {
    if (this.bare || chunk.length === 0) return;
    const crBefore = this.crPending;
    this.crPending = false;
    if (crBefore && chunk[0] !== LF) {
      this.bare = true;
      return;
    }
    // Every LF needs a CR right before it (in this chunk, or ending the previous one).
    for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, i + 1)) {
      if (i === 0 ? !crBefore : chunk[i - 1] !== CR) {
        this.bare = true;
        return;
      }
    }
    // Every CR needs an LF right after it; the last byte waits for the next chunk.
    for (let i = chunk.indexOf(CR); i !== -1; i = chunk.indexOf(CR, i + 1)) {
      if (i === chunk.length - 1) {
        this.crPending = true;
      } else if (chunk[i + 1] !== LF) {
        this.bare = true;
        return;
      }
    }
  }

  /** The stream is over: a CR it ended with is bare. Returns whether a bare CR or LF was found. */
  end(): boolean {
    if (this.crPending) this.bare = true;
    this.crPending = false;
    return this.bare;
  }
}
