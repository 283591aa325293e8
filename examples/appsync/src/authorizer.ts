// An AppSync Lambda authorizer that asks tenantgate. AppSync hands it the
// caller's token and the GraphQL request; it maps every root field of the
// operation to a permission on a company through a small rule table, asks
// tenantgate with the caller's own token (tenantgate verifies it: a Cognito
// access token), and answers with AppSync's authorizer response. Any error
// is a deny.

import type { AppSyncAuthorizerEvent, AppSyncAuthorizerResult } from "aws-lambda";
import {
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  parse,
  valueFromASTUntyped,
} from "graphql";

import { TenantgateClient, TenantgateError, type Permission } from "@tenantgate/client";

/**
 * What a root field needs, keyed by "Type.field" in Rules:
 *
 * - `onCompany(permission, "input.companyId")`: `permission` on the company
 *   whose ID is at that path in the field's arguments (the first segment is
 *   the argument's name); the operation is denied without it.
 * - `companies(permission)`: a list; the operation is allowed and the
 *   resolver gets every company the caller holds `permission` on.
 * - `authenticated()`: a token tenantgate accepts, nothing more.
 *
 * `fields` names result fields ("Type.field") that need a stronger
 * permission on the same companies; AppSync nulls them (deniedFields) unless
 * the caller holds it on every company the field touches.
 */
export type FieldRule =
  | { kind: "company"; permission: Permission; argument: string; fields?: Record<string, Permission> }
  | { kind: "companies"; permission: Permission; fields?: Record<string, Permission> }
  | { kind: "authenticated" };

/** The rule of every root field the API serves, by "Query.getInvoice". A field without a rule is denied. */
export type Rules = Readonly<Record<string, FieldRule>>;

export function onCompany(permission: Permission, argument: string, fields?: Record<string, Permission>): FieldRule {
  return { kind: "company", permission, argument, ...(fields ? { fields } : {}) };
}

export function companies(permission: Permission, fields?: Record<string, Permission>): FieldRule {
  return { kind: "companies", permission, ...(fields ? { fields } : {}) };
}

export function authenticated(): FieldRule {
  return { kind: "authenticated" };
}

/**
 * The resolverContext: AppSync wants a flat object of string values, so the
 * lists are JSON.
 *
 * - `user`: the caller's user ID, as tenantgate knows it.
 * - `companyIds`: JSON of {"Query.listInvoices": ["acme", ...], ...}: for
 *   each root field, the companies the caller may use it on: the checked
 *   company for an onCompany field, every company the caller holds the
 *   permission on for a companies field.
 * - `consistencyToken`: the token tenantgate answered at (a ZedToken).
 */
export interface ResolverContext {
  [key: string]: string;
  user: string;
  companyIds: string;
}

export type AuthorizerResult = AppSyncAuthorizerResult<ResolverContext>;

export interface Logger {
  info(message: string, fields: Record<string, unknown>): void;
  warn(message: string, fields: Record<string, unknown>): void;
}

export interface AuthorizerOptions {
  /** tenantgate's URL as the Lambda reaches it. */
  baseUrl: string;
  rules: Rules;
  /** Seconds AppSync may cache an allow (ttlOverride); see README: keep 0 unless decisions do not depend on the request. */
  cacheTtlSeconds?: number;
  /** Timeout of each tenantgate request (default 3000 ms; AppSync gives the authorizer 10 s in all). */
  timeoutMs?: number;
  /** Companies per page when listing (default 1000). */
  pageSize?: number;
  /** Most companies one list may hold (default 1000): a longer one is a deny, not a truncated list. */
  maxCompanies?: number;
  /** The token claim tenantgate takes the user ID from (its --subject-claim; default "sub"). */
  subjectClaim?: string;
  /** Request header carrying a consistency token (default "x-consistency-token"). */
  consistencyHeader?: string;
  /** Where decisions are logged (default: console, as JSON lines). */
  logger?: Logger;
  /** The fetch tenantgate is asked with (default: globalThis.fetch). */
  fetch?: (input: Request) => Promise<Response>;
}

const DENY: AuthorizerResult = { isAuthorized: false, ttlOverride: 0 };

const consoleLogger: Logger = {
  info: (message, fields) => console.log(JSON.stringify({ level: "info", message, ...fields })),
  warn: (message, fields) => console.warn(JSON.stringify({ level: "warn", message, ...fields })),
};

/** A refusal: the reason is logged, never sent to the caller. */
class Deny extends Error {}

/** One root field of the operation, with the company its rule names. */
interface RootField {
  key: string; // "Query.getInvoice"
  rule: FieldRule;
  company?: string;
}

/** Returns the Lambda handler: `export const handler = createAuthorizer({...})`. */
export function createAuthorizer(options: AuthorizerOptions): (event: AppSyncAuthorizerEvent) => Promise<AuthorizerResult> {
  if (!options.baseUrl) throw new Error("tenantgate authorizer: baseUrl is required");
  const log = options.logger ?? consoleLogger;
  return async (event) => {
    const requestId = event?.requestContext?.requestId;
    try {
      const result = await authorize(event, options);
      log.info("authorized", {
        requestId,
        operation: event.requestContext.operationName,
        user: result.resolverContext?.user,
        deniedFields: result.deniedFields,
      });
      return result;
    } catch (err) {
      // Every failure is a deny: a refusal, a bad request, an unknown field,
      // a token tenantgate rejects, tenantgate unreachable or failing.
      const fields: Record<string, unknown> = { requestId, operation: event?.requestContext?.operationName, reason: String(err instanceof Error ? err.message : err) };
      if (err instanceof TenantgateError) Object.assign(fields, { kind: err.kind, status: err.status, tenantgateRequestId: err.requestId });
      log.warn("denied", fields);
      return { ...DENY };
    }
  };
}

async function authorize(event: AppSyncAuthorizerEvent, options: AuthorizerOptions): Promise<AuthorizerResult> {
  const token = bearer(event.authorizationToken);
  const ctx = event.requestContext;
  if (!ctx || typeof ctx.queryString !== "string") throw new Deny("no requestContext.queryString");
  const fields = rootFields(ctx.queryString, ctx.operationName, ctx.variables ?? {}, options.rules);
  const user = subjectOf(token, options.subjectClaim ?? "sub");
  const consistencyToken = header(event.requestHeaders, options.consistencyHeader ?? "x-consistency-token");

  const client = new TenantgateClient({
    baseUrl: options.baseUrl,
    token,
    timeoutMs: options.timeoutMs ?? 3000,
    headers: { "X-Request-ID": `appsync-${ctx.requestId ?? "unknown"}`.slice(0, 200).replace(/[^!-~]/g, "_") },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const read = consistencyToken !== undefined ? { consistencyToken } : {};
  const subject = { type: "user", id: user };

  // The questions: one evaluation per (permission, company) an onCompany
  // field or a stronger result field needs, one listing per permission a
  // companies field or its result fields need.
  const checks = new Map<string, { permission: Permission; company: string }>();
  const lists = new Set<Permission>();
  const ask = (permission: Permission, company: string) => checks.set(`${permission}\u0000${company}`, { permission, company });
  for (const f of fields) {
    if (f.rule.kind === "company") {
      ask(f.rule.permission, f.company!);
      for (const p of Object.values(f.rule.fields ?? {})) ask(p, f.company!);
    } else if (f.rule.kind === "companies") {
      lists.add(f.rule.permission);
      for (const p of Object.values(f.rule.fields ?? {})) lists.add(p);
    }
  }

  const maxCompanies = options.maxCompanies ?? 1000;
  const list = async (permission: Permission): Promise<[Permission, string[]]> => {
    const ids: string[] = [];
    for await (const c of client.searchResources({ subject, action: { name: permission }, pageSize: options.pageSize ?? 1000, ...read })) {
      ids.push(c.id);
      if (ids.length > maxCompanies) throw new Deny(`more than ${maxCompanies} companies with ${permission}`);
    }
    return [permission, ids];
  };
  const evaluate = async (): Promise<{ allowed: Map<string, boolean>; token: string | undefined }> => {
    const items = [...checks.values()];
    const allowed = new Map<string, boolean>();
    if (items.length === 0) return { allowed, token: undefined };
    // AuthZEN evaluations with the caller's token and the caller as subject:
    // tenantgate answers an item about anybody else with an error, so the
    // user ID in resolverContext is the one tenantgate verified.
    const answer = await client.evaluateMany(
      { subject, evaluations: items.map((c) => ({ action: { name: c.permission }, resource: { type: "company", id: c.company } })) },
      read,
    );
    answer.evaluations.forEach((d, i) => {
      if (d.context?.error) throw new Deny(`tenantgate could not evaluate item ${i}: ${d.context.error.status} ${d.context.error.message}`);
      const c = items[i]!;
      allowed.set(`${c.permission}\u0000${c.company}`, d.decision === true);
    });
    return { allowed, token: answer.context?.consistency_token };
  };

  const [evaluated, listed] = await Promise.all([
    evaluate(),
    Promise.all([...lists].map(list)),
    // A request with neither still has its token verified and its subject confirmed.
    checks.size === 0 && lists.size === 0
      ? client.searchResourcesPage({ subject, action: { name: "read" }, pageSize: 1, ...read })
      : undefined,
  ]);
  const byPermission = new Map(listed);
  const allowed = (permission: Permission, company: string) => evaluated.allowed.get(`${permission}\u0000${company}`) === true;

  const permitted: Record<string, string[]> = {};
  const denied = new Set<string>();
  for (const f of fields) {
    const rule = f.rule;
    if (rule.kind === "authenticated") {
      permitted[f.key] ??= [];
      continue;
    }
    let touched: string[];
    if (rule.kind === "company") {
      if (!allowed(rule.permission, f.company!)) throw new Deny(`${user} may not ${rule.permission} on ${f.company} (${f.key})`);
      touched = [f.company!];
    } else {
      touched = byPermission.get(rule.permission) ?? [];
    }
    permitted[f.key] = [...new Set([...(permitted[f.key] ?? []), ...touched])];
    for (const [field, permission] of Object.entries(rule.fields ?? {})) {
      const holds =
        rule.kind === "company"
          ? allowed(permission, f.company!)
          : touched.every((id) => (byPermission.get(permission) ?? []).includes(id));
      if (!holds) denied.add(field);
    }
  }

  const resolverContext: ResolverContext = { user, companyIds: JSON.stringify(permitted) };
  if (evaluated.token) resolverContext.consistencyToken = evaluated.token;
  const ttl = consistencyToken !== undefined ? 0 : Math.max(0, Math.min(3600, Math.floor(options.cacheTtlSeconds ?? 0)));
  return {
    isAuthorized: true,
    resolverContext,
    deniedFields: [...denied].sort(),
    ttlOverride: ttl,
  };
}

/** The token AppSync passed, without a "Bearer " prefix some clients add. */
function bearer(authorizationToken: unknown): string {
  if (typeof authorizationToken !== "string") throw new Deny("no authorizationToken");
  const token = authorizationToken.replace(/^Bearer\s+/i, "").trim();
  if (token === "") throw new Deny("empty authorizationToken");
  return token;
}

/**
 * The user ID claim of the token. It is read without checking the
 * signature, which tenantgate does: every question names this user as the
 * subject, and tenantgate refuses a question about anybody but the token's
 * own user, so a forged claim cannot get an allow.
 */
function subjectOf(token: string, claim: string): string {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Deny("the token is not a JWT");
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
  } catch {
    throw new Deny("the token's payload is not JSON");
  }
  const value = typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>)[claim] : undefined;
  if (typeof value !== "string" || value === "") throw new Deny(`the token has no ${claim}`);
  return value;
}

function header(headers: Record<string, string | undefined> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === want && typeof v === "string" && v.trim() !== "") return v.trim();
  }
  return undefined;
}

const ROOT_TYPES = { query: "Query", mutation: "Mutation", subscription: "Subscription" } as const;

/** Every root field the operation selects, with its rule and company; throws Deny for anything else. */
function rootFields(query: string, operationName: string | undefined | null, variables: Record<string, unknown>, rules: Rules): RootField[] {
  let doc: DocumentNode;
  try {
    doc = parse(query, { noLocation: true, maxTokens: 10_000 });
  } catch (err) {
    throw new Deny(`the query does not parse: ${err instanceof Error ? err.message : String(err)}`);
  }
  const operations = doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const op = operationName ? operations.find((o) => o.name?.value === operationName) : operations.length === 1 ? operations[0] : undefined;
  if (!op) throw new Deny(operationName ? `no operation ${operationName}` : "several operations and no operationName");
  const fragments = new Map(
    doc.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((f) => [f.name.value, f]),
  );
  const root = ROOT_TYPES[op.operation];
  const out: RootField[] = [];
  const visit = (set: SelectionSetNode, seen: Set<string>) => {
    for (const sel of set.selections) {
      if (sel.kind === Kind.INLINE_FRAGMENT) {
        if (sel.typeCondition && sel.typeCondition.name.value !== root) throw new Deny(`a fragment on ${sel.typeCondition.name.value} at the root`);
        visit(sel.selectionSet, seen);
        continue;
      }
      if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const name = sel.name.value;
        const frag = fragments.get(name);
        if (!frag || seen.has(name)) throw new Deny(`fragment ${name} is unknown or cyclic`);
        if (frag.typeCondition.name.value !== root) throw new Deny(`a fragment on ${frag.typeCondition.name.value} at the root`);
        visit(frag.selectionSet, new Set([...seen, name]));
        continue;
      }
      const name = sel.name.value;
      if (name === "__typename") continue;
      const key = `${root}.${name}`;
      const rule = Object.hasOwn(rules, key) ? rules[key] : undefined;
      if (!rule) throw new Deny(`no rule for ${key}`);
      const field: RootField = { key, rule };
      if (rule.kind === "company") {
        const [arg, ...path] = rule.argument.split(".");
        const node = sel.arguments?.find((a) => a.name.value === arg);
        let value: unknown = node ? valueFromASTUntyped(node.value, variables) : undefined;
        for (const p of path) value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[p] : undefined;
        if (typeof value !== "string" || value === "") throw new Deny(`${key} has no company in ${rule.argument}`);
        field.company = value;
      }
      out.push(field);
    }
  };
  visit(op.selectionSet, new Set());
  if (out.length === 0) out.push({ key: `${root}.__typename`, rule: authenticated() });
  return out;
}
