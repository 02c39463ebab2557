import { describe, expect, it } from 'vitest';
import { readyBanner, secretsNotice } from './banner.js';
import { planProcesses } from './plan.js';
import { parseSenders } from './senders.js';
import { serviceKinds } from './config.js';

const plan = planProcesses({
  services: serviceKinds,
  senders: parseSenders('default=127.0.0.1'),
  adminPortBase: 9101,
  servicesDir: '/r/services',
  nodePath: 'node',
  env: {},
  shared: {},
});
const showPath = (p: string) => p.replace('/r/', '');

describe('readyBanner', () => {
  it('when the token is a dev file, then the curl example reads it from the file', () => {
    const lines = readyBanner({ plan, smtpPort: 2525, httpPort: 8080, bootstrapToken: { value: 'x', source: 'generated', file: '/r/.moat/bootstrap-token' }, showPath });
    const text = lines.join('\n');
    expect(text).toContain('127.0.0.1:2525');
    expect(text).toContain('http://127.0.0.1:8080');
    expect(text).toContain('curl -H "Authorization: Bearer $(cat .moat/bootstrap-token)" http://127.0.0.1:8080/api/v1/tenants');
    expect(text).toContain('ingress 9101');
    expect(text).toContain('sender:default 9107');
    expect(text).not.toContain('x\n');
  });

  it('when the token comes from the environment, then the example uses the variable and never prints the token', () => {
    const text = readyBanner({ plan, smtpPort: 2525, httpPort: 8080, bootstrapToken: { value: 'op_secret_value_123', source: 'environment', file: null }, showPath }).join('\n');
    expect(text).toContain('Bearer $MOAT_BOOTSTRAP_TOKEN');
    expect(text).not.toContain('op_secret_value_123');
  });

  it('when the submission port is on, then the banner shows it with an AUTH example; -1 hides it', () => {
    const token = { value: 'x', source: 'generated' as const, file: '/r/.moat/bootstrap-token' };
    expect(readyBanner({ plan, smtpPort: 2525, submissionPort: 2587, httpPort: 8080, bootstrapToken: token, showPath }).join('\n')).toMatch(/submission +127\.0\.0\.1:2587 .*--auth-user/);
    expect(readyBanner({ plan, smtpPort: 2525, submissionPort: -1, httpPort: 8080, bootstrapToken: token, showPath }).join('\n')).not.toContain('submission');
  });
});

describe('secretsNotice', () => {
  it('when the master key was generated, then the notice says to keep it', () => {
    const lines = secretsNotice(
      { masterKey: { value: 'k', source: 'generated', file: '/r/.moat/master.key' }, bootstrapToken: { value: 't', source: 'file', file: '/r/.moat/bootstrap-token' } },
      showPath,
    );
    expect(lines[0]).toMatch(/generated a dev master key in \.moat\/master\.key .*keep it/);
    expect(lines[1]).toMatch(/operator token in \.moat\/bootstrap-token/);
  });
});
