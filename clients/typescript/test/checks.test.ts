// Checks, bulk checks and the permissions matrix against the real gateway,
// on the data clients/clients_test.go seeds:
//
//   acme (alice owner) > acme-paris (bob viewer), acme-berlin
//   globex (bob editor, carol admin)
//   initech (erin viewer, inactive)
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ForbiddenError, PERMISSIONS, TenantgateError } from "@tenantgate/client";

import { as, service } from "./env.js";

describe("check", () => {
  it("allows what a role grants, with a consistency token", async () => {
    const answer = await as("alice").check({ permission: "manage_owners", company: "acme-paris" });
    assert.equal(answer.allowed, true);
    assert.match(answer.consistency_token, /.+/);
    assert.equal(answer.explanation, undefined);
  });

  it("denies what no role grants, and unknown companies", async () => {
    const bob = as("bob");
    assert.equal((await bob.check({ permission: "read", company: "acme-paris" })).allowed, true);
    assert.equal((await bob.check({ permission: "update", company: "acme-paris" })).allowed, false);
    assert.equal((await bob.check({ permission: "read", company: "acme" })).allowed, false);
    assert.equal((await bob.check({ permission: "update", company: "globex" })).allowed, true);
    assert.equal((await bob.check({ permission: "read", company: "no-such-company" })).allowed, false);
    assert.equal((await as("erin").check({ permission: "read", company: "initech" })).allowed, false, "inactive membership");
  });

  it("explains an answer", async () => {
    const answer = await as("bob").check({ permission: "read", company: "acme-paris", explain: true });
    assert.equal(answer.allowed, true);
    assert.ok(answer.explanation);
    assert.equal(answer.explanation.allowed, true);
    assert.deepEqual(
      answer.explanation.memberships.map((m) => [m.company, m.role, m.grants]),
      [["acme-paris", "viewer", true]],
    );
    assert.match(answer.explanation.text, /bob may read on acme-paris/);
  });

  it("accepts a consistency token from an earlier answer", async () => {
    const first = await as("bob").check({ permission: "read", company: "globex" });
    const again = await as("bob").check({ permission: "read", company: "globex", consistencyToken: first.consistency_token });
    assert.equal(again.allowed, true);
  });
});

describe("bulk check", () => {
  it("answers every check in request order", async () => {
    const answer = await as("bob").checkBulk({
      checks: [
        { permission: "read", company: "acme-paris" },
        { permission: "update", company: "acme-paris" },
        { permission: "update", company: "globex" },
        { permission: "read", company: "initech" },
      ],
    });
    assert.deepEqual(
      answer.results.map((r) => [r.company, r.permission, r.allowed]),
      [
        ["acme-paris", "read", true],
        ["acme-paris", "update", false],
        ["globex", "update", true],
        ["initech", "read", false],
      ],
    );
    assert.match(answer.consistency_token, /.+/);
  });
});

describe("permissions matrix", () => {
  it("answers all six permissions", async () => {
    const answer = await as("bob").permissions({ company: "globex" });
    assert.equal(answer.company, "globex");
    assert.deepEqual(answer.permissions, {
      read: true,
      update: true,
      create: false,
      delete: false,
      manage_members: false,
      manage_owners: false,
    });
    assert.equal(answer.explanations, undefined);
  });

  it("explains each permission on request", async () => {
    const answer = await as("carol").permissions({ company: "globex", explain: true });
    assert.ok(answer.explanations);
    for (const p of PERMISSIONS) {
      assert.equal(answer.explanations[p].allowed, answer.permissions[p], p);
    }
    assert.equal(answer.permissions.manage_members, true);
    assert.equal(answer.permissions.manage_owners, false);
    assert.deepEqual(answer.explanations.manage_owners.roles_that_grant, ["owner"]);
  });

  it("escapes the company ID in the path", async () => {
    const answer = await as("bob").permissions({ company: "no such/company?x=1" });
    assert.equal(answer.company, "no such/company?x=1");
    assert.equal(answer.permissions.read, false);
  });
});

describe("service token", () => {
  it("checks on behalf of a user", async () => {
    const svc = service();
    assert.equal((await svc.check({ permission: "update", company: "globex", subject: "bob" })).allowed, true);
    assert.equal((await svc.check({ permission: "update", company: "acme-paris", subject: "bob" })).allowed, false);
    const explained = await svc.check({ permission: "delete", company: "acme-berlin", subject: "alice", explain: true });
    assert.equal(explained.allowed, true);
    assert.equal(explained.explanation?.memberships[0]?.company, "acme");
    const bulk = await svc.checkBulk({
      subject: "carol",
      checks: [
        { permission: "manage_members", company: "globex" },
        { permission: "read", company: "acme" },
      ],
    });
    assert.deepEqual(bulk.results.map((r) => r.allowed), [true, false]);
  });

  it("is refused what is for users only", async () => {
    await assert.rejects(service().companiesPage({ permission: "read" }), ForbiddenError);
    await assert.rejects(service().permissions({ company: "globex" }), ForbiddenError);
  });

  it("needs a subject: a user token that names one is refused", async () => {
    const err = await as("bob")
      .check({ permission: "read", company: "globex", subject: "carol", requestId: "ts-subject-test" })
      .catch((e: unknown) => e);
    assert.ok(err instanceof ForbiddenError, String(err));
    assert.ok(err instanceof TenantgateError);
    assert.equal(err.kind, "forbidden");
    assert.equal(err.status, 403);
    assert.equal(err.requestId, "ts-subject-test");
    assert.ok(err.title.length > 0);
  });
});
