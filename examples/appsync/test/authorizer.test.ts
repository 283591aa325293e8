// The authorizer fed AppSync's event shape with Cognito-style access tokens
// against the real tenantgate that clients/clients_test.go runs, on its
// seed:
//
//   acme (alice owner) > acme-paris (bob viewer), acme-berlin
//   globex (bob editor, carol admin)
//   initech (erin viewer, inactive)
//   support: the platform role viewer through its Cognito group
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";

import { buildSchema, parse, validate } from "graphql";

import { TenantgateClient } from "@tenantgate/client";

import { createAuthorizer, type AuthorizerOptions, type AuthorizerResult, type Logger } from "../src/authorizer.js";
import { rules } from "../src/rules.js";
import { appsyncEvent, deadURL, fakeGateway, token, unique, url } from "./env.js";

const schemaText = await readFile(new URL("../../schema.graphql", import.meta.url), "utf8");
// AppSync declares its directives itself.
const schema = buildSchema(`directive @aws_subscribe(mutations: [String]) on FIELD_DEFINITION\n${schemaText}`);

/** A logger that keeps what it is told. */
function recorder(): Logger & { lines: { level: string; message: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  return {
    lines,
    info: (message, fields) => lines.push({ level: "info", message, fields }),
    warn: (message, fields) => lines.push({ level: "warn", message, fields }),
  };
}

function authorizer(options: Partial<AuthorizerOptions> = {}) {
  const logger = recorder();
  const handler = createAuthorizer({ baseUrl: url, rules, logger, ...options });
  return { handler, logger };
}

/** Runs the authorizer on a query that must be valid against schema.graphql. */
async function ask(
  user: string,
  query: string,
  variables: Record<string, unknown> = {},
  options: Partial<AuthorizerOptions> = {},
  extra: { operationName?: string; requestHeaders?: Record<string, string> } = {},
): Promise<AuthorizerResult> {
  assert.deepEqual(validate(schema, parse(query)).map(String), [], `the test's query is valid: ${query}`);
  const { handler, logger } = authorizer(options);
  const result = await handler(appsyncEvent(token(user), query, variables, extra));
  if (!result.isAuthorized) assert.ok(logger.lines.some((l) => l.message === "denied" && l.fields.reason), "a deny is logged with its reason");
  return result;
}

/** The authorizer's resolverContext, decoded; fails unless every value is a string, as AppSync requires. */
function context(result: AuthorizerResult): { user: string; companyIds: Record<string, string[]>; consistencyToken?: string } {
  assert.equal(result.isAuthorized, true, "allowed");
  const ctx = result.resolverContext;
  assert.ok(ctx, "has a resolverContext");
  for (const [k, v] of Object.entries(ctx)) assert.equal(typeof v, "string", `resolverContext.${k} is a string`);
  return {
    user: ctx.user,
    companyIds: JSON.parse(ctx.companyIds) as Record<string, string[]>,
    ...(ctx.consistencyToken !== undefined ? { consistencyToken: ctx.consistencyToken } : {}),
  };
}

function assertDenied(result: AuthorizerResult) {
  assert.deepEqual(result, { isAuthorized: false, ttlOverride: 0 });
}

const GET_INVOICE = `query GetInvoice($companyId: ID!, $id: ID!) {
  getInvoice(companyId: $companyId, id: $id) { id number internalNote }
}`;
const LIST_INVOICES = `query ListInvoices { listInvoices(limit: 50) { items { id companyId internalNote } nextToken } }`;
const CREATE_INVOICE = `mutation CreateInvoice($input: CreateInvoiceInput!) { createInvoice(input: $input) { id } }`;

describe("the rule table", () => {
  it("has a rule for every root field of schema.graphql, and for nothing else", () => {
    const fields = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap((t) =>
      t ? Object.keys(t.getFields()).map((f) => `${t.name}.${f}`) : [],
    );
    assert.deepEqual(Object.keys(rules).sort(), fields.sort());
  });
});

describe("onCompany fields", () => {
  it("allows read on the company named in a variable, with the user and company in resolverContext", async () => {
    const result = await ask("bob", GET_INVOICE, { companyId: "acme-paris", id: "inv-1" });
    const ctx = context(result);
    assert.equal(ctx.user, "bob");
    assert.deepEqual(ctx.companyIds, { "Query.getInvoice": ["acme-paris"] });
    assert.match(ctx.consistencyToken ?? "", /.+/);
    // bob is a viewer: the note needs update.
    assert.deepEqual(result.deniedFields, ["Invoice.internalNote"]);
    assert.equal(result.ttlOverride, 0);
  });

  it("reads the company from an inline argument", async () => {
    const result = await ask("alice", `{ getInvoice(companyId: "acme-berlin", id: "inv-2") { id internalNote } }`);
    assert.deepEqual(context(result).companyIds, { "Query.getInvoice": ["acme-berlin"] });
    assert.deepEqual(result.deniedFields, [], "alice owns acme, above acme-berlin");
  });

  it("denies a company the caller may not read", async () => {
    assertDenied(await ask("bob", GET_INVOICE, { companyId: "acme", id: "inv-1" }));
    assertDenied(await ask("dave", GET_INVOICE, { companyId: "acme-paris", id: "inv-1" }));
    assertDenied(await ask("erin", GET_INVOICE, { companyId: "initech", id: "inv-1" }), );
    assertDenied(await ask("bob", GET_INVOICE, { companyId: "no-such-company", id: "inv-1" }));
  });

  it("maps a mutation's input.companyId to update", async () => {
    const input = (companyId: string) => ({ input: { companyId, number: "2024-001", amountCents: 1200, currency: "EUR" } });
    const ok = await ask("bob", CREATE_INVOICE, input("globex"));
    assert.deepEqual(context(ok).companyIds, { "Mutation.createInvoice": ["globex"] });
    assertDenied(await ask("bob", CREATE_INVOICE, input("acme-paris")));
    assertDenied(await ask("dave", CREATE_INVOICE, input("globex")));
  });

  it("maps delete to delete", async () => {
    const del = `mutation Del($companyId: ID!) { deleteInvoice(companyId: $companyId, id: "inv-9") { id } }`;
    assert.equal((await ask("carol", del, { companyId: "globex" })).isAuthorized, true);
    assertDenied(await ask("bob", del, { companyId: "globex" }));
  });

  it("checks a subscription when subscribing", async () => {
    const sub = `subscription On($companyId: ID!) { onCreateInvoice(companyId: $companyId) { id internalNote } }`;
    const ok = await ask("carol", sub, { companyId: "globex" });
    assert.deepEqual(context(ok).companyIds, { "Subscription.onCreateInvoice": ["globex"] });
    assert.deepEqual(ok.deniedFields, []);
    assertDenied(await ask("bob", sub, { companyId: "acme" }));
  });

  it("denies a missing or empty company argument", async () => {
    assertDenied(await ask("bob", GET_INVOICE, { id: "inv-1" }));
    assertDenied(await ask("bob", GET_INVOICE, { companyId: "", id: "inv-1" }));
  });
});

describe("companies fields", () => {
  it("passes every readable company to the resolver", async () => {
    const bob = await ask("bob", LIST_INVOICES);
    assert.deepEqual(context(bob), {
      user: "bob",
      companyIds: { "Query.listInvoices": ["acme-paris", "globex"] },
    });
    // bob may not update acme-paris, one of the listed companies.
    assert.deepEqual(bob.deniedFields, ["Invoice.internalNote"]);

    const carol = await ask("carol", LIST_INVOICES);
    assert.deepEqual(context(carol).companyIds, { "Query.listInvoices": ["globex"] });
    assert.deepEqual(carol.deniedFields, [], "carol may update every company she reads");
  });

  it("follows every page", async () => {
    const alice = await ask("alice", `{ myCompanies }`, {}, { pageSize: 1 });
    assert.deepEqual(context(alice).companyIds, { "Query.myCompanies": ["acme", "acme-berlin", "acme-paris"] });
  });

  it("allows an empty list", async () => {
    for (const user of ["dave", "erin"]) {
      const result = await ask(user, LIST_INVOICES);
      assert.deepEqual(context(result).companyIds, { "Query.listInvoices": [] });
      assert.deepEqual(result.deniedFields, []);
    }
  });

  it("counts a platform role from the token's Cognito groups", async () => {
    const ids = context(await ask("support", `{ myCompanies }`)).companyIds["Query.myCompanies"] ?? [];
    for (const id of ["acme", "acme-berlin", "acme-paris", "globex", "initech"]) assert.ok(ids.includes(id), id);
  });

  it("denies a list longer than maxCompanies rather than cut it", async () => {
    assertDenied(await ask("alice", `{ myCompanies }`, {}, { maxCompanies: 2, pageSize: 1 }));
  });
});

describe("operations", () => {
  it("authorizes every root field, aliases included, and denies when one is denied", async () => {
    const query = `query Many {
      a: getInvoice(companyId: "globex", id: "1") { id internalNote }
      b: getInvoice(companyId: "acme-paris", id: "2") { id }
      myCompanies
      whoami
      __typename
    }`;
    const ok = await ask("bob", query);
    assert.deepEqual(context(ok).companyIds, {
      "Query.getInvoice": ["globex", "acme-paris"],
      "Query.myCompanies": ["acme-paris", "globex"],
      "Query.whoami": [],
    });
    assert.deepEqual(ok.deniedFields, ["Invoice.internalNote"]);
    assertDenied(await ask("bob", query.replace(`myCompanies`, `c: getInvoice(companyId: "acme", id: "3") { id }`)));
  });

  it("looks into fragments at the root", async () => {
    const spread = `query Q { ...F } fragment F on Query { getInvoice(companyId: "acme", id: "1") { id } }`;
    assertDenied(await ask("bob", spread));
    const inline = `query Q { ... on Query { getInvoice(companyId: "acme", id: "1") { id } } }`;
    assertDenied(await ask("bob", inline));
    const allowed = `query Q { ...F } fragment F on Query { getInvoice(companyId: "globex", id: "1") { id } }`;
    assert.deepEqual(context(await ask("bob", allowed)).companyIds, { "Query.getInvoice": ["globex"] });
  });

  it("picks the operation by operationName", async () => {
    const doc = `query Mine { myCompanies } query Theirs { getInvoice(companyId: "acme", id: "1") { id } }`;
    assert.equal((await ask("bob", doc, {}, {}, { operationName: "Mine" })).isAuthorized, true);
    assertDenied(await ask("bob", doc, {}, {}, { operationName: "Theirs" }));
    assertDenied(await ask("bob", doc, {}, {}, { operationName: "Nope" }));
    assertDenied(await ask("bob", doc));
  });

  it("verifies the caller of a field that needs no company", async () => {
    assert.equal(context(await ask("dave", `{ whoami }`)).user, "dave");
    assert.equal(context(await ask("dave", `{ __typename }`)).user, "dave");
  });

  it("denies what it does not understand", async () => {
    const { handler } = authorizer();
    for (const query of [`{ listEverything { id } }`, `{ getInvoice(`, `{ __schema { types { name } } }`, ``]) {
      assertDenied(await handler(appsyncEvent(token("alice"), query)));
    }
  });
});

describe("tokens", () => {
  it("accepts the Cognito access token with or without Bearer", async () => {
    const { handler } = authorizer();
    const result = await handler(appsyncEvent(`Bearer ${token("alice")}`, `{ whoami }`));
    assert.equal(context(result).user, "alice");
  });

  it("denies tokens tenantgate rejects", async () => {
    const { handler, logger } = authorizer();
    for (const t of ["alice:id-token", "alice:expired", "alice:other-client"]) {
      assertDenied(await handler(appsyncEvent(token(t), `{ whoami }`)));
    }
    assert.ok(logger.lines.every((l) => l.level === "warn" && l.fields.status === 401), JSON.stringify(logger.lines));
    for (const t of ["", "   ", "Bearer ", "not-a-jwt", "a.b.c"]) {
      assertDenied(await handler(appsyncEvent(t, `{ whoami }`)));
    }
  });

  it("denies a token whose claims were changed", async () => {
    const [header, payload, signature] = token("bob").split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    claims.sub = "alice";
    const forged = [header, Buffer.from(JSON.stringify(claims)).toString("base64url"), signature].join(".");
    const { handler } = authorizer();
    assertDenied(await handler(appsyncEvent(forged, `{ getInvoice(companyId: "acme", id: "1") { id } }`)));
  });
});

describe("consistency and caching", () => {
  it("caches an allow for cacheTtlSeconds, and never one that used a consistency token", async () => {
    // frank creates a company and makes grace a viewer; grace's next request
    // carries the write's token and sees the new membership.
    const frank = new TenantgateClient({ baseUrl: url, token: token("frank") });
    const company = (await frank.createCompany({ id: unique("appsync"), name: "AppSync Co" })).id;
    const write = await frank.putMember(company, "grace", { role: "viewer" });

    const headers = { "X-Consistency-Token": write.consistency_token };
    const fresh = await ask("grace", GET_INVOICE, { companyId: company, id: "1" }, { cacheTtlSeconds: 60 }, { requestHeaders: headers });
    assert.deepEqual(context(fresh).companyIds, { "Query.getInvoice": [company] });
    assert.equal(fresh.ttlOverride, 0);

    const cached = await ask("grace", GET_INVOICE, { companyId: company, id: "1" }, { cacheTtlSeconds: 60 });
    assert.equal(cached.isAuthorized, true);
    assert.equal(cached.ttlOverride, 60);

    const removed = await frank.deleteMember(company, "grace");
    const after = await ask("grace", GET_INVOICE, { companyId: company, id: "1" }, { cacheTtlSeconds: 60 }, {
      requestHeaders: { "x-consistency-token": removed.consistency_token },
    });
    assertDenied(after);
  });

  it("denies a malformed consistency token", async () => {
    assertDenied(await ask("bob", GET_INVOICE, { companyId: "globex", id: "1" }, {}, { requestHeaders: { "x-consistency-token": "ffffffff/x" } }));
  });
});

describe("tenantgate failing", () => {
  it("denies when tenantgate is unreachable", async () => {
    const { handler, logger } = authorizer({ baseUrl: await deadURL() });
    for (const query of [`{ getInvoice(companyId: "acme", id: "1") { id } }`, `{ myCompanies }`, `{ whoami }`]) {
      assertDenied(await handler(appsyncEvent(token("alice"), query)));
    }
    assert.deepEqual(logger.lines.map((l) => [l.message, l.fields.kind]), [
      ["denied", "network"],
      ["denied", "network"],
      ["denied", "network"],
    ]);
  });

  it("denies when tenantgate does not answer in time", async () => {
    const fake = await fakeGateway(() => {});
    try {
      const { handler } = authorizer({ baseUrl: fake.url, timeoutMs: 200 });
      assertDenied(await handler(appsyncEvent(token("alice"), `{ getInvoice(companyId: "acme", id: "1") { id } }`)));
    } finally {
      await fake.close();
    }
  });

  it("denies on a 503, and on an answer that breaks the contract", async () => {
    const bodies: [number, string][] = [
      [503, `{"title":"Service Unavailable","status":503}`],
      [500, `{"title":"Internal Server Error","status":500}`],
      [200, `{"evaluations":[{"decision":"true"}]}`],
      [200, `{"evaluations":[]}`],
      [200, `{"decision":true}`],
      [200, `not json`],
    ];
    for (const [status, body] of bodies) {
      const fake = await fakeGateway((_req, res) => res.writeHead(status, { "Content-Type": "application/json", "Retry-After": "1" }).end(body));
      try {
        const { handler } = authorizer({ baseUrl: fake.url });
        assertDenied(await handler(appsyncEvent(token("alice"), `{ getInvoice(companyId: "acme", id: "1") { id } }`)));
      } finally {
        await fake.close();
      }
    }
  });

  it("denies an event that is not AppSync's", async () => {
    const { handler } = authorizer();
    for (const event of [{}, { authorizationToken: token("alice") }, { authorizationToken: 42, requestContext: {} }]) {
      assertDenied(await handler(event as never));
    }
  });
});
