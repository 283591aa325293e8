package app_test

// An OpenID AuthZEN Authorization API 1.0 conformance suite, run end to end
// against a real tenantgate on both backends. Cases are named after the
// sections of the standard (api/authorization-api-1_0.md, by anchor) and of
// its certification scenario (certification/authorization-api-1_0-scenario.md,
// "certification c-N-M"), and, where tenantgate decides what the standard
// leaves to the PDP, after tenantgate's rule (internal/gateway/authzen.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// azSeed is the certification fixture (certification c-1) in tenantgate's
// terms. The scenario's PDP knows users alice and bob, resources record-1
// and record-2 of type "record", and actions read, write and delete;
// tenantgate's model knows subjects of type "user", resources of type
// "company" and its six permissions, so the suite keeps the identifiers and
// maps the rest:
//
//   - record-1 and record-2 are companies (type "company", not "record");
//   - the scenario's "write" is the permission "update";
//   - alice is an editor of record-1, which grants read and update:
//     decision rules 1 and 2 (alice read, alice write: true);
//   - bob is a viewer of record-1, which grants read only: rules 3 and 4
//     (bob read: true, bob write: false);
//   - record-2 has no member, so every question about it is a deny.
//
// Rules 5 to 8 and search rules S4 to S6 rest on properties, which tenantgate
// accepts and ignores by design (the decision rests on relationships alone):
// the Properties sub-levels are not certified, and a case asserts that
// properties change nothing.
//
// Beyond the scenario: carol is an admin of record-1 and record-3, so she
// holds manage_members (which a user token needs for a subject search) and
// her resource search spans two pages. record-3 belongs to the consistency
// cases, whose writes therefore change no other case's answer.
const azSeed = `
INSERT INTO companies (id, name, parent_id) VALUES
  ('record-1', 'Record One', NULL),
  ('record-2', 'Record Two', NULL),
  ('record-3', 'Record Three', NULL);
INSERT INTO company_memberships (user_id, company_id, role, status) VALUES
  ('alice', 'record-1', 'editor', 'active'),
  ('bob', 'record-1', 'viewer', 'active'),
  ('carol', 'record-1', 'admin', 'active'),
  ('carol', 'record-3', 'admin', 'active');`

// The default paths of the HTTPS binding (api, "transport-https-json") and
// the well-known metadata path (api, "pdp-metadata-access").
const (
	azEvaluationPath     = "/access/v1/evaluation"
	azEvaluationsPath    = "/access/v1/evaluations"
	azSearchSubjectPath  = "/access/v1/search/subject"
	azSearchResourcePath = "/access/v1/search/resource"
	azSearchActionPath   = "/access/v1/search/action"
	azConfigurationPath  = "/.well-known/authzen-configuration"
)

// TestAuthZENConformance runs the whole suite on one stack per backend:
// starting a stack costs seconds (the remote one starts processes), and
// every case but the consistency ones only reads the fixture.
func TestAuthZENConformance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, start startFunc) {
		began := time.Now()
		s := start(t, azSeed)
		ready := time.Now()
		t.Logf("stack ready in %v", ready.Sub(began).Round(time.Millisecond))
		c := azClient{s: s}
		t.Run("basic", func(t *testing.T) { azBasic(t, c) })
		t.Run("batch", func(t *testing.T) { azBatch(t, c) })
		t.Run("search", func(t *testing.T) { azSearch(t, c) })
		t.Run("discovery", func(t *testing.T) { azDiscovery(t, c) })
		t.Run("consistency", func(t *testing.T) { azConsistency(t, c) })
		t.Logf("suite ran in %v after the stack was ready", time.Since(ready).Round(time.Millisecond))
	})
}

// ---------------------------------------------------------------------------
// Requests and the structure of answers.

type azObj = map[string]any

func azUser(id string) azObj      { return azObj{"type": "user", "id": id} }
func azCompany(id string) azObj   { return azObj{"type": "company", "id": id} }
func azAction(name string) azObj  { return azObj{"name": name} }
func azTypeOnly(typ string) azObj { return azObj{"type": typ} }
func azEval(sub, act, res azObj) azObj {
	return azObj{"subject": sub, "action": act, "resource": res}
}

// azWith returns a copy of o with the given keys set (nil deletes a key).
func azWith(o azObj, kv ...any) azObj {
	out := make(azObj, len(o)+len(kv)/2)
	for k, v := range o {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// azClient sends AuthZEN requests to the stack's replicas, round-robin.
type azClient struct{ s *stack }

// post sends body (a string or []byte is sent as it is, anything else as
// its JSON) to target, a path or one replica's absolute URL, declared as
// application/json.
func (c azClient) post(t *testing.T, target, bearer string, body any) answer {
	t.Helper()
	return c.raw(t, "POST", target, bearer, "application/json", azBytes(t, body), nil)
}

func azBytes(t *testing.T, body any) []byte {
	t.Helper()
	switch b := body.(type) {
	case string:
		return []byte(b)
	case []byte:
		return b
	}
	return jsonBody(t, body)
}

// raw is the request as given: contentType "" sends no Content-Type, which
// stack.send cannot (it always declares JSON).
func (c azClient) raw(t *testing.T, method, target, bearer, contentType string, body []byte, header http.Header) answer {
	t.Helper()
	if !strings.HasPrefix(target, "http://") {
		c.s.mu.Lock()
		target = c.s.baseURL() + target
		c.s.mu.Unlock()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}

// azWantJSON requires a successful answer: 200 with Content-Type
// application/json (certification c-5, item 2) and a JSON object body.
func azWantJSON(t *testing.T, a answer) azObj {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var doc azObj
	if err := json.Unmarshal(a.body, &doc); err != nil || doc == nil {
		t.Fatalf("body %s is not a JSON object: %v", a.body, err)
	}
	return doc
}

// azDecision is a Decision (api, "decision").
type azDecision struct {
	Decision bool
	Context  azObj // nil when the answer has none
}

// azDecisionOf requires an Access Evaluation response (certification c-2-3):
// a boolean decision and, if present, a context that is an object.
func azDecisionOf(t *testing.T, a answer) azDecision {
	t.Helper()
	doc := azWantJSON(t, a)
	if _, ok := doc["evaluations"]; ok {
		t.Errorf("a single evaluation's answer holds evaluations: %s", a.body)
	}
	return azDecisionIn(t, doc, "")
}

func azDecisionIn(t *testing.T, doc azObj, where string) azDecision {
	t.Helper()
	d, ok := doc["decision"].(bool)
	if !ok {
		t.Fatalf("%sdecision is %#v, want a boolean (certification c-2-3-1); doc %v", where, doc["decision"], doc)
	}
	out := azDecision{Decision: d}
	if raw, present := doc["context"]; present {
		if out.Context, ok = raw.(azObj); !ok {
			t.Fatalf("%scontext is %#v, want an object (certification c-2-3-2)", where, raw)
		}
	}
	return out
}

// azEvaluationsOf requires an Access Evaluations response with an
// evaluations array of Decisions (certification c-3-3-3); tenantgate omits
// the top-level decision, as c-3-3-4 recommends.
func azEvaluationsOf(t *testing.T, a answer) []azDecision {
	t.Helper()
	doc := azWantJSON(t, a)
	if _, ok := doc["decision"]; ok {
		t.Errorf("top-level decision next to evaluations (certification c-3-3-4 recommends omitting it): %s", a.body)
	}
	items, ok := doc["evaluations"].([]any)
	if !ok {
		t.Fatalf("evaluations is %#v, want an array: %s", doc["evaluations"], a.body)
	}
	out := make([]azDecision, len(items))
	for i, item := range items {
		obj, ok := item.(azObj)
		if !ok {
			t.Fatalf("evaluations[%d] is %#v, want an object", i, item)
		}
		out[i] = azDecisionIn(t, obj, fmt.Sprintf("evaluations[%d].", i))
	}
	return out
}

func azDecisions(ds []azDecision) []bool {
	out := make([]bool, len(ds))
	for i, d := range ds {
		out[i] = d.Decision
	}
	return out
}

// azReason is context.reason of a decision ("" when absent).
func azReason(d azDecision) string {
	r, _ := d.Context["reason"].(string)
	return r
}

// azItemError is context.error of a decision: its status and message, ok
// false when there is none (api, "Access Evaluations API", Errors).
func azItemError(t *testing.T, d azDecision) (status int, message string, ok bool) {
	t.Helper()
	raw, present := d.Context["error"]
	if !present {
		return 0, "", false
	}
	e, isObj := raw.(azObj)
	if !isObj {
		t.Fatalf("context.error is %#v, want an object", raw)
	}
	st, _ := e["status"].(float64)
	msg, _ := e["message"].(string)
	return int(st), msg, true
}

// azPage is a search response (api, "search-response").
type azPage struct {
	Results   []azObj
	NextToken string
	Context   azObj
}

// azSearchOf requires a search response: results an array (never null) of
// objects, and a page object whose next_token is a string (certification
// c-4-5-3) and whose count, when present, counts the results.
func azSearchOf(t *testing.T, a answer) azPage {
	t.Helper()
	doc := azWantJSON(t, a)
	items, ok := doc["results"].([]any)
	if !ok {
		t.Fatalf("results is %#v, want an array: %s", doc["results"], a.body)
	}
	var p azPage
	for i, item := range items {
		obj, ok := item.(azObj)
		if !ok {
			t.Fatalf("results[%d] is %#v, want an object", i, item)
		}
		p.Results = append(p.Results, obj)
	}
	// The page object is optional for a PDP that returns everything at
	// once, but tenantgate paginates and always sends it.
	page, ok := doc["page"].(azObj)
	if !ok {
		t.Fatalf("page is %#v, want an object: %s", doc["page"], a.body)
	}
	if p.NextToken, ok = page["next_token"].(string); !ok {
		t.Fatalf("page.next_token is %#v, want a string", page["next_token"])
	}
	if count, present := page["count"]; present && count != float64(len(items)) {
		t.Errorf("page.count %v for %d results", count, len(items))
	}
	if raw, present := doc["context"]; present {
		if p.Context, ok = raw.(azObj); !ok {
			t.Fatalf("context is %#v, want an object", raw)
		}
	}
	return p
}

// azIDs are the ids of entity results, sorted, each required to be of
// wantType: a search returns only entities of the type searched for (api,
// "search-response").
func azIDs(t *testing.T, results []azObj, wantType string) []string {
	t.Helper()
	ids := []string{}
	for i, r := range results {
		if r["type"] != wantType {
			t.Errorf("results[%d].type = %#v, want %q", i, r["type"], wantType)
		}
		id, ok := r["id"].(string)
		if !ok {
			t.Fatalf("results[%d].id = %#v, want a string", i, r["id"])
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// azNames are the names of action results, sorted.
func azNames(t *testing.T, results []azObj) []string {
	t.Helper()
	names := []string{}
	for i, r := range results {
		name, ok := r["name"].(string)
		if !ok {
			t.Fatalf("results[%d].name = %#v, want a string", i, r["name"])
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// azWantProblem requires an error answer of status: an RFC 9457 problem
// document whose request_id is the response's X-Request-ID, carrying no
// decision or results a careless client could act on.
func azWantProblem(t *testing.T, a answer, status int) azObj {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var doc azObj
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatalf("problem %s: %v", a.body, err)
	}
	if doc["status"] != float64(status) {
		t.Errorf("problem status %v, want %d", doc["status"], status)
	}
	if title, _ := doc["title"].(string); title == "" {
		t.Errorf("problem without a title: %s", a.body)
	}
	if id := a.header.Get("X-Request-ID"); id == "" || doc["request_id"] != id {
		t.Errorf("problem request_id %v, header X-Request-ID %q: want the same non-empty ID", doc["request_id"], id)
	}
	for _, key := range []string{"decision", "evaluations", "results"} {
		if _, ok := doc[key]; ok {
			t.Errorf("problem carries %q: %s", key, a.body)
		}
	}
	return doc
}

// ---------------------------------------------------------------------------
// Basic: the Access Evaluation API (certification c-2).

func azBasic(t *testing.T, c azClient) {
	read1 := azEval(azUser("alice"), azAction("read"), azCompany("record-1"))

	t.Run("c-2-2 fixture decisions with the service token", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
			want bool
		}{
			{"c-2-2-1 rule 1 alice read record-1", read1, true},
			{"rule 2 alice update record-1", azEval(azUser("alice"), azAction("update"), azCompany("record-1")), true},
			{"rule 3 bob read record-1", azEval(azUser("bob"), azAction("read"), azCompany("record-1")), true},
			{"c-2-2-2 rule 4 bob update record-1", azEval(azUser("bob"), azAction("update"), azCompany("record-1")), false},
			{"alice read record-2 (nobody's)", azEval(azUser("alice"), azAction("read"), azCompany("record-2")), false},
			{"alice manage_members record-1 (an editor's is not)", azEval(azUser("alice"), azAction("manage_members"), azCompany("record-1")), false},
			{"unknown user", azEval(azUser("nonexistent-user"), azAction("read"), azCompany("record-1")), false},
			{"unknown company", azEval(azUser("alice"), azAction("read"), azCompany("no-such-company")), false},
			// c-1-6: the fixture decisions hold with or without a context.
			{"c-2-2-3 optional context", azWith(read1, "context", azObj{"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}), true},
			{"c-2-2-8 additional properties are accepted", azObj{
				"subject":  azWith(azUser("alice"), "properties", azObj{"department": "Sales", "role": "manager"}),
				"action":   azWith(azAction("read"), "properties", azObj{"method": "GET"}),
				"resource": azWith(azCompany("record-1"), "properties", azObj{"status": "active", "owner": "bob"}),
			}, true},
			// tenantgate ignores properties: what c-2-2-5 expects of a
			// subject with role admin does not happen here.
			{"properties are ignored: bob with role admin still may not update", azObj{
				"subject":  azWith(azUser("bob"), "properties", azObj{"role": "admin"}),
				"action":   azAction("update"),
				"resource": azWith(azCompany("record-1"), "properties", azObj{"status": "archived"}),
			}, false},
			{"null properties are absent properties", azWith(read1, "subject", azWith(azUser("alice"), "properties", json.RawMessage("null"))), true},
			// c-2-2-9 and c-5 item 5: unknown fields are ignored, at the top
			// level and inside the entities.
			{"c-2-2-9 unknown fields", azWith(read1, "foo", "bar", "futureField", azObj{"nested": true}), true},
			{"unknown fields inside entities and the context", azObj{
				"subject":  azWith(azUser("alice"), "tenant", "t1"),
				"action":   azWith(azAction("read"), "verb", "GET"),
				"resource": azWith(azCompany("record-1"), "version", 3),
				"context":  azObj{"future": []any{1, "two"}},
			}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken, tc.body))
				if d.Decision != tc.want {
					t.Errorf("decision %v, want %v (context %v)", d.Decision, tc.want, d.Context)
				}
			})
		}
	})

	// tenantgate's mapping: a question about another entity type or an
	// unknown action is a deny with a reason, never a 400; the
	// certification's own requests, in its fixture's terms, land here.
	t.Run("tenantgate: other types and unknown actions are a deny with a reason", func(t *testing.T) {
		for _, tc := range []struct {
			name, inReason string
			body           azObj
		}{
			{"certification's resource type record", `"record"`, azEval(azUser("alice"), azAction("read"), azObj{"type": "record", "id": "record-1"})},
			{"subject type group", `"group"`, azEval(azObj{"type": "group", "id": "alice"}, azAction("read"), azCompany("record-1"))},
			{"certification's action write", `"write"`, azEval(azUser("alice"), azAction("write"), azCompany("record-1"))},
			{"action names are case-sensitive", `"READ"`, azEval(azUser("alice"), azAction("READ"), azCompany("record-1"))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken, tc.body))
				if d.Decision {
					t.Fatalf("decision true for %v", tc.body)
				}
				if r := azReason(d); !strings.Contains(r, tc.inReason) {
					t.Errorf("context.reason %q, want one naming %s", r, tc.inReason)
				}
			})
		}
	})

	t.Run("tenantgate: the decision context's consistency_token can be sent back", func(t *testing.T) {
		d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken, read1))
		token, _ := d.Context["consistency_token"].(string)
		if !d.Decision || token == "" {
			t.Fatalf("decision %v, context %v: want true with a consistency_token", d.Decision, d.Context)
		}
		again := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken, azWith(read1, "context", azObj{"consistency_token": token})))
		if !again.Decision {
			t.Errorf("decision at least as fresh as %s is false", token)
		}
		// The same token in the Consistency-Token header is the same
		// request; a different one is a contradiction (400).
		header := http.Header{"Consistency-Token": {token}}
		a := c.raw(t, "POST", azEvaluationPath, serviceToken, "application/json", jsonBody(t, azWith(read1, "context", azObj{"consistency_token": token})), header)
		if d := azDecisionOf(t, a); !d.Decision {
			t.Errorf("decision with the token in body and header is false")
		}
		header.Set("Consistency-Token", "0/1")
		azWantProblem(t, c.raw(t, "POST", azEvaluationPath, serviceToken, "application/json", jsonBody(t, azWith(read1, "context", azObj{"consistency_token": token})), header), http.StatusBadRequest)
	})

	t.Run("tenantgate: context.explain explains the decision", func(t *testing.T) {
		for _, tc := range []struct {
			body azObj
			want bool
		}{
			{read1, true},
			{azEval(azUser("bob"), azAction("update"), azCompany("record-1")), false},
		} {
			d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken, azWith(tc.body, "context", azObj{"explain": true})))
			ex, ok := d.Context["explanation"].(azObj)
			if d.Decision != tc.want || !ok {
				t.Fatalf("decision %v, context %v: want %v with an explanation", d.Decision, d.Context, tc.want)
			}
			if ex["allowed"] != tc.want {
				t.Errorf("explanation.allowed %v, decision %v", ex["allowed"], tc.want)
			}
		}
		// Without explain, no explanation is computed.
		d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken, read1))
		if _, ok := d.Context["explanation"]; ok {
			t.Errorf("explanation nobody asked for: %v", d.Context)
		}
	})

	// c-2-4-1, c-2-4-2 and c-2-4-6 (and api, "transport-https-json-
	// serialization": a required attribute omitted is a Bad Request).
	t.Run("c-2-4 errors are 400 problems", func(t *testing.T) {
		sub, act, res := `"subject":{"type":"user","id":"alice"}`, `"action":{"name":"read"}`, `"resource":{"type":"company","id":"record-1"}`
		for _, tc := range []struct{ name, body string }{
			{"c-2-4-1 missing subject", "{" + act + "," + res + "}"},
			{"c-2-4-1 missing action", "{" + sub + "," + res + "}"},
			{"c-2-4-1 missing resource", "{" + sub + "," + act + "}"},
			{"c-2-4-1 null subject", `{"subject":null,` + act + "," + res + "}"},
			{"c-2-4-2 subject missing type", `{"subject":{"id":"alice"},` + act + "," + res + "}"},
			{"c-2-4-2 subject missing id", `{"subject":{"type":"user"},` + act + "," + res + "}"},
			{"c-2-4-2 action missing name", "{" + sub + `,"action":{},` + res + "}"},
			{"c-2-4-2 resource missing type", "{" + sub + "," + act + `,"resource":{"id":"record-1"}}`},
			{"c-2-4-2 resource missing id", "{" + sub + "," + act + `,"resource":{"type":"company"}}`},
			{"c-2-4-4 malformed JSON", `{"subject":{"type":"user","id":"alice"},`},
			{"c-2-4-4 not JSON at all", `subject=alice&action=read`},
			{"c-2-4-5 empty body", ``},
			{"c-2-4-5 blank body", " \n"},
			{"c-2-4-6 subject is a string", `{"subject":"alice",` + act + "," + res + "}"},
			{"c-2-4-6 action.name is a number", "{" + sub + `,"action":{"name":123},` + res + "}"},
			{"c-2-4-6 resource.id is a number", "{" + sub + "," + act + `,"resource":{"type":"company","id":1}}`},
			{"c-2-4-6 context is a string", "{" + sub + "," + act + "," + res + `,"context":"now"}`},
			{"c-2-4-6 subject.properties is a string", `{"subject":{"type":"user","id":"alice","properties":"x"},` + act + "," + res + "}"},
			{"body is an array", `[` + "{" + sub + "," + act + "," + res + "}" + `]`},
			{"body is two objects", "{" + sub + "," + act + "," + res + "}{}"},
			// tenantgate: unknown fields are ignored, but a key that differs
			// from a known one only in case is refused, since encoding/json
			// would take it for the known one.
			{"case variant of a known key", `{"Subject":{"type":"user","id":"alice"},` + act + "," + res + "}"},
			{"case variant of a known nested key", `{"subject":{"type":"user","ID":"alice"},` + act + "," + res + "}"},
			{"repeated key", "{" + sub + "," + act + "," + act + "," + res + "}"},
			{"empty subject.id", `{"subject":{"type":"user","id":""},` + act + "," + res + "}"},
			{"wildcard subject.id", `{"subject":{"type":"user","id":"*"},` + act + "," + res + "}"},
			{"empty resource.id", "{" + sub + "," + act + `,"resource":{"type":"company","id":""}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				azWantProblem(t, c.post(t, azEvaluationPath, serviceToken, tc.body), http.StatusBadRequest)
			})
		}
	})

	// c-2-4-3: any Content-Type but JSON is a 400 on the AuthZEN routes (not
	// /v1's 415).
	t.Run("c-2-4-3 invalid content type", func(t *testing.T) {
		body := jsonBody(t, read1)
		for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application/json; charset=latin1", "not a media type"} {
			t.Run(fmt.Sprintf("%q", ct), func(t *testing.T) {
				azWantProblem(t, c.raw(t, "POST", azEvaluationPath, serviceToken, ct, body, nil), http.StatusBadRequest)
			})
		}
		// The control: the same body declared JSON (with its one charset).
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
			if d := azDecisionOf(t, c.raw(t, "POST", azEvaluationPath, serviceToken, ct, body, nil)); !d.Decision {
				t.Errorf("Content-Type %q: decision false", ct)
			}
		}
	})

	t.Run("c-2-5 X-Request-ID", func(t *testing.T) {
		body := jsonBody(t, read1)
		id := fmt.Sprintf("c-2-5-1-%d", time.Now().UnixNano())
		for _, tc := range []struct {
			name string
			body []byte
			want int
		}{{"c-2-5-1 echoed on a decision", body, http.StatusOK}, {"echoed on an error", []byte(`{`), http.StatusBadRequest}} {
			t.Run(tc.name, func(t *testing.T) {
				a := c.raw(t, "POST", azEvaluationPath, serviceToken, "application/json", tc.body, http.Header{"X-Request-Id": {id}})
				if a.status != tc.want {
					t.Fatalf("status %d, want %d: %s", a.status, tc.want, a.body)
				}
				if got := a.header.Get("X-Request-ID"); got != id {
					t.Errorf("X-Request-ID %q, want %q echoed", got, id)
				}
			})
		}
		t.Run("c-2-5-2 absent: the PDP does not fail and makes one up", func(t *testing.T) {
			a := c.raw(t, "POST", azEvaluationPath, serviceToken, "application/json", body, nil)
			if d := azDecisionOf(t, a); !d.Decision {
				t.Error("decision false")
			}
			if a.header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID in the answer")
			}
		})
		// tenantgate echoes an ID of visible ASCII up to 200 bytes, and
		// replaces any other (which could not be logged or echoed safely).
		t.Run("tenantgate: visible ASCII up to 200 bytes is echoed, anything else replaced", func(t *testing.T) {
			for _, tc := range []struct {
				id   string
				echo bool
			}{
				{strings.Repeat("a", 200), true},
				{"bfe9eb29-ab87-4ca3-be83-a1d5d8305716", true},
				{`~!"#$%&'()*+,-./:;<=>?@[\]^_{|}`, true},
				{strings.Repeat("a", 201), false},
				{"two words", false},
				{"tab\there", false},
			} {
				a := c.raw(t, "POST", azEvaluationPath, serviceToken, "application/json", body, http.Header{"X-Request-Id": {tc.id}})
				got := a.header.Get("X-Request-ID")
				if a.status != http.StatusOK || got == "" || (got == tc.id) != tc.echo {
					t.Errorf("X-Request-ID %q (%d bytes): status %d, answered %q; echo %v", tc.id, len(tc.id), a.status, got, tc.echo)
				}
			}
		})
	})

	// api, "transport-https-json": every API request is a POST; other
	// methods are refused with a problem that says which one is allowed.
	t.Run("transport: API routes take POST only", func(t *testing.T) {
		for _, path := range []string{azEvaluationPath, azEvaluationsPath, azSearchSubjectPath, azSearchResourcePath, azSearchActionPath} {
			for _, method := range []string{"GET", "PUT", "DELETE"} {
				a := c.raw(t, method, path, serviceToken, "application/json", jsonBody(t, read1), nil)
				azWantProblem(t, a, http.StatusMethodNotAllowed)
				if allow := a.header.Get("Allow"); !strings.Contains(allow, "POST") {
					t.Errorf("%s %s: Allow %q, want POST", method, path, allow)
				}
			}
		}
	})

	// c-2-6: the same request answered alike every time, on whichever
	// replica it lands.
	t.Run("c-2-6 idempotency", func(t *testing.T) {
		for _, tc := range []struct {
			body azObj
			want bool
		}{
			{read1, true},
			{azEval(azUser("bob"), azAction("update"), azCompany("record-1")), false},
		} {
			for i := range 3 {
				if d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken, tc.body)); d.Decision != tc.want {
					t.Errorf("attempt %d of %v: decision %v, want %v", i+1, tc.body, d.Decision, tc.want)
				}
			}
		}
	})

	// api, "error-responses": 401 for a PEP that did not authenticate, 403
	// for one that may not ask. tenantgate: a user token asks about itself
	// only; the service token about anyone.
	t.Run("callers", func(t *testing.T) {
		alice := c.s.token("alice")
		for _, tc := range []struct {
			name   string
			bearer string
			body   azObj
			status int
			want   bool
		}{
			{"user token about itself: permit", alice, read1, http.StatusOK, true},
			{"user token about itself: deny", c.s.token("bob"), azEval(azUser("bob"), azAction("update"), azCompany("record-1")), http.StatusOK, false},
			{"user token about another subject", alice, azEval(azUser("bob"), azAction("read"), azCompany("record-1")), http.StatusForbidden, false},
			{"user token about another subject it would be denied", c.s.token("dave"), read1, http.StatusForbidden, false},
			{"no token", "", read1, http.StatusUnauthorized, false},
			{"a token not issued by the trusted issuer", "not-a-jwt", read1, http.StatusUnauthorized, false},
			{"a prefix of the service token", serviceToken[:len(serviceToken)-1], read1, http.StatusUnauthorized, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := c.post(t, azEvaluationPath, tc.bearer, tc.body)
				if tc.status != http.StatusOK {
					azWantProblem(t, a, tc.status)
					if tc.status == http.StatusUnauthorized && a.header.Get("WWW-Authenticate") == "" {
						t.Error("401 without WWW-Authenticate")
					}
					return
				}
				if d := azDecisionOf(t, a); d.Decision != tc.want {
					t.Errorf("decision %v, want %v", d.Decision, tc.want)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Batch: the Access Evaluations API (certification c-3).

func azBatch(t *testing.T, c azClient) {
	r1, r2 := azCompany("record-1"), azCompany("record-2")
	read, update := azAction("read"), azAction("update")
	alice, bob := azUser("alice"), azUser("bob")
	items := func(objs ...azObj) []azObj { return objs }

	t.Run("c-3-2 request acceptance", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body azObj
			want []bool
		}{
			// Each case's decisions follow from the fixture, so all are
			// checked, where the certification checks some for structure only.
			{"c-3-2-1 defaults with an evaluations array", azObj{"subject": alice, "action": read,
				"evaluations": items(azObj{"resource": r1}, azObj{"resource": r2})}, []bool{true, false}},
			{"c-3-2-2 fixture decisions in request order", azObj{"subject": bob, "resource": r1,
				"evaluations": items(azObj{"action": read}, azObj{"action": update})}, []bool{true, false}},
			{"the same, reversed: the order follows the request", azObj{"subject": bob, "resource": r1,
				"evaluations": items(azObj{"action": update}, azObj{"action": read})}, []bool{false, true}},
			{"c-3-2-5 fully specified evaluations", azObj{"evaluations": items(
				azEval(alice, read, r1), azEval(bob, update, r1))}, []bool{true, false}},
			{"c-3-2-6 context inheritance and override", azObj{"subject": alice, "action": read,
				"context": azObj{"time": "2025-06-27T18:03-07:00"},
				"evaluations": items(azObj{"resource": r1},
					azObj{"resource": r2, "context": azObj{"time": "2025-06-27T19:00-07:00", "source": "batch-override"}})}, []bool{true, false}},
			// c-3-2-7's shape on identifiers: an empty item inherits every
			// default, an item's entity replaces the default whole.
			{"default inheritance and whole-entity override", azObj{"subject": alice, "action": update,
				"resource":    azWith(r1, "properties", azObj{"status": "active"}),
				"evaluations": items(azObj{}, azObj{"resource": azWith(r2, "properties", azObj{"status": "archived"})})}, []bool{true, false}},
			{"an item overrides the default action and subject", azObj{"subject": alice, "action": read, "resource": r1,
				"evaluations": items(azObj{}, azObj{"action": update}, azObj{"subject": bob, "action": update}, azObj{"subject": bob})},
				[]bool{true, true, false, true}},
			{"no subject sub-field merging: an item's subject is whole", azObj{"subject": alice, "action": update, "resource": r1,
				"evaluations": items(azObj{"subject": azUser("bob")})}, []bool{false}},
			{"unknown fields in items and options are ignored", azObj{"subject": alice, "action": read,
				"options":     azObj{"evaluations_semantic": "execute_all", "another_option": "value"},
				"evaluations": items(azObj{"resource": r1, "future": 1})}, []bool{true}},
			{"c-3-3 a longer boxcar keeps length and order", azObj{"evaluations": items(
				azEval(alice, read, r1), azEval(alice, update, r2), azEval(bob, read, r1), azEval(bob, update, r1),
				azEval(azUser("carol"), azAction("manage_members"), r1), azEval(alice, azAction("manage_members"), r1),
				azEval(alice, read, azCompany("record-3")), azEval(azUser("carol"), azAction("delete"), azCompany("record-3")))},
				[]bool{true, false, true, false, true, false, false, true}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := azDecisions(azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, tc.body)))
				if !slices.Equal(got, tc.want) {
					t.Errorf("decisions %v, want %v (c-3-3-1 length, c-3-3-2 order)", got, tc.want)
				}
			})
		}
	})

	t.Run("c-3-4-1 an item that cannot be evaluated is a deny with context.error", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			body       azObj
			want       []bool
			failed     int // the item that cannot be evaluated
			failStatus int
		}{
			{"missing resource (execute_all)", azObj{"subject": alice, "action": read,
				"options":     azObj{"evaluations_semantic": "execute_all"},
				"evaluations": []any{azObj{"resource": r1}, azObj{}}}, []bool{true, false}, 1, http.StatusBadRequest},
			{"default semantic", azObj{"subject": alice, "action": read,
				"evaluations": []any{azObj{}, azObj{"resource": r1}}}, []bool{false, true}, 0, http.StatusBadRequest},
			{"item subject missing id", azObj{"action": read, "resource": r1,
				"evaluations": []any{azObj{"subject": alice}, azObj{"subject": azTypeOnly("user")}, azObj{"subject": bob}}}, []bool{true, false, true}, 1, http.StatusBadRequest},
			{"item is not an object", azObj{"subject": alice, "action": read,
				"evaluations": []any{"record-1", azObj{"resource": r1}}}, []bool{false, true}, 0, http.StatusBadRequest},
			{"item with a field of the wrong type", azObj{"subject": alice, "action": read,
				"evaluations": []any{azObj{"resource": r1}, azObj{"resource": "record-1"}}}, []bool{true, false}, 1, http.StatusBadRequest},
			{"tenantgate: item with a case variant of a known key", azObj{"subject": alice, "action": read,
				"evaluations": []any{azObj{"Resource": r1}, azObj{"resource": r1}}}, []bool{false, true}, 0, http.StatusBadRequest},
			{"tenantgate: item with another consistency token than the request's", azObj{"subject": alice, "action": read,
				"evaluations": []any{azObj{"resource": r1, "context": azObj{"consistency_token": "0/1"}}, azObj{"resource": r1}}}, []bool{false, true}, 0, http.StatusBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, tc.body))
				if got := azDecisions(ds); !slices.Equal(got, tc.want) {
					t.Fatalf("decisions %v, want %v", got, tc.want)
				}
				status, msg, ok := azItemError(t, ds[tc.failed])
				if !ok || status != tc.failStatus || msg == "" {
					t.Errorf("item %d context %v: want an error of status %d with a message", tc.failed, ds[tc.failed].Context, tc.failStatus)
				}
				for i, d := range ds {
					if _, _, ok := azItemError(t, d); ok && i != tc.failed {
						t.Errorf("item %d has an error too: %v", i, d.Context)
					}
				}
			})
		}
	})

	t.Run("an item of another type or action is a deny with a reason, the others answered", func(t *testing.T) {
		ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": alice, "evaluations": []any{
			azObj{"action": read, "resource": azObj{"type": "record", "id": "record-1"}},
			azObj{"action": azAction("write"), "resource": r1},
			azObj{"action": read, "resource": r1},
		}}))
		if got := azDecisions(ds); !slices.Equal(got, []bool{false, false, true}) {
			t.Fatalf("decisions %v, want [false false true]", got)
		}
		for i := range 2 {
			if azReason(ds[i]) == "" {
				t.Errorf("item %d: deny without a reason: %v", i, ds[i].Context)
			}
		}
	})

	// tenantgate: a user token's boxcar may only be about the user; an item
	// about anyone else fails alone, as a 403 in its context.
	t.Run("user token: an item about another subject fails alone with 403", func(t *testing.T) {
		ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, c.s.token("alice"), azObj{"action": read, "resource": r1,
			"evaluations": []any{azObj{"subject": alice}, azObj{"subject": bob}, azObj{"subject": alice, "action": update}}}))
		if got := azDecisions(ds); !slices.Equal(got, []bool{true, false, true}) {
			t.Fatalf("decisions %v, want [true false true]", got)
		}
		if status, _, ok := azItemError(t, ds[1]); !ok || status != http.StatusForbidden {
			t.Errorf("item about bob: context %v, want an error of status 403", ds[1].Context)
		}
	})

	// c-3-4-2 and c-3-4-3: without evaluations (absent, null or empty) the
	// endpoint answers as the single Access Evaluation API.
	t.Run("c-3-4-2 and c-3-4-3 no evaluations: a single evaluation", func(t *testing.T) {
		base := azEval(alice, read, r1)
		for _, tc := range []struct {
			name string
			body azObj
			want bool
		}{
			{"c-3-4-2 missing evaluations", base, true},
			{"c-3-4-3 empty evaluations", azWith(base, "evaluations", []any{}), true},
			{"null evaluations", azWith(base, "evaluations", json.RawMessage("null")), true},
			{"deny", azWith(azEval(bob, update, r1), "evaluations", []any{}), false},
			{"with options", azWith(base, "evaluations", []any{}, "options", azObj{"evaluations_semantic": "deny_on_first_deny"}), true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if d := azDecisionOf(t, c.post(t, azEvaluationsPath, serviceToken, tc.body)); d.Decision != tc.want {
					t.Errorf("decision %v, want %v", d.Decision, tc.want)
				}
			})
		}
		// As a single evaluation, a missing entity fails the whole request.
		azWantProblem(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": alice, "action": read, "evaluations": []any{}}), http.StatusBadRequest)
	})

	// api, "evaluations-semantics": the short-circuit semantics stop at the
	// first deny (an item that fails counts as one) or the first permit,
	// returning the decisions up to and including it.
	t.Run("evaluations semantics", func(t *testing.T) {
		permit1, deny2, permit3 := azObj{"resource": r1}, azObj{"resource": r2}, azObj{"resource": r1, "action": update}
		for _, tc := range []struct {
			semantic   string
			items      []any
			want       []bool
			stopReason string // context.reason of the last item, when it stopped the run
		}{
			{"execute_all", []any{permit1, deny2, permit3}, []bool{true, false, true}, ""},
			{"deny_on_first_deny", []any{permit1, deny2, permit3}, []bool{true, false}, "deny_on_first_deny"},
			{"deny_on_first_deny", []any{deny2, permit1}, []bool{false}, "deny_on_first_deny"},
			{"deny_on_first_deny", []any{permit1, permit3}, []bool{true, true}, ""},
			{"permit_on_first_permit", []any{deny2, permit1, deny2}, []bool{false, true}, "permit_on_first_permit"},
			{"permit_on_first_permit", []any{permit3, deny2}, []bool{true}, "permit_on_first_permit"},
			{"permit_on_first_permit", []any{deny2, deny2}, []bool{false, false}, ""},
		} {
			t.Run(fmt.Sprintf("%s %v", tc.semantic, tc.want), func(t *testing.T) {
				ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": alice, "action": read,
					"options": azObj{"evaluations_semantic": tc.semantic}, "evaluations": tc.items}))
				if got := azDecisions(ds); !slices.Equal(got, tc.want) {
					t.Fatalf("decisions %v, want %v", got, tc.want)
				}
				if tc.stopReason != "" {
					if r := azReason(ds[len(ds)-1]); r != tc.stopReason {
						t.Errorf("stopping item's context.reason %q, want %q", r, tc.stopReason)
					}
				}
			})
		}
		t.Run("deny_on_first_deny stops at an item that cannot be evaluated", func(t *testing.T) {
			ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": alice, "action": read,
				"options": azObj{"evaluations_semantic": "deny_on_first_deny"}, "evaluations": []any{permit1, azObj{}, permit1}}))
			if got := azDecisions(ds); !slices.Equal(got, []bool{true, false}) {
				t.Fatalf("decisions %v, want [true false]", got)
			}
			if _, _, ok := azItemError(t, ds[1]); !ok || azReason(ds[1]) != "deny_on_first_deny" {
				t.Errorf("stopping item's context %v: want its error and reason deny_on_first_deny", ds[1].Context)
			}
		})
		t.Run("deny_on_first_deny stops at a deny for another type, keeping its reason", func(t *testing.T) {
			ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": alice, "action": read,
				"options":     azObj{"evaluations_semantic": "deny_on_first_deny"},
				"evaluations": []any{permit1, azObj{"resource": azObj{"type": "record", "id": "record-1"}}, permit1}}))
			if got := azDecisions(ds); !slices.Equal(got, []bool{true, false}) {
				t.Fatalf("decisions %v, want [true false]", got)
			}
			if r := azReason(ds[1]); !strings.Contains(r, `"record"`) {
				t.Errorf("stopping item's reason %q, want the unknown type's", r)
			}
		})
		for _, opts := range []any{
			azObj{"evaluations_semantic": "first_deny"},
			azObj{"evaluations_semantic": "EXECUTE_ALL"},
			azObj{"evaluations_semantic": 1},
			"execute_all",
		} {
			t.Run(fmt.Sprintf("options %v is a 400", opts), func(t *testing.T) {
				azWantProblem(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": alice, "action": read,
					"options": opts, "evaluations": []any{permit1}}), http.StatusBadRequest)
			})
		}
	})

	// Errors of the whole payload stay HTTP errors (api, "Access
	// Evaluations API", Errors, first kind).
	t.Run("whole-payload errors are 400 problems", func(t *testing.T) {
		for _, tc := range []struct{ name, body string }{
			{"malformed JSON", `{"evaluations":[{}`},
			{"empty body", ``},
			{"evaluations is an object", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":{"resource":{"type":"company","id":"record-1"}}}`},
			{"top-level subject is a string", `{"subject":"alice","action":{"name":"read"},"evaluations":[{"resource":{"type":"company","id":"record-1"}}]}`},
			{"case variant of evaluations", `{"Evaluations":[{}],"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"company","id":"record-1"}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				azWantProblem(t, c.post(t, azEvaluationsPath, serviceToken, tc.body), http.StatusBadRequest)
			})
		}
		azWantProblem(t, c.raw(t, "POST", azEvaluationsPath, serviceToken, "text/plain", []byte(`{"evaluations":[]}`), nil), http.StatusBadRequest)
		azWantProblem(t, c.post(t, azEvaluationsPath, "", azObj{"evaluations": []any{azEval(alice, read, r1)}}), http.StatusUnauthorized)
	})
}

// ---------------------------------------------------------------------------
// Search (certification c-4).

func azSearch(t *testing.T, c azClient) {
	alice, r1 := azUser("alice"), azCompany("record-1")
	read := azAction("read")
	ctx := azObj{"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}
	subjectSearch := azObj{"subject": azTypeOnly("user"), "action": read, "resource": r1}
	resourceSearch := azObj{"subject": alice, "action": read, "resource": azTypeOnly("company")}
	actionSearch := azObj{"subject": alice, "resource": r1}

	// S1 to S3 of certification c-1-5, in the fixture's tenantgate terms.
	// Additional results are permitted by the scenario, but tenantgate's are
	// known exactly, so the sets are compared whole.
	t.Run("c-4-2 to c-4-4 fixture searches", func(t *testing.T) {
		for _, tc := range []struct {
			name, path string
			body       azObj
			want       []string
		}{
			{"c-4-2-1 S1 subjects who read record-1", azSearchSubjectPath, subjectSearch, []string{"alice", "bob", "carol"}},
			{"c-4-2-2 with context", azSearchSubjectPath, azWith(subjectSearch, "context", ctx), []string{"alice", "bob", "carol"}},
			{"c-4-2-3 subject.id present is ignored", azSearchSubjectPath, azWith(subjectSearch, "subject", alice), []string{"alice", "bob", "carol"}},
			{"subjects who update record-1", azSearchSubjectPath, azWith(subjectSearch, "action", azAction("update")), []string{"alice", "carol"}},
			{"subjects who read record-2 (nobody)", azSearchSubjectPath, azWith(subjectSearch, "resource", azCompany("record-2")), []string{}},
			{"c-4-3-1 S2 companies alice reads", azSearchResourcePath, resourceSearch, []string{"record-1"}},
			{"c-4-3-2 with context", azSearchResourcePath, azWith(resourceSearch, "context", ctx), []string{"record-1"}},
			{"c-4-3-3 resource.id present is ignored", azSearchResourcePath, azWith(resourceSearch, "resource", azCompany("record-2")), []string{"record-1"}},
			{"companies carol reads", azSearchResourcePath, azWith(resourceSearch, "subject", azUser("carol")), []string{"record-1", "record-3"}},
			{"companies bob updates (none)", azSearchResourcePath, azWith(resourceSearch, "subject", azUser("bob"), "action", azAction("update")), []string{}},
			{"c-4-4-1 S3 actions of alice on record-1", azSearchActionPath, actionSearch, []string{"read", "update"}},
			{"c-4-4-2 with context", azSearchActionPath, azWith(actionSearch, "context", ctx), []string{"read", "update"}},
			{"an action sent anyway is ignored", azSearchActionPath, azWith(actionSearch, "action", azAction("delete")), []string{"read", "update"}},
			{"actions of bob on record-1", azSearchActionPath, azWith(actionSearch, "subject", azUser("bob")), []string{"read"}},
			{"actions of carol (admin) on record-1", azSearchActionPath, azWith(actionSearch, "subject", azUser("carol")), []string{"create", "delete", "manage_members", "read", "update"}},
			{"actions of alice on record-2 (none)", azSearchActionPath, azWith(actionSearch, "resource", azCompany("record-2")), []string{}},
			{"properties are accepted and ignored", azSearchActionPath, azObj{"subject": azWith(azUser("bob"), "properties", azObj{"role": "admin"}),
				"resource": azWith(r1, "properties", azObj{"status": "archived"})}, []string{"read"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := azSearchOf(t, c.post(t, tc.path, serviceToken, tc.body))
				got := azFound(t, tc.path, p)
				if !slices.Equal(got, tc.want) {
					t.Errorf("results %v, want %v", got, tc.want)
				}
				if p.NextToken != "" {
					t.Errorf("next_token %q on the only page", p.NextToken)
				}
			})
		}
	})

	// Every result, evaluated, is a permit (api, "search-semantics").
	t.Run("search results evaluate to permits", func(t *testing.T) {
		p := azSearchOf(t, c.post(t, azSearchResourcePath, serviceToken, azWith(resourceSearch, "subject", azUser("carol"))))
		var evals []any
		for _, id := range azIDs(t, p.Results, "company") {
			evals = append(evals, azObj{"resource": azCompany(id)})
		}
		ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": azUser("carol"), "action": read, "evaluations": evals}))
		for i, d := range ds {
			if !d.Decision {
				t.Errorf("%v: found by the search, denied by an evaluation", evals[i])
			}
		}
	})

	t.Run("resource results carry the company's properties", func(t *testing.T) {
		p := azSearchOf(t, c.post(t, azSearchResourcePath, serviceToken, resourceSearch))
		if len(p.Results) != 1 {
			t.Fatalf("results %v, want record-1 only", p.Results)
		}
		props, ok := p.Results[0]["properties"].(azObj)
		if !ok || props["name"] != "Record One" {
			t.Errorf("record-1's properties %#v, want its name", p.Results[0]["properties"])
		}
	})

	// c-4-6: no match is an empty results array, for an unknown identifier
	// and an unknown type alike, on all three endpoints.
	t.Run("c-4-6 empty results", func(t *testing.T) {
		record := azObj{"type": "record", "id": "record-1"}
		for _, tc := range []struct {
			name, path string
			body       azObj
		}{
			{"c-4-6-1 action search for an unknown subject id", azSearchActionPath, azWith(actionSearch, "subject", azUser("nonexistent-user"))},
			{"c-4-6-1 action search on an unknown resource id", azSearchActionPath, azWith(actionSearch, "resource", azCompany("no-such-company"))},
			{"c-4-6-1 subject search on an unknown resource id", azSearchSubjectPath, azWith(subjectSearch, "resource", azCompany("no-such-company"))},
			{"c-4-6-1 resource search for an unknown subject id", azSearchResourcePath, azWith(resourceSearch, "subject", azUser("nonexistent-user"))},
			{"c-4-6-2 subject search for subject type spaceship", azSearchSubjectPath, azWith(subjectSearch, "subject", azTypeOnly("spaceship"))},
			{"c-4-6-2 subject search on resource type record", azSearchSubjectPath, azWith(subjectSearch, "resource", record)},
			{"c-4-6-2 resource search for resource type record", azSearchResourcePath, azWith(resourceSearch, "resource", azTypeOnly("record"))},
			{"c-4-6-2 resource search for a subject of type spaceship", azSearchResourcePath, azWith(resourceSearch, "subject", azObj{"type": "spaceship", "id": "alice"})},
			{"c-4-6-2 action search for subject type spaceship", azSearchActionPath, azWith(actionSearch, "subject", azObj{"type": "spaceship", "id": "alice"})},
			{"c-4-6-2 action search on resource type record", azSearchActionPath, azWith(actionSearch, "resource", record)},
			{"unknown action in a subject search", azSearchSubjectPath, azWith(subjectSearch, "action", azAction("write"))},
			{"unknown action in a resource search", azSearchResourcePath, azWith(resourceSearch, "action", azAction("write"))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := azSearchOf(t, c.post(t, tc.path, serviceToken, tc.body))
				if len(p.Results) != 0 || p.NextToken != "" {
					t.Errorf("results %v, next_token %q; want none", p.Results, p.NextToken)
				}
			})
		}
	})

	// c-4-7: a missing input entity or sub-field is a 400. The searched-for
	// entity may omit its id; every input entity must be whole, so one body
	// can be valid on one endpoint and not on another.
	t.Run("c-4-7 missing fields are 400 problems", func(t *testing.T) {
		noIDs := azObj{"subject": azTypeOnly("user"), "action": read, "resource": azTypeOnly("company")}
		for _, tc := range []struct {
			name, path string
			body       azObj
		}{
			{"c-4-7-1 subject search missing action", azSearchSubjectPath, azWith(subjectSearch, "action", nil)},
			{"subject search missing subject", azSearchSubjectPath, azWith(subjectSearch, "subject", nil)},
			{"subject search missing resource", azSearchSubjectPath, azWith(subjectSearch, "resource", nil)},
			{"c-4-7-1 resource search missing subject", azSearchResourcePath, azWith(resourceSearch, "subject", nil)},
			{"resource search missing action", azSearchResourcePath, azWith(resourceSearch, "action", nil)},
			{"resource search missing resource", azSearchResourcePath, azWith(resourceSearch, "resource", nil)},
			{"c-4-7-1 action search missing resource", azSearchActionPath, azWith(actionSearch, "resource", nil)},
			{"action search missing subject", azSearchActionPath, azWith(actionSearch, "subject", nil)},
			{"c-4-7-2 subject search: input resource missing id", azSearchSubjectPath, noIDs},
			{"c-4-7-2 resource search: input subject missing id", azSearchResourcePath, noIDs},
			{"c-4-7-2 action search: input subject missing id", azSearchActionPath, azWith(actionSearch, "subject", azTypeOnly("user"))},
			{"action search: input resource missing id", azSearchActionPath, azWith(actionSearch, "resource", azTypeOnly("company"))},
			{"subject search: searched subject missing type", azSearchSubjectPath, azWith(subjectSearch, "subject", azObj{"id": "alice"})},
			{"resource search: searched resource missing type", azSearchResourcePath, azWith(resourceSearch, "resource", azObj{})},
			{"subject search: action missing name", azSearchSubjectPath, azWith(subjectSearch, "action", azObj{})},
			{"resource search: subject of the wrong JSON type", azSearchResourcePath, azWith(resourceSearch, "subject", "alice")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				azWantProblem(t, c.post(t, tc.path, serviceToken, tc.body), http.StatusBadRequest)
			})
		}
		for _, path := range []string{azSearchSubjectPath, azSearchResourcePath, azSearchActionPath} {
			azWantProblem(t, c.post(t, path, serviceToken, `{"subject":`), http.StatusBadRequest)
			azWantProblem(t, c.raw(t, "POST", path, serviceToken, "text/plain", jsonBody(t, subjectSearch), nil), http.StatusBadRequest)
			azWantProblem(t, c.post(t, path, "", subjectSearch), http.StatusUnauthorized)
		}
	})

	t.Run("c-4-5 pagination", func(t *testing.T) {
		for _, tc := range []struct {
			name, path string
			body       azObj
			limit      int
			resultType string // "" for actions
			want       []string
		}{
			{"subject search", azSearchSubjectPath, subjectSearch, 1, "user", []string{"alice", "bob", "carol"}},
			{"subject search, two a page", azSearchSubjectPath, subjectSearch, 2, "user", []string{"alice", "bob", "carol"}},
			{"resource search", azSearchResourcePath, azWith(resourceSearch, "subject", azUser("carol")), 1, "company", []string{"record-1", "record-3"}},
			{"action search", azSearchActionPath, actionSearch, 1, "", []string{"read", "update"}},
		} {
			t.Run(fmt.Sprintf("c-4-5-1 and c-4-5-2 %s, limit %d", tc.name, tc.limit), func(t *testing.T) {
				var got []string
				token := ""
				pages := 0
				for {
					page := azObj{"limit": tc.limit}
					if token != "" {
						page["token"] = token
					}
					p := azSearchOf(t, c.post(t, tc.path, serviceToken, azWith(tc.body, "page", page)))
					pages++
					if len(p.Results) > tc.limit {
						t.Fatalf("page %d holds %d results, limit %d", pages, len(p.Results), tc.limit)
					}
					var ids []string
					if tc.resultType == "" {
						ids = azNames(t, p.Results)
					} else {
						ids = azIDs(t, p.Results, tc.resultType)
					}
					got = append(got, ids...)
					// c-4-5-2: a non-empty next_token while results remain,
					// "" at the end.
					if p.NextToken == "" {
						break
					}
					if len(p.Results) == 0 {
						t.Fatalf("page %d is empty but has a next_token", pages)
					}
					if pages > len(tc.want) {
						t.Fatalf("more pages than results: %v so far", got)
					}
					token = p.NextToken
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Errorf("results over %d pages %v, want %v once each", pages, got, tc.want)
				}
				if wantPages := (len(tc.want) + tc.limit - 1) / tc.limit; pages != wantPages {
					t.Errorf("%d pages, want %d", pages, wantPages)
				}
			})
		}

		t.Run("limit absent, 0 or large: one page of everything", func(t *testing.T) {
			for _, page := range []any{nil, azObj{}, azObj{"limit": 0}, azObj{"limit": 100}, azObj{"limit": 1 << 30}, azObj{"token": ""}} {
				body := subjectSearch
				if page != nil {
					body = azWith(subjectSearch, "page", page)
				}
				p := azSearchOf(t, c.post(t, azSearchSubjectPath, serviceToken, body))
				if got := azIDs(t, p.Results, "user"); !slices.Equal(got, []string{"alice", "bob", "carol"}) || p.NextToken != "" {
					t.Errorf("page %v: results %v, next_token %q; want all three and no token", page, got, p.NextToken)
				}
			}
		})

		// The first page of a subject search with limit 1, and its token.
		first := func(t *testing.T) (azPage, string) {
			t.Helper()
			p := azSearchOf(t, c.post(t, azSearchSubjectPath, serviceToken, azWith(subjectSearch, "page", azObj{"limit": 1})))
			if len(p.Results) != 1 || p.NextToken == "" {
				t.Fatalf("first page %v, next_token %q: want one result and a token", p.Results, p.NextToken)
			}
			return p, p.NextToken
		}

		// The certification's follow-up (c-4-5-2) sends the token alone,
		// without the first request's limit, as the standard's own
		// pagination example does.
		t.Run("c-4-5-2 a token sent without the first page's limit", func(t *testing.T) {
			p1, token := first(t)
			a := c.post(t, azSearchSubjectPath, serviceToken, azWith(subjectSearch, "page", azObj{"token": token}))
			if a.status != http.StatusOK {
				t.Fatalf("follow-up as certification c-4-5-2 sends it: status %d, want 200; body %s", a.status, a.body)
			}
			p2 := azSearchOf(t, a)
			got := append(azIDs(t, p1.Results, "user"), azIDs(t, p2.Results, "user")...)
			slices.Sort(got)
			if len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Errorf("a result repeated across pages: %v", got)
			}
		})

		// api, "search-pagination": with a token every entity and parameter
		// must be as on the first page; tenantgate refuses a change.
		t.Run("a token sent with a changed request is a 400", func(t *testing.T) {
			_, token := first(t)
			for _, tc := range []struct {
				name, path string
				body       azObj
			}{
				{"action changed", azSearchSubjectPath, azWith(subjectSearch, "action", azAction("update"))},
				{"resource changed", azSearchSubjectPath, azWith(subjectSearch, "resource", azCompany("record-3"))},
				{"limit changed", azSearchSubjectPath, azWith(subjectSearch, "page", azObj{"limit": 2})},
				{"sent to the resource search", azSearchResourcePath, resourceSearch},
				{"sent to the action search", azSearchActionPath, actionSearch},
			} {
				t.Run(tc.name, func(t *testing.T) {
					page, _ := tc.body["page"].(azObj)
					if page == nil {
						page = azObj{"limit": 1}
					}
					azWantProblem(t, c.post(t, tc.path, serviceToken, azWith(tc.body, "page", azWith(page, "token", token))), http.StatusBadRequest)
				})
			}
			// The control: the unchanged request with the token is fine.
			if a := c.post(t, azSearchSubjectPath, serviceToken, azWith(subjectSearch, "page", azObj{"limit": 1, "token": token})); a.status != http.StatusOK {
				t.Errorf("unchanged request with its token: status %d: %s", a.status, a.body)
			}
		})

		t.Run("a malformed token is a 400", func(t *testing.T) {
			for _, token := range []string{"not-a-token", "e30", strings.Repeat("A", 4096)} {
				azWantProblem(t, c.post(t, azSearchSubjectPath, serviceToken, azWith(subjectSearch, "page", azObj{"limit": 1, "token": token})), http.StatusBadRequest)
			}
		})

		t.Run("a negative or non-integer limit is a 400", func(t *testing.T) {
			for _, tc := range []struct {
				path string
				body azObj
			}{{azSearchSubjectPath, subjectSearch}, {azSearchResourcePath, resourceSearch}, {azSearchActionPath, actionSearch}} {
				for _, limit := range []any{-1, 1.5, "1"} {
					azWantProblem(t, c.post(t, tc.path, serviceToken, azWith(tc.body, "page", azObj{"limit": limit})), http.StatusBadRequest)
				}
			}
		})
	})

	// tenantgate: who holds a permission on a company is its managers'
	// business (manage_members, as for the members list); resource and
	// action searches by a user token may only be about the user.
	t.Run("callers", func(t *testing.T) {
		aliceTok, bobTok, carolTok := c.s.token("alice"), c.s.token("bob"), c.s.token("carol")
		for _, tc := range []struct {
			name, path, bearer string
			body               azObj
			status             int
			want               []string
		}{
			{"subject search by an editor (no manage_members)", azSearchSubjectPath, aliceTok, subjectSearch, http.StatusForbidden, nil},
			{"subject search by a viewer", azSearchSubjectPath, bobTok, subjectSearch, http.StatusForbidden, nil},
			{"subject search by an admin (manage_members)", azSearchSubjectPath, carolTok, subjectSearch, http.StatusOK, []string{"alice", "bob", "carol"}},
			{"subject search by an admin elsewhere", azSearchSubjectPath, carolTok, azWith(subjectSearch, "resource", azCompany("record-2")), http.StatusForbidden, nil},
			{"resource search about itself", azSearchResourcePath, aliceTok, resourceSearch, http.StatusOK, []string{"record-1"}},
			{"resource search about another", azSearchResourcePath, aliceTok, azWith(resourceSearch, "subject", azUser("carol")), http.StatusForbidden, nil},
			{"action search about itself", azSearchActionPath, bobTok, azWith(actionSearch, "subject", azUser("bob")), http.StatusOK, []string{"read"}},
			{"action search about another", azSearchActionPath, bobTok, actionSearch, http.StatusForbidden, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := c.post(t, tc.path, tc.bearer, tc.body)
				if tc.status != http.StatusOK {
					azWantProblem(t, a, tc.status)
					return
				}
				p := azSearchOf(t, a)
				got := azFound(t, tc.path, p)
				if !slices.Equal(got, tc.want) {
					t.Errorf("results %v, want %v", got, tc.want)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Discovery: PDP metadata (certification c-6, api "pdp-metadata").

func azDiscovery(t *testing.T, c azClient) {
	endpoints := map[string]string{
		"access_evaluation_endpoint":  azEvaluationPath,
		"access_evaluations_endpoint": azEvaluationsPath,
		"search_subject_endpoint":     azSearchSubjectPath,
		"search_resource_endpoint":    azSearchResourcePath,
		"search_action_endpoint":      azSearchActionPath,
	}
	// A valid request for every endpoint, and what must then be true of
	// its answer.
	valid := map[string]azObj{
		"access_evaluation_endpoint":  azEval(azUser("alice"), azAction("read"), azCompany("record-1")),
		"access_evaluations_endpoint": {"subject": azUser("alice"), "action": azAction("read"), "evaluations": []any{azObj{"resource": azCompany("record-1")}}},
		"search_subject_endpoint":     {"subject": azTypeOnly("user"), "action": azAction("read"), "resource": azCompany("record-1")},
		"search_resource_endpoint":    {"subject": azUser("alice"), "action": azAction("read"), "resource": azTypeOnly("company")},
		"search_action_endpoint":      {"subject": azUser("alice"), "resource": azCompany("record-1")},
	}
	// Each replica names itself: the identifier must be the URL the
	// metadata was fetched from (api, "pdp-metadata-data-endpoint-
	// validation"), or a PEP must not use it.
	for i, base := range c.s.baseURLs {
		t.Run(fmt.Sprintf("replica %d", i), func(t *testing.T) {
			fetch := func(t *testing.T, header http.Header) azObj {
				t.Helper()
				a := c.raw(t, "GET", base+azConfigurationPath, "", "", nil, header)
				// c-6-2 and c-6-5: 200, application/json, a JSON object;
				// no token is needed to read it.
				return azWantJSON(t, a)
			}
			doc := fetch(t, nil)
			// c-6-3 and c-6-5: policy_decision_point matches the base URL
			// used for discovery, with no trailing slash, query or fragment.
			if doc["policy_decision_point"] != base {
				t.Errorf("policy_decision_point %#v, want %q", doc["policy_decision_point"], base)
			}
			for key, path := range endpoints {
				// c-6-4: all optional endpoints are advertised, since
				// tenantgate serves them all.
				got, _ := doc[key].(string)
				if got != base+path {
					t.Errorf("%s %#v, want %q", key, doc[key], base+path)
					continue
				}
				if u, err := url.Parse(got); err != nil || u.RawQuery != "" || u.Fragment != "" || !u.IsAbs() {
					t.Errorf("%s %q is not an absolute URL without query and fragment (%v)", key, got, err)
				}
			}
			if raw, ok := doc["capabilities"]; ok {
				if _, isArray := raw.([]any); !isArray {
					t.Errorf("capabilities %#v, want an array", raw)
				}
			}
			// Every advertised endpoint answers a valid request.
			for key := range endpoints {
				t.Run(key+" answers", func(t *testing.T) {
					target, _ := doc[key].(string)
					if target == "" {
						t.Fatalf("%s not advertised: tenantgate serve advertises every endpoint", key)
					}
					a := c.post(t, target, serviceToken, valid[key])
					switch key {
					case "access_evaluation_endpoint":
						if d := azDecisionOf(t, a); !d.Decision {
							t.Error("decision false, want rule 1's true")
						}
					case "access_evaluations_endpoint":
						if got := azDecisions(azEvaluationsOf(t, a)); !slices.Equal(got, []bool{true}) {
							t.Errorf("decisions %v, want [true]", got)
						}
					default:
						if p := azSearchOf(t, a); len(p.Results) == 0 {
							t.Error("no results, want the fixture's")
						}
					}
				})
			}
			t.Run("the metadata is read with GET only", func(t *testing.T) {
				a := c.raw(t, "POST", base+azConfigurationPath, serviceToken, "application/json", []byte(`{}`), nil)
				azWantProblem(t, a, http.StatusMethodNotAllowed)
			})
			// The identifier comes from the request's own URL, never from
			// forwarding headers any client can send.
			t.Run("forwarding headers do not change the identifier", func(t *testing.T) {
				doc := fetch(t, http.Header{"X-Forwarded-Host": {"pdp.attacker.example"}, "X-Forwarded-Proto": {"https"},
					"Forwarded": {"host=pdp.attacker.example;proto=https"}})
				if doc["policy_decision_point"] != base {
					t.Errorf("policy_decision_point %#v with forwarding headers, want %q", doc["policy_decision_point"], base)
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Consistency: tenantgate's rule that context.consistency_token makes an
// AuthZEN read at least as fresh as a write that answered with the token,
// at once (internal/app/ryw_test.go tests /v1 the same way).

func azConsistency(t *testing.T, c azClient) {
	carol := c.s.token("carol") // admin of record-3: she manages its members
	const rounds = 5
	for i := range rounds {
		user := fmt.Sprintf("erin%d", i)
		// No pause between a write and the read carrying its token: the
		// token alone must make the read reflect the write. With the remote
		// backend the write and the reads land on different replicas.
		a := c.s.mustSend(t, "PUT", memberPath("record-3", user), carol, []byte(`{"role":"viewer"}`), nil)
		var granted struct {
			ConsistencyToken string `json:"consistency_token"`
		}
		decodeAnswer(t, a, &granted)
		if a.status != http.StatusOK || granted.ConsistencyToken == "" {
			t.Fatalf("round %d: grant: status %d, body %s", i, a.status, a.body)
		}
		tokenCtx := azObj{"consistency_token": granted.ConsistencyToken}
		if d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken,
			azWith(azEval(azUser(user), azAction("read"), azCompany("record-3")), "context", tokenCtx))); !d.Decision {
			t.Fatalf("round %d: %s read record-3 right after the grant at %s: decision false", i, user, granted.ConsistencyToken)
		}
		ds := azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": azUser(user), "resource": azCompany("record-3"),
			"context": tokenCtx, "evaluations": []any{azObj{"action": azAction("read")}, azObj{"action": azAction("update")}}}))
		if got := azDecisions(ds); !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("round %d: boxcar right after the grant: %v, want [true false]", i, got)
		}
		// An item's own context replaces the request's (c-3-2-6); without
		// a consistency_token of its own the item is still answered at the
		// request's, so it too reflects the write.
		ds = azEvaluationsOf(t, c.post(t, azEvaluationsPath, serviceToken, azObj{"subject": azUser(user), "action": azAction("read"),
			"context": tokenCtx, "evaluations": []any{
				azObj{"resource": azCompany("record-3"), "context": azObj{"source": "item"}},
				azObj{"resource": azCompany("record-3"), "context": azObj{"explain": true}},
			}}))
		if got := azDecisions(ds); !slices.Equal(got, []bool{true, true}) {
			t.Fatalf("round %d: items with contexts of their own right after the grant: %v (%v), want [true true]", i, got, ds)
		}
		if i == 0 {
			p := azSearchOf(t, c.post(t, azSearchSubjectPath, serviceToken, azObj{"subject": azTypeOnly("user"),
				"action": azAction("read"), "resource": azCompany("record-3"), "context": tokenCtx}))
			if got := azIDs(t, p.Results, "user"); !slices.Equal(got, []string{"carol", user}) {
				t.Errorf("subject search right after the grant: %v, want [carol %s]", got, user)
			}
			p = azSearchOf(t, c.post(t, azSearchResourcePath, serviceToken, azObj{"subject": azUser(user),
				"action": azAction("read"), "resource": azTypeOnly("company"), "context": tokenCtx}))
			if got := azIDs(t, p.Results, "company"); !slices.Equal(got, []string{"record-3"}) {
				t.Errorf("resource search right after the grant: %v, want [record-3]", got)
			}
			p = azSearchOf(t, c.post(t, azSearchActionPath, serviceToken, azObj{"subject": azUser(user),
				"resource": azCompany("record-3"), "context": tokenCtx}))
			if got := azNames(t, p.Results); !slices.Equal(got, []string{"read"}) {
				t.Errorf("action search right after the grant: %v, want [read]", got)
			}
		}

		// The revocation's token must never let the revoked read through.
		a = c.s.mustSend(t, "DELETE", memberPath("record-3", user), carol, nil, nil)
		token := a.header.Get("Consistency-Token")
		if a.status != http.StatusNoContent || token == "" {
			t.Fatalf("round %d: revoke: status %d, token %q, body %s", i, a.status, token, a.body)
		}
		tokenCtx = azObj{"consistency_token": token}
		if d := azDecisionOf(t, c.post(t, azEvaluationPath, serviceToken,
			azWith(azEval(azUser(user), azAction("read"), azCompany("record-3")), "context", tokenCtx))); d.Decision {
			t.Fatalf("round %d: %s still reads record-3 right after the revocation at %s", i, user, token)
		}
		p := azSearchOf(t, c.post(t, azSearchResourcePath, serviceToken, azObj{"subject": azUser(user),
			"action": azAction("read"), "resource": azTypeOnly("company"), "context": tokenCtx}))
		if len(p.Results) != 0 {
			t.Fatalf("round %d: resource search right after the revocation: %v", i, p.Results)
		}
	}
}

// ---------------------------------------------------------------------------
// Fail closed.

// TestAuthZENFailsClosedWhenSpiceDBStops wires the real gateway to a real
// embedded SpiceDB, as TestChecksFailClosedWhenSpiceDBCannotAnswer does for
// /v1, then stops SpiceDB: every AuthZEN answer that needs it must become a
// 503 problem, never a permit or a result. The full stacks give a test no
// handle on their SpiceDB, and the shared suite's stacks must stay up.
func TestAuthZENFailsClosedWhenSpiceDBStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, sdb, aliceTok := spicedbOnlyGateway(t, ctx, authz.Membership{UserID: "alice", CompanyID: "record-1", Role: authz.RoleEditor, Status: authz.StatusActive})
	c := azClient{s: &stack{t: t, baseURLs: []string{srv.URL}, client: &http.Client{Timeout: 30 * time.Second}}}

	read1 := azEval(azUser("alice"), azAction("read"), azCompany("record-1"))
	boxcar := func(semantic string) azObj {
		return azObj{"subject": azUser("alice"), "resource": azCompany("record-1"), "options": azObj{"evaluations_semantic": semantic},
			"evaluations": []any{azObj{"action": azAction("read")}, azObj{"action": azAction("update")}}}
	}
	requests := []struct {
		name, path, bearer string
		body               azObj
		up                 func(t *testing.T, a answer) // what SpiceDB up answers
	}{
		{"evaluation", azEvaluationPath, serviceToken, read1, azWantPermit},
		{"evaluation by a user token", azEvaluationPath, aliceTok, read1, azWantPermit},
		{"evaluation with explain", azEvaluationPath, serviceToken, azWith(read1, "context", azObj{"explain": true}), azWantPermit},
		{"evaluations execute_all", azEvaluationsPath, serviceToken, boxcar("execute_all"), azWantPermits},
		{"evaluations deny_on_first_deny", azEvaluationsPath, serviceToken, boxcar("deny_on_first_deny"), azWantPermits},
		{"evaluations permit_on_first_permit", azEvaluationsPath, serviceToken, boxcar("permit_on_first_permit"), azWantPermits},
		{"subject search", azSearchSubjectPath, serviceToken, azObj{"subject": azTypeOnly("user"), "action": azAction("read"), "resource": azCompany("record-1")}, azWantResults},
		{"resource search", azSearchResourcePath, serviceToken, azObj{"subject": azUser("alice"), "action": azAction("read"), "resource": azTypeOnly("company")}, azWantResults},
		{"action search", azSearchActionPath, serviceToken, azObj{"subject": azUser("alice"), "resource": azCompany("record-1")}, azWantResults},
	}
	for _, r := range requests {
		r.up(t, c.post(t, r.path, r.bearer, r.body))
	}

	// A write's token (a WAL position) cannot be honoured by a gateway
	// that follows no sync: 503, even with SpiceDB up, since nothing tells
	// whether the write is reflected.
	t.Run("a WAL position token with no sync to follow", func(t *testing.T) {
		a := c.post(t, azEvaluationPath, serviceToken, azWith(read1, "context", azObj{"consistency_token": "0/16B3748"}))
		azWantProblem(t, a, http.StatusServiceUnavailable)
	})

	if err := sdb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range requests {
		t.Run(r.name+" with SpiceDB down", func(t *testing.T) {
			a := c.post(t, r.path, r.bearer, r.body)
			azWantProblem(t, a, http.StatusServiceUnavailable)
			if a.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// azFound is what a search found: user or company IDs, or action names.
func azFound(t *testing.T, path string, p azPage) []string {
	t.Helper()
	switch path {
	case azSearchSubjectPath:
		return azIDs(t, p.Results, "user")
	case azSearchResourcePath:
		return azIDs(t, p.Results, "company")
	default:
		return azNames(t, p.Results)
	}
}

func azWantPermit(t *testing.T, a answer) {
	t.Helper()
	if d := azDecisionOf(t, a); !d.Decision {
		t.Fatal("decision false with SpiceDB up")
	}
}

// azWantPermits requires a boxcar whose first decision is a permit (alice,
// an editor, reads and updates).
func azWantPermits(t *testing.T, a answer) {
	t.Helper()
	if ds := azEvaluationsOf(t, a); len(ds) == 0 || !ds[0].Decision {
		t.Fatalf("decisions %v with SpiceDB up, want a permit first", azDecisions(ds))
	}
}

func azWantResults(t *testing.T, a answer) {
	t.Helper()
	if p := azSearchOf(t, a); len(p.Results) == 0 {
		t.Fatal("no results with SpiceDB up")
	}
}
