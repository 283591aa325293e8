package spicedb

import (
	"fmt"
	"slices"
	"strconv"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/datastore/revisionparsing"
	zedtokenproto "github.com/authzed/spicedb/pkg/proto/impl/v1"
	"github.com/authzed/spicedb/pkg/zedtoken"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// DatastoreEngines lists the datastore engines whose revisions a Client can
// compare: SpiceDB's own names for them.
func DatastoreEngines() []string {
	engines := make([]string, 0, len(revisionparsing.ParseRevisionStringByDatastoreEngineID))
	for e := range revisionparsing.ParseRevisionStringByDatastoreEngineID {
		engines = append(engines, e)
	}
	slices.Sort(engines)
	return engines
}

// revisionParser parses the revisions of one datastore engine.
type revisionParser revisionparsing.ParsingFunc

func parserFor(engine string) (revisionParser, error) {
	parse, ok := revisionparsing.ParseRevisionStringByDatastoreEngineID[engine]
	if !ok {
		return nil, fmt.Errorf("spicedb: unknown datastore engine %q (want one of %v)", engine, DatastoreEngines())
	}
	return revisionParser(parse), nil
}

// revision opens a ZedToken. Token strings are not ordered; only the
// revisions inside them are, and only by the rules of their engine.
func (p revisionParser) revision(token string) (datastore.Revision, error) {
	decoded, err := zedtoken.Decode(&v1.ZedToken{Token: token})
	if err != nil {
		return nil, err
	}
	var rev string
	switch v := decoded.GetVersionOneof().(type) {
	case *zedtokenproto.DecodedZedToken_V1:
		rev = v.V1.GetRevision()
	case *zedtokenproto.DecodedZedToken_DeprecatedV1Zookie:
		rev = strconv.FormatUint(v.DeprecatedV1Zookie.GetRevision(), 10)
	default:
		return nil, fmt.Errorf("zedtoken of an unknown version")
	}
	return p(rev)
}

// freshest is the token a read must be at least as fresh as, given the
// caller's token and the floor (the last write the sync applied; "" for
// none). The caller's token may make a read fresher, never older: it
// replaces the floor only when its revision is known to be newer. Postgres
// revisions are snapshots, which two concurrent ones can order neither way;
// the floor wins those too, since it is what keeps a revocation the sync
// applied from being answered from an older snapshot. A caller's token
// that does not decode is an authz.ErrInvalid.
func (p revisionParser) freshest(given, floor string) (string, error) {
	switch {
	case given == "":
		return floor, nil
	case floor == "":
		return given, nil
	}
	g, err := p.revision(given)
	if err != nil {
		return "", fmt.Errorf("spicedb: %w: malformed consistency token", authz.ErrInvalid)
	}
	f, err := p.revision(floor)
	if err != nil {
		// The floor is ours; one we cannot read still holds reads back
		// to where the sync is.
		return floor, nil
	}
	if g.GreaterThan(f) {
		return given, nil
	}
	return floor, nil
}

// includes reports whether revision have is known to include revision want:
// equal or newer. A token that does not decode includes nothing.
func (p revisionParser) includes(have, want string) bool {
	h, err := p.revision(have)
	if err != nil {
		return false
	}
	w, err := p.revision(want)
	if err != nil {
		return false
	}
	return h.Equal(w) || h.GreaterThan(w)
}
