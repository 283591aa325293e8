// The AuthZEN routes: evaluations and the three searches.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ForbiddenError } from "@tenantgate/client";

import { as, collect, service, url } from "./env.js";

const user = (id: string) => ({ type: "user", id });
const company = (id: string) => ({ type: "company", id });

describe("AuthZEN", () => {
  it("evaluates one decision", async () => {
    const yes = await as("bob").evaluate({ subject: user("bob"), action: { name: "read" }, resource: company("acme-paris") });
    assert.equal(yes.decision, true);
    assert.match(yes.context?.consistency_token ?? "", /.+/);
    const no = await as("bob").evaluate({ subject: user("bob"), action: { name: "delete" }, resource: company("acme-paris") });
    assert.equal(no.decision, false);
    const other = await as("bob").evaluate({ subject: user("bob"), action: { name: "read" }, resource: { type: "document", id: "d1" } });
    assert.equal(other.decision, false);
    assert.match(other.context?.reason ?? "", /document/);
  });

  it("explains a decision", async () => {
    const d = await as("alice").evaluate({
      subject: user("alice"),
      action: { name: "update" },
      resource: company("acme-berlin"),
      context: { explain: true },
    });
    assert.equal(d.decision, true);
    assert.equal(d.context?.explanation?.memberships[0]?.company, "acme");
  });

  it("lets a user token ask about itself only", async () => {
    await assert.rejects(
      as("bob").evaluate({ subject: user("carol"), action: { name: "read" }, resource: company("globex") }),
      ForbiddenError,
    );
    const d = await service().evaluate({ subject: user("carol"), action: { name: "manage_members" }, resource: company("globex") });
    assert.equal(d.decision, true);
  });

  it("evaluates many, with the semantics", async () => {
    const all = await service().evaluateMany({
      subject: user("bob"),
      resource: company("globex"),
      evaluations: [{ action: { name: "read" } }, { action: { name: "update" } }, { action: { name: "delete" } }],
    });
    assert.deepEqual(all.evaluations.map((e) => e.decision), [true, true, false]);
    assert.match(all.context?.consistency_token ?? "", /.+/);

    const short = await service().evaluateMany({
      subject: user("bob"),
      resource: company("globex"),
      evaluations: [{ action: { name: "read" } }, { action: { name: "delete" } }, { action: { name: "update" } }],
      options: { evaluations_semantic: "deny_on_first_deny" },
    });
    assert.deepEqual(short.evaluations.map((e) => e.decision), [true, false]);
    assert.equal(short.evaluations[1]?.context?.reason, "deny_on_first_deny");
  });

  it("searches resources, subjects and actions page by page", async () => {
    const svc = service();
    const resources = await collect(svc.searchResources({ subject: user("bob"), action: { name: "read" }, pageSize: 1 }));
    assert.deepEqual(
      resources.map((r) => [r.id, r.properties.name, r.properties.parent_id]),
      [
        ["acme-paris", "ACME Paris", "acme"],
        ["globex", "Globex", null],
      ],
    );
    const subjects = await collect(svc.searchSubjects({ action: { name: "update" }, resource: company("globex"), pageSize: 1 }));
    assert.deepEqual(subjects.map((s) => s.id), ["bob", "carol"]);
    const actions = await collect(as("bob").searchActions({ subject: user("bob"), resource: company("globex") }));
    assert.deepEqual(actions.map((a) => a.name), ["read", "update"]);
  });

  it("serves its metadata", async () => {
    const meta = await as("bob").authzenConfiguration();
    assert.equal(meta.access_evaluation_endpoint, `${url}/access/v1/evaluation`);
  });
});
