/** A minimal client for the partner API, as a script or partner would use it. */
export class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async request(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; contentType: string }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (e.g. text/plain): keep the text
    }
    return { status: res.status, body: parsed, contentType: res.headers.get('content-type') ?? '' };
  }

  /** Creates a tenant and a protected domain routed to the given customer servers; returns ids. */
  async provision(tenantName: string, domains: Array<{ name: string; routes: Array<{ host: string; port: number; priority: number }> }>): Promise<{ tenantId: string; domainIds: string[] }> {
    const tenant = await this.request('POST', '/api/v1/tenants', { name: tenantName });
    if (tenant.status !== 201) throw new Error(`create tenant: ${tenant.status} ${JSON.stringify(tenant.body)}`);
    const domainIds: string[] = [];
    for (const d of domains) {
      const res = await this.request('POST', `/api/v1/tenants/${tenant.body.id}/domains`, d);
      if (res.status !== 201) throw new Error(`create domain: ${res.status} ${JSON.stringify(res.body)}`);
      domainIds.push(res.body.id);
    }
    return { tenantId: tenant.body.id, domainIds };
  }
}
