import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Logger } from '@moat/runtime';

export interface TlsCredentials {
  key: string;
  cert: string;
  /** True when the certificate was generated at start-up (development only). */
  dev: boolean;
}

/**
 * The certificate STARTTLS presents. Configured files are read and checked at start-up (a bad
 * pair fails the start, not the first handshake). Without them a self-signed certificate is
 * generated for development; smtp-server's built-in fallback certificate is never used, its
 * private key is public.
 */
export async function loadTlsCredentials(opts: { certFile: string | undefined; keyFile: string | undefined; hostname: string }, log: Logger): Promise<TlsCredentials> {
  if (opts.certFile !== undefined && opts.keyFile !== undefined) {
    const [cert, key] = await Promise.all([readFile(opts.certFile, 'utf8'), readFile(opts.keyFile, 'utf8')]);
    try {
      createSecureContext({ key, cert });
    } catch (err) {
      throw new Error(`MOAT_TLS_CERT_FILE/MOAT_TLS_KEY_FILE do not form a usable certificate and key: ${(err as Error).message}`);
    }
    return { key, cert, dev: false };
  }
  const generated = await generateDevCertificate(opts.hostname);
  log.warn({ hostname: opts.hostname }, 'STARTTLS uses a generated self-signed development certificate; set MOAT_TLS_CERT_FILE and MOAT_TLS_KEY_FILE in production');
  return generated;
}

export async function generateDevCertificate(hostname: string, now = new Date()): Promise<TlsCredentials> {
  const notAfter = new Date(now.getTime() + 365 * 86_400_000);
  // Loaded only for a development certificate: the X.509 libraries cost memory in production.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 60_000),
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] },
    ],
  });
  return { key: pems.private, cert: pems.cert, dev: true };
}
