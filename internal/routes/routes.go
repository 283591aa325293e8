// Package routes maps the requests of an API that tenantgate guards behind
// a reverse proxy (nginx auth_request, Caddy forward_auth, Traefik
// ForwardAuth, Envoy ext_authz) to the permission each needs and the
// company it is about: the --routes file.
//
// A file is a list of rules, each a method set, a path pattern, a
// permission and where the company ID is: a {company} segment of the path,
// a header or a query parameter. Patterns are matched segment by segment:
// a literal matches itself, {name} or * one segment, ** what is left (zero
// or more segments, last only).
//
// Precedence: the most specific pattern wins. Patterns are compared
// segment by segment from the left: a literal beats {name} and *, which
// beat the end of a pattern, which beats **. On equal patterns a rule that lists methods beats one for every
// method. Two rules with equal patterns whose methods overlap are refused
// at load, so no request ever depends on the order of the file.
//
// A request that matches no rule is denied unless the file says
// `unmatched: allow`. Paths that a proxy or an upstream could read as
// another path (dot segments, encoded slashes or backslashes, empty
// segments, control characters, a raw '#') are refused rather than matched: the
// upstream must serve the company that was checked.
package routes

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// File is the --routes file as written.
type File struct {
	// Unmatched is "deny" (the default) or "allow": what a request that
	// matches no rule gets. "allow" passes it without any check.
	Unmatched string `json:"unmatched"`
	Routes    []Rule `json:"routes"`
}

// Rule is one rule of the file.
type Rule struct {
	// Methods the rule applies to; empty means every method.
	Methods    []string `json:"methods"`
	Path       string   `json:"path"`
	Permission string   `json:"permission"`
	// Company says where the company ID is when the path has no {company}
	// segment.
	Company *Source `json:"company"`
}

// Source is a header or a query parameter of the original request.
type Source struct {
	Header string `json:"header"`
	Query  string `json:"query"`
}

// companyParam is the path parameter that names the company.
const companyParam = "company"

type segmentKind int

// Segment kinds, in the order of precedence. end stands for a pattern
// that has ended: /a is more specific than /a/** for the path /a.
const (
	rest    segmentKind = iota + 1 // **
	end                            // no segment left
	single                         // {name} or *
	literal                        // itself
)

type segment struct {
	kind    segmentKind
	literal string
	name    string // a {name}'s name
}

// rule is a validated Rule.
type rule struct {
	pattern    string
	methods    []string // sorted; nil: every method
	segments   []segment
	permission authz.Permission
	// companySegment is the index of {company}; -1 when the company comes
	// from header or query.
	companySegment int
	header, query  string
}

// Table is a loaded route file, rules in order of precedence.
type Table struct {
	rules          []rule
	allowUnmatched bool
}

// Load reads and validates a route file.
func Load(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("routes %s: %w", path, err)
	}
	return t, nil
}

// Parse validates a route file's content; every problem is reported, each
// naming its rule.
func Parse(data []byte) (*Table, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", authz.ErrInvalid, err)
	}
	t := &Table{}
	var errs []error
	switch f.Unmatched {
	case "", "deny":
	case "allow":
		t.allowUnmatched = true
	default:
		errs = append(errs, fmt.Errorf("unmatched: %q: want deny or allow", f.Unmatched))
	}
	if len(f.Routes) == 0 {
		errs = append(errs, errors.New("no routes: a file without rules would deny (or allow) everything"))
	}
	for i, spec := range f.Routes {
		r, err := compile(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] %q: %w", i, spec.Path, err))
			continue
		}
		t.rules = append(t.rules, r)
	}
	slices.SortStableFunc(t.rules, func(a, b rule) int { return -precedence(a, b) })
	errs = append(errs, overlaps(t.rules)...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", authz.ErrInvalid, err)
	}
	return t, nil
}

func compile(spec Rule) (rule, error) {
	r := rule{pattern: spec.Path, companySegment: -1}
	var errs []error
	p, err := authz.ParsePermission(spec.Permission)
	if err != nil {
		errs = append(errs, err)
	}
	r.permission = p
	for _, m := range spec.Methods {
		if m == "" || strings.ToUpper(m) != m || strings.ContainsFunc(m, func(c rune) bool { return c <= ' ' || c > '~' }) {
			errs = append(errs, fmt.Errorf("method %q: want an upper-case HTTP method such as GET", m))
		}
		if !slices.Contains(r.methods, m) {
			r.methods = append(r.methods, m)
		}
	}
	slices.Sort(r.methods)
	if r.segments, err = parsePattern(spec.Path); err != nil {
		errs = append(errs, err)
	}
	for i, s := range r.segments {
		if s.kind == single && s.name == companyParam {
			r.companySegment = i
		}
	}
	if spec.Company != nil {
		r.header, r.query = http.CanonicalHeaderKey(spec.Company.Header), spec.Company.Query
	}
	sources := 0
	for _, has := range []bool{r.companySegment >= 0, r.header != "", r.query != ""} {
		if has {
			sources++
		}
	}
	switch {
	case sources == 0:
		errs = append(errs, errors.New("no company source: put {company} in the path, or give company.header or company.query"))
	case sources > 1:
		errs = append(errs, errors.New("more than one company source: give exactly one of {company} in the path, company.header and company.query"))
	}
	return r, errors.Join(errs...)
}

func parsePattern(pattern string) ([]segment, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, errors.New("path must start with /")
	}
	raw := strings.Split(pattern[1:], "/")
	segments := make([]segment, 0, len(raw))
	names := map[string]bool{}
	for i, s := range raw {
		switch {
		case s == "**":
			if i != len(raw)-1 {
				return nil, errors.New("** may only be the last segment")
			}
			segments = append(segments, segment{kind: rest})
		case s == "*":
			segments = append(segments, segment{kind: single})
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			name := s[1 : len(s)-1]
			if name == "" || strings.ContainsFunc(name, func(c rune) bool { return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') }) {
				return nil, fmt.Errorf("parameter %q: want {name} of lower-case letters, digits and _", s)
			}
			if names[name] {
				return nil, fmt.Errorf("parameter {%s} appears twice", name)
			}
			names[name] = true
			segments = append(segments, segment{kind: single, name: name})
		case s == "" && i != len(raw)-1, strings.ContainsAny(s, "{}*"), s == ".", s == "..":
			return nil, fmt.Errorf("segment %q: want a literal, {name}, * or **", s)
		default:
			segments = append(segments, segment{kind: literal, literal: s})
		}
	}
	return segments, nil
}

// precedence orders two rules: positive when a is more specific than b.
func precedence(a, b rule) int {
	for i := 0; i < max(len(a.segments), len(b.segments)); i++ {
		if d := int(kindAt(a, i)) - int(kindAt(b, i)); d != 0 {
			return d
		}
	}
	switch {
	case a.methods != nil && b.methods == nil:
		return 1
	case a.methods == nil && b.methods != nil:
		return -1
	}
	return 0
}

func kindAt(r rule, i int) segmentKind {
	if i < len(r.segments) {
		return r.segments[i].kind
	}
	return end
}

// samePattern reports whether two patterns match exactly the same paths.
func samePattern(a, b rule) bool {
	return slices.EqualFunc(a.segments, b.segments, func(x, y segment) bool {
		return x.kind == y.kind && x.literal == y.literal
	})
}

func methodsOverlap(a, b rule) bool {
	if a.methods == nil || b.methods == nil {
		return a.methods == nil && b.methods == nil
	}
	return slices.ContainsFunc(a.methods, func(m string) bool { return slices.Contains(b.methods, m) })
}

// overlaps reports rules no precedence can order: equal patterns for a
// common method.
func overlaps(rules []rule) []error {
	var errs []error
	for i := range rules {
		for j := i + 1; j < len(rules); j++ {
			if samePattern(rules[i], rules[j]) && methodsOverlap(rules[i], rules[j]) {
				errs = append(errs, fmt.Errorf("rules %q and %q match the same requests: merge them or split their methods", rules[i].pattern, rules[j].pattern))
			}
		}
	}
	return errs
}

// Match is what a request needs.
type Match struct {
	// Matched is false when no rule matched; Allowed then says whether the
	// file lets such requests through unchecked.
	Matched, Allowed bool
	Permission       authz.Permission
	Company          string
	// Rule is the matching rule's pattern, for logs.
	Rule string
}

// Match finds the rule for a request with method and request target uri
// (path and query, as the client sent them), reading a header source from
// h. A target that could be read as another path, or a company source
// given twice or not at all, is an authz.ErrInvalid.
func (t *Table) Match(method, uri string, h http.Header) (Match, error) {
	path, query, err := splitTarget(uri)
	if err != nil {
		return Match{}, err
	}
	for _, r := range t.rules {
		if r.methods != nil && !slices.Contains(r.methods, method) {
			continue
		}
		if !r.matches(path) {
			continue
		}
		company, err := r.company(path, query, h)
		if err != nil {
			return Match{}, err
		}
		return Match{Matched: true, Permission: r.permission, Company: company, Rule: r.pattern}, nil
	}
	return Match{Allowed: t.allowUnmatched}, nil
}

func (r rule) matches(path []string) bool {
	for i, s := range r.segments {
		if s.kind == rest {
			return true
		}
		if i >= len(path) || s.kind == literal && path[i] != s.literal || s.kind == single && path[i] == "" {
			return false
		}
	}
	return len(path) == len(r.segments)
}

func (r rule) company(path []string, query url.Values, h http.Header) (string, error) {
	var id string
	switch {
	case r.companySegment >= 0:
		id = path[r.companySegment]
	case r.header != "":
		values := h.Values(r.header)
		if len(values) != 1 {
			return "", fmt.Errorf("%w: the request needs exactly one %s header naming the company", authz.ErrInvalid, r.header)
		}
		id = values[0]
	default:
		values := query[r.query]
		if len(values) != 1 {
			return "", fmt.Errorf("%w: the request needs exactly one %s query parameter naming the company", authz.ErrInvalid, r.query)
		}
		id = values[0]
	}
	if err := authz.ValidateCompanyID(id); err != nil {
		return "", err
	}
	return id, nil
}

// splitTarget reads a request target into its path segments, unescaped, and
// its query. It refuses what another reader of the same target could take
// for a different path.
func splitTarget(uri string) ([]string, url.Values, error) {
	// A request target has no fragment, but a client can send a raw '#',
	// which proxies pass on as part of the path: cutting it off here would
	// check another path than the upstream serves.
	if strings.Contains(uri, "#") {
		return nil, nil, fmt.Errorf("%w: original URI holds a raw '#'", authz.ErrInvalid)
	}
	rawPath, rawQuery, _ := strings.Cut(uri, "?")
	if !strings.HasPrefix(rawPath, "/") {
		return nil, nil, fmt.Errorf("%w: original URI %q is not an absolute path", authz.ErrInvalid, uri)
	}
	if strings.ContainsFunc(rawPath, func(c rune) bool { return c < ' ' || c == 0x7f || c == '\\' }) {
		return nil, nil, fmt.Errorf("%w: original URI holds a control character or a backslash", authz.ErrInvalid)
	}
	raw := strings.Split(rawPath[1:], "/")
	path := make([]string, len(raw))
	for i, s := range raw {
		lower := strings.ToLower(s)
		if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
			return nil, nil, fmt.Errorf("%w: original URI encodes a slash or backslash inside a segment", authz.ErrInvalid)
		}
		seg, err := url.PathUnescape(s)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: original URI is not validly escaped", authz.ErrInvalid)
		}
		switch {
		case seg == "." || seg == "..":
			return nil, nil, fmt.Errorf("%w: original URI holds a dot segment", authz.ErrInvalid)
		case seg == "" && i != len(raw)-1:
			return nil, nil, fmt.Errorf("%w: original URI holds an empty segment", authz.ErrInvalid)
		}
		path[i] = seg
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: original URI has a malformed query", authz.ErrInvalid)
	}
	return path, query, nil
}
