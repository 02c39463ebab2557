// Text from strangers' mail (a sender, a subject) as the quarantine digest and its link pages show
// it: the archive's digest mail and the gateway's pages apply the same two rules.

/** One line of text: no control or bidirectional-override characters, bounded. */
export function displayLine(value: string, max = 200): string {
  // C0/C1 controls end lines or hide text; bidi overrides make "exe.pdf" read as "fdp.exe".
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g, ' ').replace(/\s+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/** HTML text and attribute values: the five characters that mean something in markup. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
