import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { repoRoot } from './helpers.js';

// Manifests are validated offline (kubectl --dry-run needs a cluster): each document against
// the kubernetes-models schema of its kind, plus a walk over the models' type declarations for
// unknown fields, which the schemas accept silently and the API server would drop (a typo in
// `readinessProbe` would leave a pod without one).

const dir = join(repoRoot, 'deploy', 'kubernetes');
const require = createRequire(import.meta.url);
const modelsRoot = dirname(require.resolve('kubernetes-models/package.json'));

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

const models: Record<string, { model: new (data: never) => { validate(): void }; types: string }> = {
  'apps/v1/Deployment': { model: Deployment as never, types: 'apps/v1/Deployment.d.ts' },
  'batch/v1/Job': { model: Job as never, types: 'batch/v1/Job.d.ts' },
  'v1/ConfigMap': { model: ConfigMap as never, types: 'v1/ConfigMap.d.ts' },
  'v1/Namespace': { model: Namespace as never, types: 'v1/Namespace.d.ts' },
  'v1/Secret': { model: Secret as never, types: 'v1/Secret.d.ts' },
  'v1/Service': { model: Service as never, types: 'v1/Service.d.ts' },
};

function loadDocs(file: string): Doc[] {
  return parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Doc;
  });
}

const manifestFiles = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const all = manifestFiles.flatMap((file) => loadDocs(file).map((doc) => ({ file, doc })));
const deployed = all.filter(({ file }) => file !== 'secret.example.yaml');
const deployments = deployed.filter(({ doc }) => doc.kind === 'Deployment').map(({ doc }) => doc as unknown as DeploymentDoc);

interface ContainerDoc {
  name: string;
  image: string;
  command: string[];
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string } }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface DeploymentDoc extends Doc {
  spec: {
    replicas: number;
    strategy?: { type: string };
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: { containers: ContainerDoc[]; hostNetwork?: boolean; nodeSelector?: Record<string, string>; dnsPolicy?: string } };
  };
}

/** Property names per type declaration file, and the declaration files of their object types. */
const typeCache = new Map<string, Map<string, string | null>>();
function propertiesOf(dtsFile: string): Map<string, string | null> {
  const cached = typeCache.get(dtsFile);
  if (cached) return cached;
  const text = readFileSync(dtsFile, 'utf8');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) imports.set(m[1]!, m[2]!);
  const start = text.indexOf('export interface ');
  const body = start < 0 ? '' : text.slice(start, text.indexOf('\n}', start));
  const props = new Map<string, string | null>();
  for (const m of body.matchAll(/^ {4}"([^"]+)"\??: (.*)$/gm)) {
    // `Array<IFoo>` and `IFoo` name an object type; literals, unions and `{ [key: string]: … }` maps do not.
    const typeName = /^(?:Array<)?(\w+)/.exec(m[2]!)?.[1];
    const source = typeName === undefined ? undefined : imports.get(typeName);
    props.set(m[1]!, source === undefined ? null : resolveTypes(dtsFile, source));
  }
  typeCache.set(dtsFile, props);
  return props;
}
function resolveTypes(fromFile: string, source: string): string {
  if (source.startsWith('.')) return join(dirname(fromFile), `${source}.d.ts`);
  // Types from @kubernetes-models/* resolve from the kubernetes-models package itself.
  const [scope, pkg, ...rest] = source.split('/');
  const pkgRoot = dirname(createRequire(join(modelsRoot, 'package.json')).resolve(`${scope}/${pkg}/package.json`));
  return join(pkgRoot, `${rest.join('/')}.d.ts`);
}

/** Paths of fields that no type declares. Objects typed as maps (labels, data) are not walked. */
function unknownFields(value: unknown, dtsFile: string, path: string): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(v, dtsFile, `${path}[${i}]`));
  if (typeof value !== 'object' || value === null) return [];
  const props = propertiesOf(dtsFile);
  if (props.size === 0) return [];
  const out: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    if (!props.has(key)) out.push(`${path}.${key}`);
    const childTypes = props.get(key);
    if (childTypes) out.push(...unknownFields(child, childTypes, `${path}.${key}`));
  }
  return out;
}

describe('deploy/kubernetes', () => {
  it('when each manifest is validated against its kind, then every document is valid', () => {
    expect(all.length).toBeGreaterThan(10);
    for (const { file, doc } of all) {
      const entry = models[`${doc.apiVersion}/${doc.kind}`];
      expect(entry, `${file}: ${doc.apiVersion} ${doc.kind} has no model here`).toBeDefined();
      expect(() => new entry!.model(doc as never).validate(), `${file} ${doc.kind}/${doc.metadata.name}`).not.toThrow();
    }
  });

  it('when checked for fields no Kubernetes type declares, then there are none', () => {
    for (const { file, doc } of all) {
      const entry = models[`${doc.apiVersion}/${doc.kind}`]!;
      expect(unknownFields(doc, join(modelsRoot, entry.types), `${file}:${doc.kind}`)).toEqual([]);
    }
  });

  it('when the unknown-field check sees a typo, then it reports it (the check is real)', () => {
    const [deployment] = loadDocs('router.yaml') as unknown as DeploymentDoc[];
    const broken = structuredClone(deployment!) as unknown as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    broken.spec.template.spec.containers[0]!.readinesProbe = { httpGet: { path: '/readyz', port: 'admin' } };
    (broken as unknown as { metadata: Record<string, unknown> }).metadata.lables = {};
    expect(unknownFields(broken, join(modelsRoot, 'apps/v1/Deployment.d.ts'), 'x')).toEqual(['x.metadata.lables', 'x.spec.template.spec.containers[0].readinesProbe']);
    const badPort = structuredClone(deployment!);
    (badPort.spec.template.spec.containers[0]!.ports as unknown[]) = [{ name: 'admin', containerPort: 'nine' }];
    expect(() => new Deployment(badPort as never).validate()).toThrow(/containerPort/);
  });

  it('when kustomize builds it, then kustomization.yaml lists every manifest except the secret example', () => {
    const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[]; images: { name: string }[] };
    expect([...kustomization.resources].sort()).toEqual(manifestFiles.filter((f) => f !== 'secret.example.yaml').sort());
    // Every container uses the image kustomize rewrites.
    for (const { doc } of deployed) {
      const spec = (doc as unknown as { spec?: { template?: { spec: { containers: ContainerDoc[] } } } }).spec?.template?.spec;
      for (const c of spec?.containers ?? []) expect(c.image).toBe(kustomization.images[0]!.name);
    }
  });

  it('when a stateless service is deployed, then it has a Deployment running its entry point with probes on the admin port and resources', () => {
    const config = loadDocs('config.yaml')[0] as unknown as { data: Record<string, string> };
    for (const name of ['ingress', 'filter', 'archive', 'router', 'tracker', 'gateway']) {
      const d = deployments.find((x) => x.metadata.name === name);
      expect(d, name).toBeDefined();
      const [c] = d!.spec.template.spec.containers;
      expect(c!.command.at(-1)).toBe(`services/${name}/dist/main.js`);
      const admin = c!.ports?.find((p) => p.name === 'admin');
      expect(String(admin?.containerPort)).toBe(config.data.MOAT_ADMIN_PORT);
      expect(c!.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'admin' });
      expect(c!.livenessProbe?.httpGet).toEqual({ path: '/livez', port: 'admin' });
      expect(c!.resources?.requests?.cpu, name).toBeDefined();
      expect(c!.resources?.requests?.memory, name).toBeDefined();
      expect(c!.resources?.limits?.memory, name).toBeDefined();
      expect(c!.envFrom).toEqual([{ configMapRef: { name: 'moat-config' } }]);
      // The selector picks the pods this Deployment makes.
      for (const [k, v] of Object.entries(d!.spec.selector.matchLabels)) expect(d!.spec.template.metadata.labels[k]).toBe(v);
    }
  });

  it('when a Service routes traffic, then its selector matches a Deployment and its target port is a named container port', () => {
    const services = deployed.filter(({ doc }) => doc.kind === 'Service').map(({ doc }) => doc as unknown as { metadata: { name: string }; spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] } });
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['gateway', 'ingress']);
    for (const service of services) {
      const target = deployments.filter((d) => Object.entries(service.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
      expect(target.map((d) => d.metadata.name)).toEqual([service.metadata.name]);
      const portNames = target[0]!.spec.template.spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.name);
      for (const port of service.spec.ports) expect(portNames).toContain(port.targetPort);
    }
    const ingress = services.find((s) => s.metadata.name === 'ingress')!;
    expect(ingress.spec.ports).toEqual([
      { name: 'smtp', port: 25, targetPort: 'smtp', protocol: 'TCP' },
      { name: 'submission', port: 587, targetPort: 'submission', protocol: 'TCP' },
      { name: 'submissions', port: 465, targetPort: 'submissions', protocol: 'TCP' },
    ]);
    const containerPorts = deployments.find((d) => d.metadata.name === 'ingress')!.spec.template.spec.containers[0]!.ports!;
    expect(Object.fromEntries(containerPorts.map((p) => [p.name, p.containerPort]))).toMatchObject({ smtp: 2525, submission: 2587, submissions: 2465 });
  });

  it('when a pod reads a secret or config, then it names the Secret and ConfigMap that exist, with keys they hold', () => {
    const secret = loadDocs('secret.example.yaml')[0] as unknown as { metadata: { name: string }; stringData: Record<string, string> };
    const configMaps = deployed.filter(({ doc }) => doc.kind === 'ConfigMap').map(({ doc }) => doc.metadata.name);
    const pods = deployed.flatMap(({ doc }) => {
      const spec = (doc as unknown as { spec?: { template?: { spec: { containers: ContainerDoc[] } } } }).spec?.template?.spec;
      return spec ? [{ name: doc.metadata.name, containers: spec.containers }] : [];
    });
    for (const pod of pods) {
      for (const c of pod.containers) {
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          if (!ref) continue;
          expect(ref.name).toBe(secret.metadata.name);
          expect(Object.keys(secret.stringData), `${pod.name} ${e.name}`).toContain(ref.key);
        }
        for (const from of c.envFrom ?? []) expect(configMaps).toContain(from.configMapRef?.name);
      }
    }
    // Least privilege: only what decrypts messages gets the master key, only the gateway the token.
    const secretKeys = (name: string) => pods.filter((p) => p.name === name || p.name.startsWith(`${name}-`)).flatMap((p) => p.containers.flatMap((c) => (c.env ?? []).map((e) => e.valueFrom?.secretKeyRef?.key).filter(Boolean)));
    // (The router reads originals' headers for DSNs and stores the DSNs; the archive stores the
    // quarantine digests it writes.)
    for (const name of ['ingress', 'filter', 'sender', 'router', 'archive']) expect(secretKeys(name), name).toContain('MOAT_MASTER_KEY');
    for (const name of ['tracker', 'gateway', 'migrate']) expect(secretKeys(name), name).not.toContain('MOAT_MASTER_KEY');
    // Digest release links: signed by the archive, verified by the gateway, nobody else.
    for (const name of ['archive', 'gateway']) expect(secretKeys(name), name).toContain('MOAT_DIGEST_LINK_KEY');
    for (const name of ['ingress', 'filter', 'router', 'sender', 'tracker', 'migrate']) expect(secretKeys(name), name).not.toContain('MOAT_DIGEST_LINK_KEY');
    expect(secretKeys('gateway')).toContain('MOAT_BOOTSTRAP_TOKEN');
    // Quarantine previews: sealed by the filter, opened by the gateway, nobody else.
    for (const name of ['filter', 'gateway']) expect(secretKeys(name), name).toContain('MOAT_QUARANTINE_PREVIEW_KEY');
    for (const name of ['ingress', 'archive', 'router', 'sender', 'tracker', 'migrate']) expect(secretKeys(name), name).not.toContain('MOAT_QUARANTINE_PREVIEW_KEY');
  });

  it('when senders are deployed, then each is one pod pinned to the node owning its source address, with its pool and a distinct admin port', () => {
    const senders = deployments.filter((d) => d.spec.template.metadata.labels['app.kubernetes.io/component'] === 'sender');
    expect(senders.length).toBeGreaterThan(0);
    const adminPorts = new Set<number>();
    for (const s of senders) {
      const pod = s.spec.template.spec;
      const env = Object.fromEntries((pod.containers[0]!.env ?? []).map((e) => [e.name, e.value]));
      expect(s.spec.replicas).toBe(1);
      expect(s.spec.strategy?.type).toBe('Recreate');
      expect(pod.hostNetwork).toBe(true);
      expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
      expect(env.MOAT_POOL).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
      const ipLabel = `moat.dev/source-ip-${env.MOAT_SOURCE_IP!.replaceAll('.', '-')}`;
      expect(pod.nodeSelector).toEqual({ [ipLabel]: 'true' });
      expect(pod.containers[0]!.command.at(-1)).toBe('services/sender/dist/main.js');
      const port = Number(env.MOAT_ADMIN_PORT);
      expect(pod.containers[0]!.ports?.find((p) => p.name === 'admin')?.containerPort).toBe(port);
      expect(adminPorts.has(port)).toBe(false);
      adminPorts.add(port);
      // On the node's network the admin server stays on loopback; the kubelet probes it there.
      expect(env.MOAT_ADMIN_HOST).toBe('127.0.0.1');
    }
  });

  it('when migrations are due, then a Job runs the migration entry point once', () => {
    const jobs = deployed.filter(({ doc }) => doc.kind === 'Job').map(({ doc }) => doc as unknown as { spec: { template: { spec: { restartPolicy: string; containers: ContainerDoc[] } } } });
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.spec.template.spec.containers[0]!.command.at(-1)).toBe('services/supervisor/dist/migrate.js');
    expect(jobs[0]!.spec.template.spec.restartPolicy).toBe('OnFailure');
  });
});
