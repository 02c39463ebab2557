import { join } from 'node:path';
import { statelessServices, type ServiceKind } from './config.js';
import type { ProcessSpec } from './process-manager.js';
import { senderProcessName, type SenderSpec } from './senders.js';

export interface PlannedProcess extends ProcessSpec {
  kind: ServiceKind;
  adminPort: number;
  /** The entry point the process runs. */
  script: string;
}

export interface PlanInput {
  services: readonly ServiceKind[];
  senders: readonly SenderSpec[];
  adminPortBase: number;
  /** Directory holding `<service>/dist/main.js`. */
  servicesDir: string;
  /** The node binary (process.execPath). */
  nodePath: string;
  /** Extra node flags for every service (profiling). */
  nodeArgs?: readonly string[];
  /** The environment every process inherits. */
  env: Record<string, string | undefined>;
  /** Variables set for every process on top of `env` (the resolved secrets). */
  shared: Record<string, string>;
}

/**
 * One process per stateless service and one per sender entry, each with its own admin port.
 * Ports are fixed per service (ingress = base, filter = base+1, …, gateway = base+5, then the
 * senders), whatever subset runs, so a port always means the same service.
 */
export function planProcesses(input: PlanInput): PlannedProcess[] {
  const inherited = withoutUndefined(input.env);
  // MOAT_ADMIN_PORT/MOAT_POOL/MOAT_SOURCE_IP are per process: never inherit the supervisor's.
  delete inherited.MOAT_ADMIN_PORT;
  delete inherited.MOAT_POOL;
  delete inherited.MOAT_SOURCE_IP;
  const planned: PlannedProcess[] = [];
  statelessServices.forEach((kind, index) => {
    if (!input.services.includes(kind)) return;
    const adminPort = input.adminPortBase + index;
    planned.push(processFor(kind, kind, adminPort, {}, input, inherited));
  });
  if (input.services.includes('sender')) {
    input.senders.forEach((sender, index) => {
      const adminPort = input.adminPortBase + statelessServices.length + index;
      planned.push(processFor('sender', senderProcessName(sender, input.senders), adminPort, { MOAT_POOL: sender.pool, MOAT_SOURCE_IP: sender.sourceIp }, input, inherited));
    });
  }
  const tooHigh = planned.find((p) => p.adminPort > 65_535);
  if (tooHigh) throw new RangeError(`admin port ${tooHigh.adminPort} for ${tooHigh.name} is above 65535: lower MOAT_ADMIN_PORT_BASE`);
  return planned;
}

function processFor(
  kind: ServiceKind,
  name: string,
  adminPort: number,
  own: Record<string, string>,
  input: PlanInput,
  inherited: Record<string, string>,
): PlannedProcess {
  const script = join(input.servicesDir, kind, 'dist', 'main.js');
  return {
    kind,
    name,
    adminPort,
    script,
    command: input.nodePath,
    // Source maps: stack traces in the output point at the TypeScript sources.
    args: ['--enable-source-maps', ...(input.nodeArgs ?? []), script],
    env: { ...inherited, ...input.shared, ...own, MOAT_ADMIN_PORT: String(adminPort) },
  };
}

function withoutUndefined(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** The planned processes whose entry point is not built. */
export function missingEntryPoints(plan: readonly PlannedProcess[], exists: (path: string) => boolean): PlannedProcess[] {
  const seen = new Set<string>();
  return plan.filter((p) => {
    if (seen.has(p.script)) return false;
    seen.add(p.script);
    return !exists(p.script);
  });
}
