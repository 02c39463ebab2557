import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { generateDevCertificate, loadTlsCredentials } from './tls-credentials.js';

const dir = mkdtempSync(join(tmpdir(), 'moat-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadTlsCredentials', () => {
  it('when no files are configured, then a self-signed certificate for our host name is generated and a warning logged', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const creds = await loadTlsCredentials({ certFile: undefined, keyFile: undefined, hostname: 'mx.moat.test' }, log);
    expect(creds.dev).toBe(true);
    const cert = new X509Certificate(creds.cert);
    expect(cert.subject).toContain('CN=mx.moat.test');
    expect(cert.subjectAltName).toBe('DNS:mx.moat.test');
    expect(cert.checkPrivateKey(createPrivateKey(creds.key))).toBe(true);
    expect(lines.join('')).toContain('self-signed development certificate');
  });

  it('when files are configured, then they are used as they are', async () => {
    const pair = await generateDevCertificate('mx.customer.test');
    writeFileSync(join(dir, 'cert.pem'), pair.cert);
    writeFileSync(join(dir, 'key.pem'), pair.key);
    const creds = await loadTlsCredentials({ certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), hostname: 'ignored' }, pino({ level: 'silent' }));
    expect(creds).toEqual({ cert: pair.cert, key: pair.key, dev: false });
  });

  it('when the configured key does not belong to the certificate, then start-up fails naming the variables', async () => {
    const a = await generateDevCertificate('a.test');
    const b = await generateDevCertificate('b.test');
    writeFileSync(join(dir, 'a-cert.pem'), a.cert);
    writeFileSync(join(dir, 'b-key.pem'), b.key);
    await expect(loadTlsCredentials({ certFile: join(dir, 'a-cert.pem'), keyFile: join(dir, 'b-key.pem'), hostname: 'x' }, pino({ level: 'silent' }))).rejects.toThrow(/MOAT_TLS_CERT_FILE/);
  });
});
