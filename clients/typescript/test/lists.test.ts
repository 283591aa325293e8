// Lists follow next_cursor through async iterators.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { as, collect } from "./env.js";

describe("companies", () => {
  it("iterates every page", async () => {
    const alice = as("alice");
    const pages = await collect(alice.companyPages({ permission: "read", pageSize: 1 }));
    assert.ok(pages.length >= 3, `${pages.length} pages of one company`);
    assert.deepEqual(
      pages.flatMap((p) => p.companies.map((c) => c.id)),
      ["acme", "acme-berlin", "acme-paris"],
    );
    const ids: string[] = [];
    for await (const company of alice.companies({ permission: "read", pageSize: 2 })) ids.push(company.id);
    assert.deepEqual(ids, ["acme", "acme-berlin", "acme-paris"]);
  });

  it("lists names and parents", async () => {
    const companies = await collect(as("bob").companies({ permission: "read", pageSize: 100 }));
    assert.deepEqual(companies, [
      { id: "acme-paris", name: "ACME Paris", parent_id: "acme" },
      { id: "globex", name: "Globex", parent_id: null },
    ]);
  });

  it("lists by permission, read by default", async () => {
    const bob = as("bob");
    assert.deepEqual((await collect(bob.companies({ permission: "update" }))).map((c) => c.id), ["globex"]);
    assert.deepEqual((await collect(bob.companies())).map((c) => c.id), ["acme-paris", "globex"]);
    assert.deepEqual(await collect(bob.companies({ permission: "manage_members" })), []);
  });

  it("is empty without an active membership", async () => {
    assert.deepEqual(await collect(as("dave").companies()), []);
    assert.deepEqual(await collect(as("erin").companies()), []);
  });

  it("gives a platform role every company", async () => {
    const ids = (await collect(as("support").companies({ permission: "read", pageSize: 2 }))).map((c) => c.id);
    for (const id of ["acme", "acme-berlin", "acme-paris", "globex", "initech"]) assert.ok(ids.includes(id), id);
    assert.deepEqual(ids, [...ids].sort(), "in ID order");
    assert.deepEqual(await collect(as("support").companies({ permission: "update" })), []);
  });

  it("stops fetching when the loop stops", async () => {
    let requests = 0;
    const counting = as("alice", {
      fetch: (req: Request) => {
        requests++;
        return fetch(req);
      },
    });
    for await (const company of counting.companies({ pageSize: 1 })) {
      assert.equal(company.id, "acme");
      break;
    }
    assert.equal(requests, 1);
  });
});
