import type { Pool } from '@moat/runtime';
import type { RetrySchedule } from '@moat/store';
import { ApiKeyRepository, ArchiveRepository, AuditLog, DigestLinkRepository, DkimKeyRepository, FilterPolicyRepository, OutboundIpRepository, ParkedRepository, PoolRepository, QuarantineRepository, QueueControlRepository, SmtpCredentialRepository, SmtpPolicyRepository, SpamLearningRepository, SubnetCheckRepository, TenantRepository, TrackingRepository } from '@moat/store';
import { MailboxRepository } from './data/mailboxes.js';
import { PartnerRepository } from './data/partners.js';

/** Everything the API reads and writes. */
export interface GatewayRepositories {
  tenants: TenantRepository;
  partners: PartnerRepository;
  mailboxes: MailboxRepository;
  apiKeys: ApiKeyRepository;
  audit: AuditLog;
  tracking: TrackingRepository;
  parked: ParkedRepository;
  archive: ArchiveRepository;
  quarantine: QuarantineRepository;
  spamLearning: SpamLearningRepository;
  digestLinks: DigestLinkRepository;
  pools: PoolRepository;
  subnetChecks: SubnetCheckRepository;
  queue: QueueControlRepository;
  dkimKeys: DkimKeyRepository;
  smtpCredentials: SmtpCredentialRepository;
  outboundIps: OutboundIpRepository;
  filterPolicies: FilterPolicyRepository;
  smtpPolicies: SmtpPolicyRepository;
}

/** `schedule`: the router's retry schedule, so that released and retried deliveries go at once. */
export function createRepositories(pool: Pool, schedule?: RetrySchedule): GatewayRepositories {
  return {
    tenants: new TenantRepository(pool),
    partners: new PartnerRepository(pool),
    mailboxes: new MailboxRepository(pool),
    apiKeys: new ApiKeyRepository(pool),
    audit: new AuditLog(pool),
    tracking: new TrackingRepository(pool),
    parked: new ParkedRepository(pool),
    archive: new ArchiveRepository(pool),
    quarantine: new QuarantineRepository(pool),
    spamLearning: new SpamLearningRepository(pool),
    digestLinks: new DigestLinkRepository(pool),
    pools: new PoolRepository(pool),
    subnetChecks: new SubnetCheckRepository(pool),
    queue: new QueueControlRepository(pool, schedule),
    dkimKeys: new DkimKeyRepository(pool),
    smtpCredentials: new SmtpCredentialRepository(pool),
    outboundIps: new OutboundIpRepository(pool),
    filterPolicies: new FilterPolicyRepository(pool),
    smtpPolicies: new SmtpPolicyRepository(pool),
  };
}
