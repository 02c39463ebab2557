import type { PlannedProcess } from './plan.js';
import type { ResolvedSecret, ResolvedSecrets } from './secrets.js';

export interface BannerInput {
  plan: readonly PlannedProcess[];
  smtpPort: number;
  /** The submission port (STARTTLS + AUTH); -1 or absent: not shown. */
  submissionPort?: number;
  httpPort: number;
  bootstrapToken: ResolvedSecret;
  /** How to show a file path to the operator (relative to where they stand). */
  showPath: (path: string) => string;
}

/** How to hand the operator token to curl: the file it is in, or the variable it came from. */
export function tokenExpression(token: ResolvedSecret, showPath: (path: string) => string): string {
  return token.file === null ? '$MOAT_BOOTSTRAP_TOKEN' : `$(cat ${showPath(token.file)})`;
}

/** The lines printed once every service is ready: where the stack answers and how to use it. */
export function readyBanner(input: BannerInput): string[] {
  const kinds = new Set(input.plan.map((p) => p.kind));
  const lines = ['Moat is ready:'];
  if (kinds.has('ingress')) {
    lines.push(`  SMTP (MX)      127.0.0.1:${input.smtpPort}   e.g. swaks --server 127.0.0.1:${input.smtpPort} --to someone@<protected domain>`);
    if (input.submissionPort !== undefined && input.submissionPort > 0) {
      const p = input.submissionPort;
      lines.push(`  submission     127.0.0.1:${p}   e.g. swaks --server 127.0.0.1:${p} -tls --auth-user <SMTP credential> --from you@<protected domain> --to someone@example.com`);
    }
  }
  if (kinds.has('gateway')) {
    const base = `http://127.0.0.1:${input.httpPort}`;
    lines.push(`  API and web    ${base}   (OpenAPI: ${base}/api/v1/openapi.json)`);
    lines.push(`  operator token ${describeToken(input.bootstrapToken, input.showPath)}`);
    lines.push(`    curl -H "Authorization: Bearer ${tokenExpression(input.bootstrapToken, input.showPath)}" ${base}/api/v1/tenants`);
  }
  lines.push(`  admin ports    ${input.plan.map((p) => `${p.name} ${p.adminPort}`).join(', ')}   (/livez, /readyz)`);
  lines.push('  stop with Ctrl-C (or kill -TERM the supervisor): services drain, then exit');
  return lines;
}

export function describeToken(token: ResolvedSecret, showPath: (path: string) => string): string {
  switch (token.source) {
    case 'environment':
      return 'from MOAT_BOOTSTRAP_TOKEN';
    case 'file':
      return `in ${showPath(token.file ?? '')} (dev token, created on an earlier start)`;
    case 'generated':
      return `in ${showPath(token.file ?? '')} (dev token, generated now; mode 0600)`;
  }
}

/** Lines about where the secrets came from, printed at start-up. */
export function secretsNotice(secrets: Pick<ResolvedSecrets, 'masterKey' | 'bootstrapToken'>, showPath: (path: string) => string): string[] {
  const lines: string[] = [];
  const key = secrets.masterKey;
  if (key.source === 'generated') {
    lines.push(`generated a dev master key in ${showPath(key.file ?? '')} (mode 0600): keep it, stored messages cannot be read without it`);
  } else if (key.source === 'file') {
    lines.push(`using the dev master key in ${showPath(key.file ?? '')}`);
  }
  const token = secrets.bootstrapToken;
  if (token.source !== 'environment') lines.push(`operator token ${describeToken(token, showPath)}`);
  return lines;
}
