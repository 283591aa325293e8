// A small typed wrapper over the generated openapi-fetch client: one method
// per route, pages followed by async iterators, problem documents thrown as
// TenantgateError. Results keep the wire's field names (snake_case, as in
// internal/gateway/openapi.yaml); options are camelCase.

import createClient, { type Client } from "openapi-fetch";

import {
  InvalidResponseError,
  NetworkError,
  TenantgateError,
  errorFromResponse,
} from "./errors.js";
import type { components, paths } from "./generated/schema.js";

type Schemas = components["schemas"];
type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;

export type Permission = Schemas["Permission"];
export type Role = Schemas["Role"];
export type MembershipStatus = Schemas["Membership"]["status"];
export type Membership = Schemas["Membership"];
export type Explanation = Schemas["Explanation"];
export type CompanyWritten = Schemas["CompanyWritten"];

export type CheckResult = JsonOf<paths["/v1/check"]["post"]["responses"][200]>;
export type BulkCheckResult = JsonOf<paths["/v1/check/bulk"]["post"]["responses"][200]>;
export type CompanyPage = JsonOf<paths["/v1/companies"]["get"]["responses"][200]>;
export type Company = CompanyPage["companies"][number];
export type PermissionsResult = JsonOf<paths["/v1/companies/{id}/permissions"]["get"]["responses"][200]>;
export type MembersResult = JsonOf<paths["/v1/companies/{id}/members"]["get"]["responses"][200]>;
export type Member = MembersResult["members"][number];
export type MembershipWritten = JsonOf<paths["/v1/companies/{id}/members/{user}"]["put"]["responses"][200]>;
export type AuditPage = JsonOf<paths["/v1/companies/{id}/audit"]["get"]["responses"][200]>;
export type AuditEntry = AuditPage["entries"][number];

export type AuthZENSubject = Schemas["AuthZENSubject"];
export type AuthZENResource = Schemas["AuthZENResource"];
export type AuthZENAction = Schemas["AuthZENAction"];
export type AuthZENContext = Schemas["AuthZENContext"];
export type AuthZENEvaluation = Schemas["AuthZENEvaluation"];
export type AuthZENEvaluationsRequest = Schemas["AuthZENEvaluations"];
export type AuthZENDecision = Schemas["AuthZENDecision"];
export type AuthZENEvaluationsResponse = Schemas["AuthZENEvaluationsResponse"];
export type AuthZENSearchedEntity = Schemas["AuthZENSearchedEntity"];
export type AuthZENResourceResult = Schemas["AuthZENResourceResult"];
export type AuthZENSubjectResult = Schemas["AuthZENSubjectResult"];
export type AuthZENActionResult = Schemas["AuthZENActionResult"];
export type AuthZENConfiguration = Schemas["AuthZENConfiguration"];

/** The six permissions, in the order the gateway documents them. */
export const PERMISSIONS: readonly Permission[] = ["read", "update", "create", "delete", "manage_members", "manage_owners"];

export interface TenantgateClientOptions {
  /** The gateway's URL, e.g. "http://localhost:8080" (no trailing path). */
  baseUrl: string;
  /**
   * The bearer token: a user's JWT (user mode), or the gateway's service
   * token (service mode: checks name the user in `subject`). A function is
   * called before every request, so it may refresh the token.
   */
  token: string | (() => string | Promise<string>);
  /** Timeout of one request in milliseconds (default 10000). */
  timeoutMs?: number;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: (input: Request) => Promise<Response>;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

export interface CallOptions {
  /** Aborts the request; it then fails with NetworkError. */
  signal?: AbortSignal;
  /** Sent as X-Request-ID; the gateway echoes it and logs it. */
  requestId?: string;
}

export interface ReadOptions extends CallOptions {
  /**
   * Answer from data at least as fresh as this: the `consistency_token` of
   * a write (a Postgres WAL position) or of an earlier answer (a ZedToken).
   */
  consistencyToken?: string;
}

export interface CheckRequest extends ReadOptions {
  permission: Permission;
  company: string;
  /** Service mode only: the user checked. A user token must not send it (403). */
  subject?: string;
  /** Also answer with `explanation`. */
  explain?: boolean;
}

export interface BulkCheckRequest extends ReadOptions {
  checks: { permission: Permission; company: string }[];
  /** Service mode only: the user checked. */
  subject?: string;
}

export interface PermissionsRequest extends ReadOptions {
  company: string;
  /** Also answer with `explanations`, one per permission. */
  explain?: boolean;
}

export interface CompaniesRequest extends ReadOptions {
  /** Default "read". */
  permission?: Permission;
  /** Companies per request (the gateway's default is 100, its maximum 1000). */
  pageSize?: number;
}

export interface CompaniesPageRequest extends CompaniesRequest {
  /** The next_cursor of the previous page. */
  cursor?: string;
}

export interface CreateCompanyRequest extends CallOptions {
  name: string;
  /** Without it the gateway generates one. */
  id?: string;
  /** A child needs `create` on its parent. */
  parentId?: string;
}

export interface PatchCompanyRequest extends CallOptions {
  name?: string;
  /** null makes the company a root. */
  parentId?: string | null;
}

export interface MembersRequest extends ReadOptions {
  /** Everyone who can read the company, with the strongest role that reaches it. */
  effective?: boolean;
}

export interface PutMemberRequest extends CallOptions {
  role: Role;
  /** Default "active". */
  status?: MembershipStatus;
}

export interface AuditRequest extends CallOptions {
  pageSize?: number;
}

export interface AuditPageRequest extends AuditRequest {
  cursor?: string;
}

export interface ResourceSearchRequest extends ReadOptions {
  subject: AuthZENSubject;
  action: AuthZENAction;
  /** Default {type: "company"}. */
  resource?: AuthZENSearchedEntity;
  pageSize?: number;
}

export interface SubjectSearchRequest extends ReadOptions {
  /** Default {type: "user"}. */
  subject?: AuthZENSearchedEntity;
  action: AuthZENAction;
  resource: AuthZENResource;
  pageSize?: number;
}

export interface ActionSearchRequest extends ReadOptions {
  subject: AuthZENSubject;
  resource: AuthZENResource;
  pageSize?: number;
}

/** An AuthZEN search page, as the gateway answers it. */
export interface SearchPage<T> {
  page: { next_token: string; count: number };
  context?: { consistency_token?: string };
  results: T[];
}

interface Init {
  headers: Record<string, string>;
  signal: AbortSignal;
}

interface Answer<D> {
  data?: D;
  error?: unknown;
  response: Response;
}

/** Most pages any iterator follows; a gateway that never ends a listing is an error, not a hang. */
const MAX_PAGES = 100_000;

/**
 * A client of one tenantgate gateway for one bearer token.
 *
 * ```ts
 * const tg = new TenantgateClient({ baseUrl: "http://localhost:8080", token: userJwt });
 * if ((await tg.check({ permission: "update", company: "acme" })).allowed) { ... }
 * for await (const company of tg.companies({ permission: "read", pageSize: 100 })) { ... }
 * ```
 *
 * Every method either returns the gateway's success answer, checked against
 * the contract, or throws a TenantgateError; `allowed` and `decision` are
 * true only when the gateway said so.
 */
export class TenantgateClient {
  /** The generated openapi-fetch client, for anything the wrapper does not cover. */
  readonly api: Client<paths>;
  private readonly token: TenantgateClientOptions["token"];
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;

  constructor(options: TenantgateClientOptions) {
    if (!options.baseUrl) throw new TypeError("tenantgate: baseUrl is required");
    if (!options.token) throw new TypeError("tenantgate: token is required");
    this.api = createClient<paths>({
      baseUrl: options.baseUrl.replace(/\/+$/, ""),
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.headers = { ...options.headers };
  }

  // ---- checks ------------------------------------------------------------

  /** POST /v1/check: may the caller (or `subject`, in service mode) do `permission` on `company`? */
  async check(req: CheckRequest): Promise<CheckResult> {
    const data = await this.json("POST /v1/check", req, (init) =>
      this.api.POST("/v1/check", {
        ...init,
        body: {
          permission: req.permission,
          company: req.company,
          ...(req.subject !== undefined ? { subject: req.subject } : {}),
          ...(req.explain !== undefined ? { explain: req.explain } : {}),
          ...(req.consistencyToken !== undefined ? { consistency_token: req.consistencyToken } : {}),
        },
      }),
    );
    expect(isObject(data) && typeof data.allowed === "boolean", "POST /v1/check", "allowed is not a boolean");
    expect(typeof data.consistency_token === "string", "POST /v1/check", "no consistency_token");
    expect(!req.explain || isObject(data.explanation), "POST /v1/check", "no explanation");
    return data;
  }

  /** POST /v1/check/bulk: many checks at once, answered in request order (all or none). */
  async checkBulk(req: BulkCheckRequest): Promise<BulkCheckResult> {
    const data = await this.json("POST /v1/check/bulk", req, (init) =>
      this.api.POST("/v1/check/bulk", {
        ...init,
        body: {
          checks: req.checks.map((c) => ({ permission: c.permission, company: c.company })),
          ...(req.subject !== undefined ? { subject: req.subject } : {}),
          ...(req.consistencyToken !== undefined ? { consistency_token: req.consistencyToken } : {}),
        },
      }),
    );
    expect(isObject(data) && Array.isArray(data.results), "POST /v1/check/bulk", "no results");
    expect(data.results.length === req.checks.length, "POST /v1/check/bulk", "not one result per check");
    data.results.forEach((r, i) =>
      expect(
        isObject(r) && typeof r.allowed === "boolean" && r.company === req.checks[i]?.company && r.permission === req.checks[i]?.permission,
        "POST /v1/check/bulk",
        `result ${i} does not answer check ${i}`,
      ),
    );
    expect(typeof data.consistency_token === "string", "POST /v1/check/bulk", "no consistency_token");
    return data;
  }

  /** GET /v1/companies/{id}/permissions: the caller's six permissions on one company (user mode only). */
  async permissions(req: PermissionsRequest): Promise<PermissionsResult> {
    const data = await this.json("GET /v1/companies/{id}/permissions", req, (init) =>
      this.api.GET("/v1/companies/{id}/permissions", {
        ...init,
        params: { path: { id: req.company }, query: req.explain ? { explain: true } : {} },
      }),
    );
    expect(isObject(data) && isObject(data.permissions), "GET /v1/companies/{id}/permissions", "no permissions");
    for (const p of PERMISSIONS) {
      expect(typeof data.permissions[p] === "boolean", "GET /v1/companies/{id}/permissions", `permission ${p} is not a boolean`);
    }
    expect(typeof data.consistency_token === "string", "GET /v1/companies/{id}/permissions", "no consistency_token");
    expect(!req.explain || isObject(data.explanations), "GET /v1/companies/{id}/permissions", "no explanations");
    return data;
  }

  // ---- lists -------------------------------------------------------------

  /** GET /v1/companies: one page of the companies the caller holds `permission` on (user mode only). */
  async companiesPage(req: CompaniesPageRequest = {}): Promise<CompanyPage> {
    const query: { permission?: Permission; limit?: number; cursor?: string } = {};
    if (req.permission !== undefined) query.permission = req.permission;
    if (req.pageSize !== undefined) query.limit = req.pageSize;
    if (req.cursor !== undefined && req.cursor !== "") query.cursor = req.cursor;
    const data = await this.json("GET /v1/companies", req, (init) =>
      this.api.GET("/v1/companies", { ...init, params: { query } }),
    );
    expect(isObject(data) && Array.isArray(data.companies), "GET /v1/companies", "no companies");
    for (const c of data.companies) {
      expect(isObject(c) && typeof c.id === "string", "GET /v1/companies", "a company without an id");
    }
    expect(data.next_cursor === undefined || typeof data.next_cursor === "string", "GET /v1/companies", "next_cursor is not a string");
    return data;
  }

  /** Every page of GET /v1/companies, following next_cursor until it is absent. */
  async *companyPages(req: CompaniesRequest = {}): AsyncGenerator<CompanyPage, void, undefined> {
    let cursor: string | undefined;
    const seen = new Set<string>();
    for (let n = 0; n < MAX_PAGES; n++) {
      const page = await this.companiesPage({ ...req, ...(cursor !== undefined ? { cursor } : {}) });
      yield page;
      if (!page.next_cursor) return;
      expect(!seen.has(page.next_cursor), "GET /v1/companies", "a cursor came back twice");
      seen.add(page.next_cursor);
      cursor = page.next_cursor;
    }
    expect(false, "GET /v1/companies", `the listing did not end within ${MAX_PAGES} pages`);
  }

  /**
   * Every company the caller holds `permission` on (default read), sorted by
   * ID, fetched page by page as the loop asks for them:
   * `for await (const c of client.companies({ permission: "read", pageSize: 100 }))`.
   */
  async *companies(req: CompaniesRequest = {}): AsyncGenerator<Company, void, undefined> {
    for await (const page of this.companyPages(req)) yield* page.companies;
  }

  // ---- management --------------------------------------------------------

  /** POST /v1/companies: create a company; the caller becomes its active owner. */
  async createCompany(req: CreateCompanyRequest): Promise<CompanyWritten> {
    const data = await this.json("POST /v1/companies", req, (init) =>
      this.api.POST("/v1/companies", {
        ...init,
        body: {
          name: req.name,
          ...(req.id !== undefined ? { id: req.id } : {}),
          ...(req.parentId !== undefined ? { parent_id: req.parentId } : {}),
        },
      }),
    );
    return checkCompanyWritten(data, "POST /v1/companies");
  }

  /** PATCH /v1/companies/{id}: rename and/or move (parentId null: make it a root). */
  async patchCompany(id: string, req: PatchCompanyRequest): Promise<CompanyWritten> {
    const body: { name?: string; parent_id?: string | null } = {};
    if (req.name !== undefined) body.name = req.name;
    if (req.parentId !== undefined) body.parent_id = req.parentId;
    const data = await this.json("PATCH /v1/companies/{id}", req, (init) =>
      this.api.PATCH("/v1/companies/{id}", { ...init, params: { path: { id } }, body }),
    );
    return checkCompanyWritten(data, "PATCH /v1/companies/{id}");
  }

  /** GET /v1/companies/{id}/members: direct memberships, or with `effective` everyone who can read it. */
  async members(company: string, req: MembersRequest = {}): Promise<Member[]> {
    const data = await this.json("GET /v1/companies/{id}/members", req, (init) =>
      this.api.GET("/v1/companies/{id}/members", {
        ...init,
        params: { path: { id: company }, query: req.effective ? { effective: true } : {} },
      }),
    );
    expect(isObject(data) && Array.isArray(data.members), "GET /v1/companies/{id}/members", "no members");
    return data.members;
  }

  /** PUT /v1/companies/{id}/members/{user}: give `user` a role (and status) in `company`. */
  async putMember(company: string, user: string, req: PutMemberRequest): Promise<MembershipWritten> {
    const data = await this.json("PUT /v1/companies/{id}/members/{user}", req, (init) =>
      this.api.PUT("/v1/companies/{id}/members/{user}", {
        ...init,
        params: { path: { id: company, user } },
        body: { role: req.role, ...(req.status !== undefined ? { status: req.status } : {}) },
      }),
    );
    expect(isObject(data) && data.user_id === user && data.company_id === company, "PUT /v1/companies/{id}/members/{user}", "not the membership written");
    expect(typeof data.consistency_token === "string", "PUT /v1/companies/{id}/members/{user}", "no consistency_token");
    return data;
  }

  /** DELETE /v1/companies/{id}/members/{user}: remove a membership, or leave. */
  async deleteMember(company: string, user: string, opts: CallOptions = {}): Promise<{ consistency_token: string }> {
    const where = "DELETE /v1/companies/{id}/members/{user}";
    const { response } = await this.send(where, opts, (init) =>
      this.api.DELETE("/v1/companies/{id}/members/{user}", { ...init, params: { path: { id: company, user } } }),
    );
    const token = response.headers.get("Consistency-Token");
    expect(token !== null && token !== "", where, "no Consistency-Token header");
    return { consistency_token: token };
  }

  /** GET /v1/companies/{id}/audit: one page of the company's management decisions, newest first. */
  async auditPage(company: string, req: AuditPageRequest = {}): Promise<AuditPage> {
    const query: { limit?: number; cursor?: string } = {};
    if (req.pageSize !== undefined) query.limit = req.pageSize;
    if (req.cursor !== undefined && req.cursor !== "") query.cursor = req.cursor;
    const data = await this.json("GET /v1/companies/{id}/audit", req, (init) =>
      this.api.GET("/v1/companies/{id}/audit", { ...init, params: { path: { id: company }, query } }),
    );
    expect(isObject(data) && Array.isArray(data.entries), "GET /v1/companies/{id}/audit", "no entries");
    return data;
  }

  /** Every audit entry of the company, newest first, following next_cursor. */
  async *audit(company: string, req: AuditRequest = {}): AsyncGenerator<AuditEntry, void, undefined> {
    let cursor: string | undefined;
    const seen = new Set<string>();
    for (let n = 0; n < MAX_PAGES; n++) {
      const page = await this.auditPage(company, { ...req, ...(cursor !== undefined ? { cursor } : {}) });
      yield* page.entries;
      if (!page.next_cursor) return;
      expect(!seen.has(page.next_cursor), "GET /v1/companies/{id}/audit", "a cursor came back twice");
      seen.add(page.next_cursor);
      cursor = page.next_cursor;
    }
    expect(false, "GET /v1/companies/{id}/audit", `the listing did not end within ${MAX_PAGES} pages`);
  }

  // ---- AuthZEN -----------------------------------------------------------

  /** POST /access/v1/evaluation: one AuthZEN decision. */
  async evaluate(req: AuthZENEvaluation, opts: ReadOptions = {}): Promise<AuthZENDecision> {
    const data = await this.json("POST /access/v1/evaluation", opts, (init) =>
      this.api.POST("/access/v1/evaluation", { ...init, body: req }),
    );
    expect(isObject(data) && typeof data.decision === "boolean", "POST /access/v1/evaluation", "decision is not a boolean");
    return data;
  }

  /**
   * POST /access/v1/evaluations: many AuthZEN decisions. An answer to a
   * request without items (a single decision) comes back as one item.
   */
  async evaluateMany(req: AuthZENEvaluationsRequest, opts: ReadOptions = {}): Promise<AuthZENEvaluationsResponse> {
    const where = "POST /access/v1/evaluations";
    const data: unknown = await this.json(where, opts, (init) =>
      this.api.POST("/access/v1/evaluations", { ...init, body: req }),
    );
    expect(isObject(data), where, "not an object");
    if (Array.isArray(data.evaluations)) {
      const items = req.evaluations?.length ?? 0;
      const semantic = req.options?.evaluations_semantic ?? "execute_all";
      expect(
        semantic === "execute_all" ? data.evaluations.length === items : data.evaluations.length <= items,
        where,
        "not one decision per item",
      );
      for (const d of data.evaluations) expect(isObject(d) && typeof d.decision === "boolean", where, "decision is not a boolean");
      return data as AuthZENEvaluationsResponse;
    }
    expect(!req.evaluations?.length && typeof data.decision === "boolean", where, "no evaluations");
    return { evaluations: [data as AuthZENDecision] };
  }

  /** POST /access/v1/search/resource: one page of the companies `subject` may do `action` on. */
  async searchResourcesPage(req: ResourceSearchRequest & { pageToken?: string }): Promise<SearchPage<AuthZENResourceResult>> {
    return this.searchPage("POST /access/v1/search/resource", req, (init, page) =>
      this.api.POST("/access/v1/search/resource", {
        ...init,
        body: { subject: req.subject, action: req.action, resource: req.resource ?? { type: "company" }, page },
      }),
    );
  }

  /** Every company `subject` may do `action` on (AuthZEN resource search), following next_token. */
  searchResources(req: ResourceSearchRequest): AsyncGenerator<AuthZENResourceResult, void, undefined> {
    return this.follow((token) => this.searchResourcesPage({ ...req, ...(token ? { pageToken: token } : {}) }));
  }

  /** POST /access/v1/search/subject: one page of the users who may do `action` on a company. */
  async searchSubjectsPage(req: SubjectSearchRequest & { pageToken?: string }): Promise<SearchPage<AuthZENSubjectResult>> {
    return this.searchPage("POST /access/v1/search/subject", req, (init, page) =>
      this.api.POST("/access/v1/search/subject", {
        ...init,
        body: { subject: req.subject ?? { type: "user" }, action: req.action, resource: req.resource, page },
      }),
    );
  }

  /** Every user who may do `action` on the company (AuthZEN subject search), following next_token. */
  searchSubjects(req: SubjectSearchRequest): AsyncGenerator<AuthZENSubjectResult, void, undefined> {
    return this.follow((token) => this.searchSubjectsPage({ ...req, ...(token ? { pageToken: token } : {}) }));
  }

  /** POST /access/v1/search/action: one page of the permissions `subject` holds on a company. */
  async searchActionsPage(req: ActionSearchRequest & { pageToken?: string }): Promise<SearchPage<AuthZENActionResult>> {
    return this.searchPage("POST /access/v1/search/action", req, (init, page) =>
      this.api.POST("/access/v1/search/action", {
        ...init,
        body: { subject: req.subject, resource: req.resource, page },
      }),
    );
  }

  /** Every permission `subject` holds on the company (AuthZEN action search). */
  searchActions(req: ActionSearchRequest): AsyncGenerator<AuthZENActionResult, void, undefined> {
    return this.follow((token) => this.searchActionsPage({ ...req, ...(token ? { pageToken: token } : {}) }));
  }

  /** GET /.well-known/authzen-configuration: the PDP metadata. */
  async authzenConfiguration(opts: CallOptions = {}): Promise<AuthZENConfiguration> {
    const where = "GET /.well-known/authzen-configuration";
    const data = await this.json(where, opts, (init) => this.api.GET("/.well-known/authzen-configuration", { ...init }));
    expect(isObject(data) && typeof data.access_evaluation_endpoint === "string", where, "no access_evaluation_endpoint");
    return data;
  }

  // ---- plumbing ----------------------------------------------------------

  private async searchPage<T>(
    where: string,
    req: ReadOptions & { pageSize?: number; pageToken?: string },
    call: (init: Init, page: { limit?: number; token?: string }) => Promise<Answer<unknown>>,
  ): Promise<SearchPage<T>> {
    const page: { limit?: number; token?: string } = {};
    if (req.pageSize !== undefined) page.limit = req.pageSize;
    if (req.pageToken) page.token = req.pageToken;
    const data = await this.json(where, req, (init) => call(init, page));
    expect(isObject(data) && isObject(data.page) && Array.isArray(data.results), where, "no page or results");
    expect(typeof data.page.next_token === "string", where, "page.next_token is not a string");
    return data as unknown as SearchPage<T>;
  }

  private async *follow<T>(get: (token: string | undefined) => Promise<SearchPage<T>>): AsyncGenerator<T, void, undefined> {
    let token: string | undefined;
    const seen = new Set<string>();
    for (let n = 0; n < MAX_PAGES; n++) {
      const page = await get(token);
      yield* page.results;
      if (!page.page.next_token) return;
      expect(!seen.has(page.page.next_token), "AuthZEN search", "a page token came back twice");
      seen.add(page.page.next_token);
      token = page.page.next_token;
    }
    expect(false, "AuthZEN search", `the search did not end within ${MAX_PAGES} pages`);
  }

  /** send, for a route whose success answer must have a JSON body. */
  private async json<D>(where: string, opts: ReadOptions, call: (init: Init) => Promise<Answer<D>>): Promise<D> {
    const { data } = await this.send(where, opts, call);
    expect(data !== undefined && data !== null, where, "empty answer");
    return data;
  }

  /** Runs one request with the bearer, timeout and headers; throws unless the answer is a 2xx. */
  private async send<D>(where: string, opts: ReadOptions, call: (init: Init) => Promise<Answer<D>>): Promise<{ data: D | undefined; response: Response }> {
    const [method, path] = split(where);
    const token = typeof this.token === "function" ? await this.token() : this.token;
    const headers: Record<string, string> = { ...this.headers, Authorization: `Bearer ${token}` };
    if (opts.requestId !== undefined) headers["X-Request-ID"] = opts.requestId;
    if (opts.consistencyToken !== undefined && method === "GET") headers["Consistency-Token"] = opts.consistencyToken;
    if (opts.consistencyToken !== undefined && path.startsWith("/access/")) headers["Consistency-Token"] = opts.consistencyToken;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let answer: Answer<D>;
    try {
      answer = await call({ headers, signal });
    } catch (cause) {
      if (cause instanceof TenantgateError) throw cause;
      if (cause instanceof SyntaxError) {
        throw new InvalidResponseError({ kind: "invalid_response", status: 0, title: "answer is not JSON", detail: cause.message, method, path, cause });
      }
      throw new NetworkError({ kind: "network", status: 0, title: describe(cause), method, path, cause });
    }
    const { response } = answer;
    if (!response.ok) throw errorFromResponse(response, answer.error, method, path);
    return { data: answer.data, response };
  }
}

function checkCompanyWritten(data: CompanyWritten, where: string): CompanyWritten {
  expect(isObject(data) && typeof data.id === "string" && typeof data.name === "string", where, "no id or name");
  expect(typeof data.consistency_token === "string" && data.consistency_token !== "", where, "no consistency_token");
  return data;
}

function split(where: string): [string, string] {
  const i = where.indexOf(" ");
  return [where.slice(0, i), where.slice(i + 1)];
}

function describe(cause: unknown): string {
  if (cause instanceof Error) {
    if (cause.name === "TimeoutError") return "request timed out";
    if (cause.name === "AbortError") return "request aborted";
    const inner = (cause as { cause?: unknown }).cause;
    const code = isObject(inner) && typeof inner.code === "string" ? ` (${inner.code})` : "";
    return `${cause.message}${code}`;
  }
  return String(cause);
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Throws InvalidResponseError unless cond: an answer that breaks the contract is never used. */
function expect(cond: boolean, where: string, what: string): asserts cond {
  if (cond) return;
  const [method, path] = split(where);
  throw new InvalidResponseError({ kind: "invalid_response", status: 0, title: "answer breaks the contract", detail: what, method, path });
}
