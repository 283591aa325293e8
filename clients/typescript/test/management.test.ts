// The management API: frank creates companies of his own and manages
// grace's membership in them; every write's consistency token makes the
// next read reflect it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ConflictError, ForbiddenError, NotFoundError } from "@tenantgate/client";

import { as, collect, unique } from "./env.js";

describe("management", () => {
  it("creates, renames and moves companies", async () => {
    const frank = as("frank");
    const rootID = unique("frank-root");
    const root = await frank.createCompany({ id: rootID, name: "Frank Root" });
    assert.deepEqual([root.id, root.name, root.parent_id], [rootID, "Frank Root", null]);
    assert.match(root.consistency_token, /.+/);

    // The write's token makes the check see it: frank owns what he created.
    const owns = await frank.check({ permission: "manage_owners", company: rootID, consistencyToken: root.consistency_token });
    assert.equal(owns.allowed, true);

    const child = await frank.createCompany({ name: "Frank Child", parentId: rootID });
    assert.ok(child.id, "a generated ID");
    assert.equal(child.parent_id, rootID);

    const renamed = await frank.patchCompany(child.id, { name: "Frank Child, renamed" });
    assert.equal(renamed.name, "Frank Child, renamed");
    assert.equal(renamed.parent_id, rootID);

    // The child has an owner of its own (its creator), so it may become a root.
    const moved = await frank.patchCompany(child.id, { parentId: null });
    assert.equal(moved.parent_id, null);
    const listed = await collect(frank.companies({ permission: "manage_owners", consistencyToken: moved.consistency_token }));
    const ids = listed.map((c) => c.id);
    assert.ok(ids.includes(rootID) && ids.includes(child.id), ids.join(","));
    assert.equal(listed.find((c) => c.id === child.id)?.parent_id, null);

    await assert.rejects(frank.createCompany({ id: rootID, name: "Taken" }), ConflictError);
    await assert.rejects(frank.createCompany({ name: "Under acme", parentId: "acme" }), ForbiddenError);
    await assert.rejects(frank.patchCompany("acme", { name: "Mine now" }), ForbiddenError);
  });

  it("manages members, with read-your-writes", async () => {
    const frank = as("frank");
    const grace = as("grace");
    const company = (await frank.createCompany({ id: unique("frank-members"), name: "Frank Members" })).id;

    const put = await frank.putMember(company, "grace", { role: "editor" });
    assert.deepEqual([put.user_id, put.company_id, put.role, put.status], ["grace", company, "editor", "active"]);
    assert.equal((await grace.check({ permission: "update", company, consistencyToken: put.consistency_token })).allowed, true);

    const members = await frank.members(company, { consistencyToken: put.consistency_token });
    assert.deepEqual(
      members.map((m) => [m.user_id, m.role]).sort(),
      [
        ["frank", "owner"],
        ["grace", "editor"],
      ],
    );
    const effective = await frank.members(company, { effective: true, consistencyToken: put.consistency_token });
    assert.deepEqual(effective.map((m) => m.user_id).sort(), ["frank", "grace"]);

    const demoted = await frank.putMember(company, "grace", { role: "viewer", status: "pending" });
    assert.equal(demoted.status, "pending");
    assert.equal((await grace.check({ permission: "read", company, consistencyToken: demoted.consistency_token })).allowed, false);

    // Nobody changes their own membership; grace may not manage anybody.
    await assert.rejects(frank.putMember(company, "frank", { role: "viewer" }), ForbiddenError);
    await assert.rejects(grace.putMember(company, "dave", { role: "viewer" }), ForbiddenError);
    // The last owner of a root company stays.
    await assert.rejects(frank.deleteMember(company, "frank"), ConflictError);

    const removed = await frank.deleteMember(company, "grace");
    assert.match(removed.consistency_token, /.+/);
    assert.equal((await grace.check({ permission: "read", company, consistencyToken: removed.consistency_token })).allowed, false);
    await assert.rejects(frank.deleteMember(company, "grace"), NotFoundError);
  });

  it("reads the audit trail page by page, newest first", async () => {
    const frank = as("frank");
    const company = (await frank.createCompany({ id: unique("frank-audit"), name: "Frank Audit" })).id;
    await frank.putMember(company, "grace", { role: "viewer" });
    await frank.putMember(company, "grace", { role: "editor" });
    await frank.deleteMember(company, "grace");
    await assert.rejects(frank.putMember(company, "frank", { role: "viewer" }), ForbiddenError);

    const entries = await collect(frank.audit(company, { pageSize: 2 }));
    assert.deepEqual(
      entries.map((e) => [e.action, e.outcome]),
      [
        ["member.set", "forbidden"],
        ["member.remove", "allowed"],
        ["member.set", "allowed"],
        ["member.set", "allowed"],
        ["company.create", "allowed"],
      ],
    );
    assert.ok(entries.every((e) => e.company_id === company && e.actor === "frank"));
    const first = await frank.auditPage(company, { pageSize: 2 });
    assert.equal(first.entries.length, 2);
    assert.ok(first.next_cursor);

    await assert.rejects(as("grace").auditPage(company), ForbiddenError);
  });
});
