import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StaticZone } from '@moat/runtime';

/**
 * A static DNS zone file (MOAT_DNS_MODE=static, MOAT_DNS_STATIC_FILE) for a test: services
 * resolve from it and never ask the machine's resolver. `write` replaces the records (services
 * read the file when they start, so restart one to make it see the change).
 */
export class StaticDnsZone {
  readonly path: string;
  private readonly dir: string;

  constructor(zone: StaticZone = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'moat-zone-'));
    this.path = join(this.dir, 'zone.json');
    this.write(zone);
  }

  write(zone: StaticZone): void {
    writeFileSync(this.path, JSON.stringify(zone, null, 2));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
