/** The console's only way to the server: /api/v1 with the signed-in key as a bearer token. */

export interface Problem {
  status: number;
  title: string;
  detail: string;
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail || problem.title);
  }
  get status(): number {
    return this.problem.status;
  }
}

export class Api {
  constructor(private readonly token: string) {}

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: 'application/json, application/problem+json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store' });
    } catch (err) {
      throw new ApiError({ status: 0, title: 'Network error', detail: `the gateway did not answer: ${(err as Error).message}` });
    }
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!res.ok) {
      const p = (parsed ?? {}) as Partial<Problem>;
      throw new ApiError({ status: res.status, title: p.title ?? res.statusText, detail: p.detail ?? text.slice(0, 300) });
    }
    return parsed as T;
  }
}

export interface Me {
  keyId: string;
  name: string;
  role: 'operator' | 'partner' | 'tenant';
  partnerId: string | null;
  tenantId: string | null;
  tenantName: string | null;
  scopes: string[];
}

export interface Tenant {
  id: string;
  name: string;
}

export interface QuarantineItem {
  messageId: string;
  tenantId: string;
  receivedAt: string;
  quarantinedAt: string;
  expiresAt: string;
  direction: string;
  mailFrom: string;
  rcpts: string[];
  from: string | null;
  to: string | null;
  subject: string | null;
  size: number;
  category: 'virus' | 'spoofing' | 'spam' | 'policy';
  reasons: string[];
  score: number;
  state: 'quarantined' | 'released' | 'deleted' | 'expired';
  stateChangedAt: string | null;
  stateChangedBy: string | null;
  hasPreview: boolean;
}

export interface ArchiveEntry {
  messageId: string;
  receivedAt: string;
  direction: 'inbound' | 'outbound';
  mailFrom: string;
  rcpts: string[];
  from: string | null;
  to: string | null;
  subject: string | null;
}

export interface SpamFeedbackResult {
  messageId: string;
  tenantId: string;
  label: 'spam' | 'ham';
  previousLabel: 'spam' | 'ham' | null;
  recorded: boolean;
}

export interface QuarantineDetail extends QuarantineItem {
  preview: { text: string; truncated: boolean; source: string; attachments: Array<{ filename: string | null; mimeType: string; size: number }> } | null;
  previewUnavailable: string | null;
}

export interface QuarantineAction extends QuarantineItem {
  alreadyDone: boolean;
}
