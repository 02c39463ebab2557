import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createResolver, parseStaticZone, staticResolver } from './dns.js';

const codeOf = async (p: Promise<unknown>) => p.then(() => 'resolved', (err: { code?: string }) => err.code);

describe('static DNS', () => {
  const resolve = staticResolver({
    'Example.COM.': { MX: [{ exchange: 'mx1.example.com', priority: 10 }], a: ['192.0.2.1'] },
    'broken.example': { MX: 'SERVFAIL', A: 'TIMEOUT', TXT: 'REFUSED' },
    'gone.example': { MX: 'NXDOMAIN' },
    'empty.example': { MX: [] },
  });

  it('when a name and type are listed, then their records are returned, whatever the case or trailing dot', async () => {
    expect(await resolve('example.com', 'MX')).toEqual([{ exchange: 'mx1.example.com', priority: 10 }]);
    expect(await resolve('EXAMPLE.com.', 'a')).toEqual(['192.0.2.1']);
  });

  it('when a name is not listed, then the lookup fails with ENOTFOUND (NXDOMAIN)', async () => {
    expect(await codeOf(resolve('nowhere.example', 'MX'))).toBe('ENOTFOUND');
  });

  it('when a listed name lacks the type (or lists none), then the lookup fails with ENODATA', async () => {
    expect(await codeOf(resolve('example.com', 'AAAA'))).toBe('ENODATA');
    expect(await codeOf(resolve('empty.example', 'MX'))).toBe('ENODATA');
  });

  it('when a type names a failure, then the lookup fails with node’s code for it', async () => {
    expect(await codeOf(resolve('broken.example', 'MX'))).toBe('ESERVFAIL');
    expect(await codeOf(resolve('broken.example', 'A'))).toBe('ETIMEOUT');
    expect(await codeOf(resolve('broken.example', 'TXT'))).toBe('EREFUSED');
    expect(await codeOf(resolve('gone.example', 'MX'))).toBe('ENOTFOUND');
  });

  it('when a static file has a record type that is neither a list nor a known failure, then it is refused naming the entry', () => {
    expect(() => parseStaticZone({ 'a.example': { MX: 'SOMETIMES' } }, 'zone.json')).toThrow(/zone\.json: "a\.example" MX must be a list of records or one of SERVFAIL/);
    expect(() => parseStaticZone([], 'zone.json')).toThrow(/must be a JSON object/);
  });

  it('when the static file is read by createResolver, then it answers from it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-dns-'));
    try {
      const file = join(dir, 'zone.json');
      writeFileSync(file, JSON.stringify({ 'sender.example': { MX: [{ exchange: 'mx.sender.example', priority: 5 }] } }));
      const fromFile = createResolver({ mode: 'static', servers: [], staticFile: file, timeoutMs: 1_000 });
      expect(await fromFile('sender.example', 'MX')).toEqual([{ exchange: 'mx.sender.example', priority: 5 }]);
      expect(await codeOf(fromFile('sender.example', 'A'))).toBe('ENODATA');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
