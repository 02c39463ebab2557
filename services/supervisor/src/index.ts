export { configSchema, serviceKinds, statelessServices, type Config, type ServiceKind } from './config.js';
export { parseSenders, senderProcessName, type SenderSpec } from './senders.js';
export { decideRestart, backoffDelay, type RestartPolicy, type RestartDecision } from './backoff.js';
export { ProcessManager, type ProcessSpec, type ManagerEvent } from './process-manager.js';
export { planProcesses, type PlannedProcess } from './plan.js';
export { preflight, dependenciesOf, formatPreflightReport, redactUrl } from './preflight.js';
export { resolveSecrets, type ResolvedSecrets } from './secrets.js';
export { startSupervisor, StartupFailed, type Supervisor, type SupervisorIo } from './supervisor.js';
export { runMigrations } from './migrations.js';
