import { isIP } from 'node:net';
import type { Route, SubnetCheckRequestedPayload, SubnetCheckSource } from '@moat/contracts';
import { PermanentFailure, type DnsResolve, type Logger } from '@moat/runtime';
import { rangeContaining, type SubnetProbeResult, type TranscriptLine } from '@moat/store';
import { routeAddresses, RouteResolveError } from './route-addresses.js';
import { probeSmtp, type ProbeOutcome } from './subnet-probe.js';

/** What the handler needs of the subnet_check tables (SubnetCheckRepository fits). */
export interface SubnetCheckProbeStore {
  pendingProbes(checkId: string, source: SubnetCheckSource, pool: string | null): Promise<Array<{ id: string; route: Route }>>;
  recordResults(checkId: string, results: readonly SubnetProbeResult[]): Promise<number>;
}

export interface SubnetCheckHandlerOptions {
  checks: SubnetCheckProbeStore;
  /** Which requests this handler answers: its pool's, or the outsider's. */
  source: SubnetCheckSource;
  /** The pool served (source `pool`); null for the outsider. */
  pool: string | null;
  /** Where probes leave from: the sender's MOAT_SOURCE_IP, or MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS. */
  sourceAddress: string | undefined;
  ehloName: string;
  /** Bound on each step of a probe. */
  stepTimeoutMs: number;
  resolve: DnsResolve;
  log: Logger;
}

/** Time kept back from the deadline to write the results before the gateway calls them late. */
const writeMarginMs = 1_000;

/**
 * Why probes from this address would not answer the check's question, or null when they would:
 * - a pool's probe must leave from an address inside the pool's published ranges (else a pass
 *   says nothing about what the customer's firewall lets through);
 * - the outsider's must leave from an address in no published range (else it is no outsider).
 */
export function sourceProblem(req: Pick<SubnetCheckRequestedPayload, 'source' | 'pool' | 'cidrs'>, sourceAddress: string | undefined): string | null {
  if (req.source === 'pool') {
    if (!sourceAddress) return `this sender of pool ${req.pool} has no MOAT_SOURCE_IP: its connections leave from an address the OS picks, which may lie outside the pool's ranges`;
    if (rangeContaining(sourceAddress, req.cidrs) === null) {
      return `this sender's source address ${sourceAddress} is not in pool ${req.pool}'s ranges (${req.cidrs.join(', ') || 'none'}): fix MOAT_SENDERS or the pool's ranges`;
    }
    return null;
  }
  if (!sourceAddress) return 'no outsider address is configured on this sender (MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS)';
  const inside = rangeContaining(sourceAddress, req.cidrs);
  if (inside !== null) return `the outsider address ${sourceAddress} lies in the published range ${inside}: it is no outsider; configure an address outside every pool`;
  return null;
}

/**
 * The sender's consumer of subnet-check requests (one queue per pool, one for the outsider): it
 * probes each of the domain's routes that is still pending for this source, in parallel, from
 * the configured source address, and writes the results. Redelivered or late requests find
 * nothing pending and do nothing; a probe never sends DATA, so probing twice is harmless.
 */
export class SubnetCheckHandler {
  constructor(private readonly opts: SubnetCheckHandlerOptions) {}

  async handle(req: SubnetCheckRequestedPayload): Promise<void> {
    const { opts } = this;
    if (req.source !== opts.source || (req.source === 'pool' && req.pool !== opts.pool)) {
      throw new PermanentFailure(`a ${opts.source}${opts.pool ? ` ${opts.pool}` : ''} subnet-check consumer got a request for ${req.source}${req.pool ? ` ${req.pool}` : ''}`);
    }
    const deadline = Date.parse(req.deadline) - writeMarginMs;
    if (Date.now() >= deadline) {
      opts.log.info({ checkId: req.checkId, source: req.source, pool: req.pool }, 'subnet-check request arrived after its deadline; dropped');
      return;
    }
    const pending = await opts.checks.pendingProbes(req.checkId, req.source, req.pool);
    if (pending.length === 0) return;
    const problem = sourceProblem(req, opts.sourceAddress);
    const results: SubnetProbeResult[] = problem
      ? pending.map((p) => ({ id: p.id, status: 'error', sourceIp: opts.sourceAddress ?? null, remoteAddress: null, tls: null, failedStep: null, reply: null, latencyMs: null, error: problem, transcript: [] }))
      : await Promise.all(pending.map(async (p) => ({ id: p.id, ...(await this.probeRoute(p.route, req.domain, opts.sourceAddress!, deadline)) })));
    const written = await opts.checks.recordResults(req.checkId, results);
    opts.log.info(
      { checkId: req.checkId, source: req.source, pool: req.pool, sourceIp: opts.sourceAddress ?? null, written, results: results.map((r) => `${r.status}${r.failedStep ? `@${r.failedStep}` : ''}`).join(',') },
      'subnet-check probes finished',
    );
  }

  /**
   * Probes one route: each of its addresses in turn until one takes the TCP connection (as a
   * delivery would); the transcripts of every address tried are kept, in order.
   */
  private async probeRoute(route: Route, domain: string, sourceAddress: string, deadline: number): Promise<Omit<SubnetProbeResult, 'id'>> {
    const started = Date.now();
    let addresses: string[];
    try {
      addresses = await routeAddresses(route.host, sourceAddress, this.opts.resolve);
    } catch (err) {
      if (!(err instanceof RouteResolveError)) throw err;
      // The delivery would fail the same way: the customer's route is what is wrong.
      const transcript: TranscriptLine[] = [{ at: Date.now() - started, from: 'note', text: err.message }];
      return { status: 'fail', sourceIp: sourceAddress, remoteAddress: null, tls: null, failedStep: 'resolve', reply: null, latencyMs: Date.now() - started, error: err.message, transcript };
    }
    const transcript: TranscriptLine[] = [];
    let outcome: ProbeOutcome | null = null;
    for (const address of addresses) {
      const offset = Date.now() - started;
      outcome = await probeSmtp(
        { address, port: route.port, servername: isIP(route.host.replace(/^\[(.*)\]$/, '$1')) ? undefined : route.host },
        { localAddress: sourceAddress, ehloName: this.opts.ehloName, recipient: `postmaster@${domain}`, stepTimeoutMs: this.opts.stepTimeoutMs, deadline },
      );
      transcript.push(...outcome.transcript.map((l) => ({ ...l, at: l.at + offset })));
      const unreachable = outcome.status === 'fail' && outcome.failedStep === 'connect';
      if (!unreachable) break;
    }
    // The latency is that of the server that answered (the last address tried).
    const o = outcome!;
    return { status: o.status, sourceIp: o.sourceIp ?? sourceAddress, remoteAddress: o.remoteAddress, tls: o.tls, failedStep: o.failedStep, reply: o.reply, latencyMs: o.latencyMs, error: o.error, transcript };
  }
}
