// The README's JS resolvers, run on what the authorizer really answers:
// @aws-appsync/utils exists only inside AppSync's APPSYNC_JS runtime, so
// the resolvers run here with a stand-in for the few utilities they use.
import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, it } from "node:test";

import { createAuthorizer, type AuthorizerResult } from "../src/authorizer.js";
import { rules } from "../src/rules.js";
import { appsyncEvent, token, url } from "./env.js";

class EarlyReturn {
  constructor(readonly value: unknown) {}
}
class AppSyncError extends Error {
  constructor(
    message: string,
    readonly type?: string,
  ) {
    super(message);
  }
}
class Unauthorized extends Error {}

const stub = {
  util: {
    dynamodb: {
      toDynamoDB: (v: string) => ({ S: v }),
      toMapValues: (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { S: v }])),
    },
    error: (message: string, type?: string) => {
      throw new AppSyncError(message, type);
    },
    unauthorized: () => {
      throw new Unauthorized("Unauthorized");
    },
  },
  // runtime.earlyReturn ends the resolver at once, as a throw does here.
  runtime: {
    earlyReturn: (value: unknown) => {
      throw new EarlyReturn(value);
    },
  },
};
(globalThis as { __appsync?: typeof stub }).__appsync = stub;

type Resolver = { request(ctx: unknown): unknown; response(ctx: unknown): unknown };

/** Loads resolvers/<name>.js with the stand-in for @aws-appsync/utils. */
async function resolver(name: string): Promise<Resolver> {
  const source = await readFile(new URL(`../../resolvers/${name}.js`, import.meta.url), "utf8");
  const importLine = /^import \{[^}]*\} from "@aws-appsync\/utils";$/m;
  assert.match(source, importLine);
  const dir = await mkdtemp(join(tmpdir(), "appsync-resolver-"));
  const file = join(dir, `${name}.mjs`);
  await writeFile(file, source.replace(importLine, "const { util, runtime } = globalThis.__appsync;"));
  return (await import(pathToFileURL(file).href)) as Resolver;
}

/** What AppSync hands a resolver after the authorizer answered `authorized`. */
function resolverCtx(authorized: AuthorizerResult, fieldName: string, args: Record<string, unknown>) {
  assert.equal(authorized.isAuthorized, true);
  return { args, identity: { resolverContext: authorized.resolverContext }, info: { parentTypeName: "Query", fieldName } };
}

function run(r: Resolver, ctx: unknown): unknown {
  try {
    return r.request(ctx);
  } catch (e) {
    if (e instanceof EarlyReturn) return { earlyReturn: e.value };
    throw e;
  }
}

const authorize = createAuthorizer({ baseUrl: url, rules, logger: { info() {}, warn() {} } });
const LIST = `query { listInvoices { items { id } } }`;

describe("listInvoices resolver", () => {
  it("scans only the companies the authorizer permitted", async () => {
    const list = await resolver("listInvoices");
    const bob = await authorize(appsyncEvent(token("bob"), LIST));
    assert.deepEqual(run(list, resolverCtx(bob, "listInvoices", {})), {
      operation: "Scan",
      filter: {
        expression: "#companyId IN (:c0, :c1)",
        expressionNames: { "#companyId": "companyId" },
        expressionValues: { ":c0": { S: "acme-paris" }, ":c1": { S: "globex" } },
      },
      limit: 100,
      nextToken: undefined,
    });
    const one = run(list, resolverCtx(bob, "listInvoices", { companyId: "globex", limit: 10 })) as { filter: { expressionValues: unknown }; limit: number };
    assert.deepEqual(one.filter.expressionValues, { ":c0": { S: "globex" } });
    assert.equal(one.limit, 10);
  });

  it("answers empty without reading for a company not permitted, or none", async () => {
    const list = await resolver("listInvoices");
    const bob = await authorize(appsyncEvent(token("bob"), LIST));
    assert.deepEqual(run(list, resolverCtx(bob, "listInvoices", { companyId: "acme" })), { earlyReturn: { items: [], nextToken: null } });
    const dave = await authorize(appsyncEvent(token("dave"), LIST));
    assert.deepEqual(run(list, resolverCtx(dave, "listInvoices", {})), { earlyReturn: { items: [], nextToken: null } });
    // Without a resolverContext (another auth mode) nothing is permitted.
    assert.deepEqual(run(list, { args: {}, identity: {}, info: { parentTypeName: "Query", fieldName: "listInvoices" } }), {
      earlyReturn: { items: [], nextToken: null },
    });
  });
});

describe("getInvoice resolver", () => {
  it("reads the permitted company's item and refuses any other", async () => {
    const get = await resolver("getInvoice");
    const bob = await authorize(appsyncEvent(token("bob"), `{ getInvoice(companyId: "globex", id: "inv-1") { id } }`));
    assert.deepEqual(run(get, resolverCtx(bob, "getInvoice", { companyId: "globex", id: "inv-1" })), {
      operation: "GetItem",
      key: { companyId: { S: "globex" }, id: { S: "inv-1" } },
    });
    assert.throws(() => run(get, resolverCtx(bob, "getInvoice", { companyId: "acme", id: "inv-1" })), Unauthorized);
  });
});
