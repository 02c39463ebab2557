import type { Express, Request, Response } from 'express';
import type { Broker, Logger } from '@moat/runtime';
import { isDangerous, verifyDigestLink, type AuditLog, type DigestLink, type DigestLinkRepository, type QuarantineRecord, type QuarantineRepository } from '@moat/store';
import { digestPageHeaders, renderDigestPage, type DigestPage } from './digest-pages.js';
import { ProblemError } from './problem.js';
import { releaseFromQuarantine } from './quarantine-release.js';

export interface DigestLinkDeps {
  /** MOAT_DIGEST_LINK_KEY, then MOAT_DIGEST_LINK_PREVIOUS_KEYS; null: digests are not enabled on this gateway (the pages answer 404). */
  keys: readonly Buffer[] | null;
  quarantine: Pick<QuarantineRepository, 'get' | 'release'>;
  links: Pick<DigestLinkRepository, 'claim' | 'markUsed' | 'giveBack' | 'state'>;
  audit: Pick<AuditLog, 'record'>;
  broker: Pick<Broker, 'publish' | 'envelope'>;
  log: Logger;
  /** How long a claimed link stays claimed by a request that never finished (then it may be used again). */
  claimLeaseMs?: number;
  now?: () => Date;
}

/** The path of a release link below MOAT_PUBLIC_URL. */
export const digestReleasePath = '/digest/release/:token';

type Resolved = { page: DigestPage } | { link: DigestLink; record: QuarantineRecord };

const page = (status: number, title: string, message: string, extra: Partial<DigestPage> = {}): { page: DigestPage } => ({ page: { status, title, message, ...extra } });

function summaryOf(record: QuarantineRecord, mailbox: string) {
  return { from: record.fromHeader ?? record.mailFrom, subject: record.subject, quarantinedAt: record.quarantinedAt, category: record.category, mailbox };
}

/**
 * What a link may do, decided the same way for GET and POST: a genuine, unexpired token, for a
 * message that exists, still lists the mailbox among its recipients, is spam or policy (virus and
 * spoofing: a tenant admin only, never from a digest), and is still waiting.
 */
export async function resolveDigestLink(deps: Pick<DigestLinkDeps, 'keys' | 'quarantine' | 'links' | 'now'>, token: string): Promise<Resolved> {
  if (!deps.keys || deps.keys.length === 0) return page(404, 'Not found', 'Quarantine digest links are not enabled on this server.');
  const check = verifyDigestLink(deps.keys, token, deps.now?.() ?? new Date());
  if (!check.ok) {
    if (check.reason === 'expired') return page(410, 'This link has expired', 'Release links from a quarantine digest work for a limited time. Ask your administrator if you still need the message.');
    return page(400, 'This link is not valid', 'The link is incomplete or was altered. Copy the whole link from the digest, or ask your administrator.');
  }
  const { link } = check;
  const record = await deps.quarantine.get(link.messageId);
  // Not one of the mailbox's messages (any more): answered as if it did not exist.
  if (!record || !record.rcpts.some((r) => r.toLowerCase() === link.mailbox)) return page(404, 'Message not found', 'This message is not in the quarantine for your mailbox.');
  if (isDangerous(record.category)) {
    return page(403, 'An administrator must release this message', `It was quarantined as ${record.category}, which only an administrator can release.`, { summary: summaryOf(record, link.mailbox) });
  }
  if ((await deps.links.state(link.nonce)) === 'used') return page(410, 'This link was already used', 'Each release link works once. If the message has not arrived, ask your administrator.', { summary: summaryOf(record, link.mailbox) });
  if (record.state === 'deleted' || record.state === 'expired') return page(410, 'This message is gone', `It was ${record.state} and can no longer be released.`, { summary: summaryOf(record, link.mailbox) });
  return { link, record };
}

/**
 * GET shows what the link is for and a confirmation form; it never releases anything: mail
 * clients and link scanners fetch links on their own. POST releases, once per link (the nonce is
 * claimed in the database before the release, so of two concurrent POSTs one releases and the
 * other answers 410), through the same exactly-once release as the API. No bearer token: the
 * signed link is the credential; these are the only routes outside /api/v1's authentication.
 */
export function mountDigestLinks(app: Express, deps: DigestLinkDeps): void {
  const leaseMs = deps.claimLeaseMs ?? 120_000;
  const send = (res: Response, p: DigestPage) => {
    for (const [name, value] of Object.entries(digestPageHeaders)) res.setHeader(name, value);
    res.status(p.status).type('text/html; charset=utf-8').send(renderDigestPage(p));
  };
  const tokenOf = (req: Request) => String(req.params.token ?? '');

  app.get(digestReleasePath, async (req, res) => {
    const resolved = await resolveDigestLink(deps, tokenOf(req));
    if ('page' in resolved) return send(res, resolved.page);
    const { link, record } = resolved;
    await deps.audit.record({ actor: `digest:${link.mailbox}`, action: 'quarantine.view', target: record.messageId, detail: { tenantId: record.tenantId, via: 'digest-link' } });
    if (record.state === 'released') return send(res, { status: 200, title: 'Already released', message: 'This message was released already; it is on its way to your mailbox.', summary: summaryOf(record, link.mailbox) });
    send(res, {
      status: 200,
      title: 'Release this message?',
      message: 'It will be delivered to your mailbox. Release it only if you expected it: quarantined mail is often fraudulent.',
      summary: summaryOf(record, link.mailbox),
      confirm: true,
    });
  });

  app.post(digestReleasePath, async (req, res) => {
    const resolved = await resolveDigestLink(deps, tokenOf(req));
    if ('page' in resolved) return send(res, resolved.page);
    const { link, record } = resolved;
    const summary = summaryOf(record, link.mailbox);
    if (!(await deps.links.claim({ nonce: link.nonce, messageId: link.messageId, mailbox: link.mailbox }, leaseMs))) {
      return send(res, { status: 410, title: 'This link was already used', message: 'Each release link works once. If the message has not arrived, ask your administrator.', summary });
    }
    let alreadyDone: boolean;
    try {
      ({ alreadyDone } = await releaseFromQuarantine(deps, record, `digest:${link.mailbox}`, { via: 'digest-link', nonce: link.nonce }));
    } catch (err) {
      // Nothing was released (or its publish failed): the link stays usable for another try.
      await deps.links.giveBack(link.nonce).catch(() => {});
      if (err instanceof ProblemError && err.status === 409) return send(res, { status: 410, title: 'This message cannot be released', message: err.detail, summary });
      deps.log.error({ err: (err as Error).message, messageId: record.messageId }, 'digest release failed');
      return send(res, { status: 503, title: 'Please try again', message: 'The message could not be released just now. Try the link again in a few minutes.', summary });
    }
    await deps.links.markUsed(link.nonce);
    send(res, {
      status: 200,
      title: alreadyDone ? 'Already released' : 'Released',
      message: alreadyDone ? 'This message was released already; it is on its way to your mailbox.' : 'The message is on its way to your mailbox.',
      summary,
    });
  });
}
