/**
 * Deterministic MIME mutations for the fuzz run: given a seed, the same corpus gives the same
 * messages, so a failure can be replayed (`--seed`). Each operator breaks a message the way
 * real-world mail and attackers do: damaged bytes, cut or spliced structure, absurd nesting
 * and header sizes, lying encodings, stray control bytes and line endings.
 */

/** mulberry32: a small seeded PRNG (uniform in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

function randomBytes(r: Rand, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

function headerEnd(msg: Buffer): number {
  const i = msg.indexOf('\r\n\r\n');
  return i < 0 ? msg.length : i + 4;
}

export const operators: Record<string, (msg: Buffer, r: Rand, other: Buffer) => Buffer> = {
  flipBytes(msg, r) {
    const out = Buffer.from(msg);
    for (let k = 1 + int(r, 10); k > 0 && out.length > 0; k--) out[int(r, out.length)] = int(r, 256);
    return out;
  },
  insertBytes(msg, r) {
    const at = int(r, msg.length + 1);
    return Buffer.concat([msg.subarray(0, at), randomBytes(r, 1 + int(r, 64)), msg.subarray(at)]);
  },
  deleteRange(msg, r) {
    const a = int(r, msg.length + 1);
    const b = Math.min(msg.length, a + int(r, 2048));
    return Buffer.concat([msg.subarray(0, a), msg.subarray(b)]);
  },
  duplicateRange(msg, r) {
    const a = int(r, msg.length + 1);
    const b = Math.min(msg.length, a + int(r, 4096));
    return Buffer.concat([msg.subarray(0, b), msg.subarray(a, b), msg.subarray(b)]);
  },
  truncate(msg, r) {
    return msg.subarray(0, int(r, msg.length + 1));
  },
  breakBoundary(msg, r) {
    const text = msg.toString('latin1');
    const m = /boundary="?([^";\r\n]+)"?/i.exec(text);
    if (!m) return operators.flipBytes!(msg, r, msg);
    const replacement = pick(r, ['', '"', '--', 'x'.repeat(200), m[1]!.slice(0, -1), `${m[1]}\r\n--${m[1]}`]);
    return Buffer.from(text.replace(m[1]!, replacement), 'latin1');
  },
  deepNesting(msg, r) {
    const depth = 10 + int(r, 190);
    let head = '';
    let tail = '';
    for (let i = 0; i < depth; i++) {
      head += `Content-Type: multipart/mixed; boundary="n${i}"\r\n\r\n--n${i}\r\n`;
      tail = `\r\n--n${i}--\r\n${tail}`;
    }
    return Buffer.concat([Buffer.from(`MIME-Version: 1.0\r\n${head}`), msg, Buffer.from(tail)]);
  },
  hugeHeader(msg, r) {
    const size = 1_000 + int(r, 100_000);
    const folded = r() < 0.5;
    const value = folded ? Array.from({ length: Math.ceil(size / 70) }, () => 'x'.repeat(70)).join('\r\n ') : 'y'.repeat(size);
    return Buffer.concat([Buffer.from(`X-Huge: ${value}\r\n`), msg]);
  },
  lyingEncoding(msg, r) {
    const end = headerEnd(msg);
    const cte = pick(r, ['base64', 'quoted-printable', 'x-uuencode', '8bit', 'binary', 'b\u00e4se64', '']);
    const charset = pick(r, ['utf-8', 'x-unknown-\u00ff', 'utf-7', 'iso-2022-jp', '"', '']);
    const extra = `Content-Transfer-Encoding: ${cte}\r\nContent-Type: text/plain; charset=${charset}\r\n`;
    return Buffer.concat([Buffer.from(extra, 'latin1'), msg.subarray(0, end), randomBytes(r, int(r, 512)), msg.subarray(end)]);
  },
  splice(msg, r, other) {
    return Buffer.concat([msg.subarray(0, int(r, msg.length + 1)), other.subarray(int(r, other.length + 1))]);
  },
  controlBytes(msg, r) {
    const out = Buffer.from(msg);
    for (let k = 1 + int(r, 5); k > 0 && out.length > 0; k--) out[int(r, out.length)] = pick(r, [0x00, 0x0b, 0x0c, 0x1b, 0x7f, 0xff]);
    return out;
  },
  bareLineEndings(msg, r) {
    const text = msg.toString('latin1');
    const at = int(r, text.length + 1);
    return Buffer.from(text.slice(0, at) + text.slice(at).replace(/\r\n/, pick(r, ['\n', '\r', '\n.\r\n', '\r.\r'])), 'latin1');
  },
  headersOnly(msg) {
    return msg.subarray(0, headerEnd(msg));
  },
};

export const operatorNames = Object.keys(operators);

/** One mutated message: 1–3 operators applied in a row to a corpus message. */
export function mutate(corpus: readonly Buffer[], r: Rand): { bytes: Buffer; applied: string[] } {
  let msg = pick(r, corpus);
  const applied: string[] = [];
  for (let n = 1 + int(r, 3); n > 0; n--) {
    const name = pick(r, operatorNames);
    applied.push(name);
    msg = operators[name]!(msg, r, pick(r, corpus));
  }
  // SMTP carries lines: the message ends with CRLF (the client adds the final dot).
  if (!msg.subarray(-2).equals(Buffer.from('\r\n'))) msg = Buffer.concat([msg, Buffer.from('\r\n')]);
  return { bytes: msg, applied };
}

/**
 * The bytes an SMTP client that normalises line endings (nodemailer, like most) transmits for
 * `msg`: a CR not followed by LF, and an LF not preceded by CR, become CRLF.
 */
export function normaliseLineEndings(msg: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < msg.length; i++) {
    const b = msg[i]!;
    if (b === 0x0d && msg[i + 1] !== 0x0a) out.push(0x0d, 0x0a);
    else if (b === 0x0a && msg[i - 1] !== 0x0d) out.push(0x0d, 0x0a);
    else out.push(b);
  }
  return Buffer.from(out);
}
