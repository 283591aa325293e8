package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// ErrPositionAhead is what an AppliedWaiter answers for a WAL position the
// database has not reached, or for one of a timeline it has not reached.
// Unlike every other failure to wait it is the caller's mistake (400): no
// write answered with it, and waiting would only hold the request for the
// whole ConsistencyWait.
var ErrPositionAhead = errors.New("position ahead of the database's WAL")

// EarlierTimelineError is what an AppliedWaiter answers for a position of
// an earlier timeline than the database's: it is from a history before a
// failover or a restore, which the database's may have lost the write of,
// while the database's WAL has passed or will pass its LSN all the same.
// Waiting cannot tell, so it is refused (400) like ErrPositionAhead.
type EarlierTimelineError struct {
	// Timeline is the database's.
	Timeline uint32
}

func (e *EarlierTimelineError) Error() string {
	return fmt.Sprintf("position from before the database's timeline %d", e.Timeline)
}

const (
	consistencyHeader = "Consistency-Token"
	// maxConsistencyTokenBytes is far above a ZedToken's size; anything
	// longer is not a token this service issued.
	maxConsistencyTokenBytes = 1024
)

// A consistency token is either a ZedToken from an earlier answer, passed to
// SpiceDB as it is, or a Postgres WAL position, which is first waited for:
// what a write answers with, the LSN and the timeline it was read on
// (0/16B3748@1), or a bare LSN, what an application that writes rows
// itself reads after its commit. A ZedToken is standard base64 of a
// protobuf message ("Gh8KEzE3..."), so it may contain '/' too, but never
// '@': what tells the two apart is that a position has an '@' or is
// nothing but hex digits around one '/' (authz.ParsePosition).

// lsnToken reads token as a WAL position; ok is false for a ZedToken. Its
// characters alone tell which of the two a token is; authz.ParsePosition
// alone reads it. A token with an '@', or of a bare LSN's alphabet, that is
// not a valid position (a half longer than 32 bits, a timeline that is not
// a decimal from 1 to 2^32-1) was meant as one: it is an authz.ErrInvalid,
// refused rather than sent to SpiceDB, which could only call it a malformed
// ZedToken.
func lsnToken(token string) (pos authz.Position, ok bool, err error) {
	if !strings.Contains(token, "@") && (strings.Count(token, "/") != 1 || strings.ContainsFunc(token, notHexOrSlash)) {
		return authz.Position{}, false, nil
	}
	if pos, err = authz.ParsePosition(token); err != nil {
		return authz.Position{}, false, fmt.Errorf("consistency token: %w (each half at most 8 hex digits, then optionally '@' and the timeline)", err)
	}
	return pos, true, nil
}

// notHexOrSlash is a character no WAL position holds.
func notHexOrSlash(r rune) bool {
	return r != '/' && !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F')
}

// consistencyToken takes the token from the body or the Consistency-Token
// header; both may be given only if they agree, because silently preferring
// one could read older data than the caller asked for.
func consistencyToken(h http.Header, fromBody string) (string, error) {
	token := fromBody
	if len(h.Values(consistencyHeader)) > 1 {
		return "", fmt.Errorf("%w: %s given more than once", authz.ErrInvalid, consistencyHeader)
	}
	fromHeader := h.Get(consistencyHeader)
	switch {
	case token == "":
		token = fromHeader
	case fromHeader != "" && fromHeader != token:
		return "", fmt.Errorf("%w: consistency token in header and body differ", authz.ErrInvalid)
	}
	if len(token) > maxConsistencyTokenBytes {
		return "", fmt.Errorf("%w: consistency token longer than %d bytes", authz.ErrInvalid, maxConsistencyTokenBytes)
	}
	return token, nil
}

// consistency is how fresh a read must be, from the token in the body or
// the Consistency-Token header. A WAL position is turned into a ZedToken by
// waiting, at most ConsistencyWait, until the sync has applied it; a read
// that cannot wait for it (the wait ran out, no sync to follow, the sync's
// state unreadable) fails with an authz.ErrUnavailable (503 with
// Retry-After): answering from data that may predate the write could allow
// what the write revoked. Every read that takes a token comes here.
//
// A mirror the staleness bound calls stale can vouch for no freshness at
// all, so every read fails here with an authz.ErrUnavailable too.
func (g *Gateway) consistency(ctx context.Context, h http.Header, fromBody string) (authz.Consistency, error) {
	if g.stale() {
		return authz.Consistency{}, fmt.Errorf("%w: the permission index lags the database beyond the staleness bound", authz.ErrUnavailable)
	}
	token, err := consistencyToken(h, fromBody)
	if err != nil {
		return authz.Consistency{}, err
	}
	pos, isLSN, err := lsnToken(token)
	if err != nil || !isLSN {
		return authz.Consistency{AtLeastAsFresh: token}, err
	}
	if g.waits == nil {
		return authz.Consistency{}, fmt.Errorf("%w: consistency token %s is a WAL position, and this gateway follows no sync that could apply it", authz.ErrUnavailable, token)
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ConsistencyWait)
	defer cancel()
	zed, err := g.waits.AwaitApplied(ctx, pos)
	if err == nil && zed == "" {
		err = fmt.Errorf("no ZedToken for it")
	}
	if earlier := (*EarlierTimelineError)(nil); errors.As(err, &earlier) {
		return authz.Consistency{}, fmt.Errorf("%w: consistency token %s comes from an earlier database history "+
			"(timeline %d; the database is on timeline %d since a failover or restore): the write it names may have been lost; "+
			"read without a consistency token or with a newer one", authz.ErrInvalid, token, pos.Timeline, earlier.Timeline)
	}
	if errors.Is(err, ErrPositionAhead) {
		return authz.Consistency{}, fmt.Errorf("%w: consistency token %s is ahead of the database's WAL: no write of this database answered with it", authz.ErrInvalid, token)
	}
	if err != nil {
		// The cause is for the log only (%v): whatever its kind, the write
		// is not known to be reflected, which is a 503 to retry, never a
		// client error.
		return authz.Consistency{}, fmt.Errorf("%w: consistency token %s not applied within %v: %v", authz.ErrUnavailable, token, g.cfg.ConsistencyWait, err)
	}
	return authz.Consistency{AtLeastAsFresh: zed}, nil
}
