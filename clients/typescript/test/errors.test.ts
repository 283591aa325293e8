// Failures are typed exceptions, and none of them is ever an allow: the
// real gateway's 401s, and answers only a broken network or a broken
// gateway gives, from local fakes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  BadRequestError,
  InvalidResponseError,
  NetworkError,
  TenantgateClient,
  TenantgateError,
  UnauthorizedError,
  UnavailableError,
} from "@tenantgate/client";

import { as, deadURL, fakeGateway, token, url } from "./env.js";

/** Asserts that a check fails with an error of Class, and returns it. */
async function checkFails<E extends TenantgateError>(
  client: TenantgateClient,
  Class: abstract new (...args: never[]) => E,
): Promise<E> {
  let answer: unknown;
  try {
    answer = await client.check({ permission: "read", company: "acme" });
  } catch (err) {
    assert.ok(err instanceof Class, `want ${Class.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`the check answered ${JSON.stringify(answer)} instead of failing`);
}

describe("401", () => {
  for (const kind of ["expired", "id-token", "other-client"]) {
    it(`rejects alice's ${kind} token`, async () => {
      const err = await checkFails(as(`alice:${kind}`), UnauthorizedError);
      assert.equal(err.kind, "unauthorized");
      assert.equal(err.status, 401);
      assert.ok(err.title);
      assert.ok(err.detail, "a 401 carries a detail");
      assert.ok(err.requestId);
    });
  }

  it("rejects a token that is not a JWT", async () => {
    await checkFails(new TenantgateClient({ baseUrl: url, token: "not-a-token" }), UnauthorizedError);
  });
});

describe("400", () => {
  it("is a BadRequestError with the gateway's detail", async () => {
    const err = await as("alice")
      .companiesPage({ permission: "read", cursor: "not-a-cursor" })
      .catch((e: unknown) => e);
    assert.ok(err instanceof BadRequestError, String(err));
    assert.equal(err.kind, "bad_request");
    assert.ok(err.detail);
  });
});

describe("no answer", () => {
  it("is a NetworkError when nothing listens", async () => {
    const client = new TenantgateClient({ baseUrl: await deadURL(), token: token("alice") });
    const err = await checkFails(client, NetworkError);
    assert.equal(err.kind, "network");
    assert.equal(err.status, 0);
    // Iterators fail the same way instead of ending empty.
    await assert.rejects(async () => {
      for await (const c of client.companies()) assert.fail(`listed ${c.id}`);
    }, NetworkError);
  });

  it("is a NetworkError when the gateway does not answer in time", async () => {
    const fake = await fakeGateway(() => {
      // Never answers.
    });
    try {
      const client = new TenantgateClient({ baseUrl: fake.url, token: "t", timeoutMs: 200 });
      const err = await checkFails(client, NetworkError);
      assert.match(err.title, /timed out/);
    } finally {
      await fake.close();
    }
  });

  it("is a NetworkError when the caller aborts", async () => {
    const fake = await fakeGateway(() => {});
    try {
      const client = new TenantgateClient({ baseUrl: fake.url, token: "t" });
      const err = await client
        .check({ permission: "read", company: "acme", signal: AbortSignal.timeout(50) })
        .catch((e: unknown) => e);
      assert.ok(err instanceof NetworkError, String(err));
    } finally {
      await fake.close();
    }
  });
});

describe("a broken gateway", () => {
  const answers: [string, number, Record<string, string>, string][] = [
    ["allowed as a string", 200, { "Content-Type": "application/json" }, `{"allowed":"true","consistency_token":"x"}`],
    ["no allowed", 200, { "Content-Type": "application/json" }, `{"consistency_token":"x"}`],
    ["an empty body", 200, { "Content-Type": "application/json" }, ``],
    ["not JSON", 200, { "Content-Type": "application/json" }, `allowed: true`],
    ["an array", 200, { "Content-Type": "application/json" }, `[true]`],
  ];
  for (const [name, status, headers, body] of answers) {
    it(`answering ${name} is an InvalidResponseError, not an allow`, async () => {
      const fake = await fakeGateway((_req, res) => res.writeHead(status, headers).end(body));
      try {
        await checkFails(new TenantgateClient({ baseUrl: fake.url, token: "t" }), InvalidResponseError);
      } finally {
        await fake.close();
      }
    });
  }

  it("answering 503 is an UnavailableError with Retry-After", async () => {
    const fake = await fakeGateway((_req, res) =>
      res
        .writeHead(503, { "Content-Type": "application/problem+json", "Retry-After": "2", "X-Request-Id": "r-503" })
        .end(`{"type":"about:blank","title":"Service Unavailable","status":503,"request_id":"r-503"}`),
    );
    try {
      const err = await checkFails(new TenantgateClient({ baseUrl: fake.url, token: "t" }), UnavailableError);
      assert.equal(err.kind, "unavailable");
      assert.equal(err.retryAfter, 2);
      assert.equal(err.requestId, "r-503");
      assert.equal(err.title, "Service Unavailable");
    } finally {
      await fake.close();
    }
  });

  it("answering 500 without a problem document is a TenantgateError", async () => {
    const fake = await fakeGateway((_req, res) => res.writeHead(500, { "X-Request-Id": "r-500" }).end("boom"));
    try {
      const err = await checkFails(new TenantgateClient({ baseUrl: fake.url, token: "t" }), TenantgateError);
      assert.equal(err.kind, "server");
      assert.equal(err.status, 500);
      assert.equal(err.requestId, "r-500");
    } finally {
      await fake.close();
    }
  });

  it("answering a bulk check with fewer results is an InvalidResponseError", async () => {
    const fake = await fakeGateway((_req, res) =>
      res
        .writeHead(200, { "Content-Type": "application/json" })
        .end(`{"results":[{"permission":"read","company":"a","allowed":true}],"consistency_token":"x"}`),
    );
    try {
      const err = await new TenantgateClient({ baseUrl: fake.url, token: "t" })
        .checkBulk({
          checks: [
            { permission: "read", company: "a" },
            { permission: "read", company: "b" },
          ],
        })
        .catch((e: unknown) => e);
      assert.ok(err instanceof InvalidResponseError, String(err));
    } finally {
      await fake.close();
    }
  });
});
