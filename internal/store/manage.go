package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// The management API's writes decide against Postgres, never SpiceDB, so a
// lagging sync cannot let a stale right through, and they serialise through
// row locks that any writer of the same rows (the application's own SQL
// included) has to respect:
//
//   - the company a change is about is locked FOR NO KEY UPDATE, so two
//     changes to one company (two owners demoting each other) take turns;
//   - every ancestor, and every membership of the actor on the company and
//     its ancestors, is locked FOR SHARE before the decision. A demotion of
//     the actor (an UPDATE or DELETE of such a row) or a move of the company
//     away from where the actor's role lives (an UPDATE of parent_id) waits
//     for the grant to commit, or the grant waits for it and then reads the
//     demoted row: under READ COMMITTED each statement sees what committed
//     before it, and a locking read waits for the row's writer. Either way
//     the outcome is one of the two serial orders;
//   - the active owners counted for the last-owner rule (and for a move to
//     the root) are locked FOR SHARE as well, so a demotion of one of them
//     by the application's own SQL cannot slip between the count and the
//     commit.
//
// Every request is decided twice: first in a read-only transaction that
// takes no lock, and only when that pass allows, again in the writing
// transaction under the locks above, where only the second decision counts. So a caller the rules
// refuse never holds a lock on a company that is not theirs: nobody can
// queue a victim's writes behind requests of their own.
//
// A deadlock or serialisation failure retries the whole transaction.

// lockMode is how lockChain locks the company a request is about.
type lockMode string

const (
	lockNone   lockMode = ""
	lockShare  lockMode = "for share"
	lockChange lockMode = "for no key update"
	lockUpdate lockMode = "for update"
)

// when is mode in the locked pass of a decision, and no lock in the first.
func when(locked bool, mode lockMode) lockMode {
	if locked {
		return mode
	}
	return lockNone
}

// maxAttempts bounds retries after deadlocks and serialisation failures:
// with the pauses between them (at most 150 ms each), a decision that
// keeps conflicting gives up in well under a second, and never outlives
// its caller's deadline.
const maxAttempts = 4

// chain is a company and its ancestors, the company first.
type chain []authz.Company

// company is the chain's own company ("" for an empty chain).
func (c chain) company() string {
	if len(c) == 0 {
		return ""
	}
	return c[0].ID
}

// root is the topmost company of the chain ("" for an empty chain).
func (c chain) root() string {
	if len(c) == 0 {
		return ""
	}
	return c[len(c)-1].ID
}

func (c chain) ids() []string {
	ids := make([]string, len(c))
	for i, co := range c {
		ids[i] = co.ID
	}
	return ids
}

// lockChain reads company id and its ancestors, locking the company with
// mode and the ancestors FOR SHARE (none when mode is lockNone). It returns
// an empty chain for an unknown company. The walk is one row per statement
// because a recursive query cannot lock, and a locked row's parent cannot
// change under it, so the chain read is the chain that holds.
func lockChain(ctx context.Context, q pgx.Tx, id string, mode lockMode) (chain, error) {
	var ch chain
	for next := id; next != "" && len(ch) <= MaxDepth; {
		lock := lockShare
		if len(ch) == 0 || mode == lockNone {
			lock = mode
		}
		var c authz.Company
		err := q.QueryRow(ctx, `select id, name, coalesce(parent_id, '') from companies where id = $1 `+string(lock), next).
			Scan(&c.ID, &c.Name, &c.ParentID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ch, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read company %q: %w", next, translate(err))
		}
		ch = append(ch, c)
		next = c.ParentID
	}
	return ch, nil
}

// roleOn is user's strongest active role on the chain's company, locking the
// memberships it comes from with mode (lockNone: no lock).
func roleOn(ctx context.Context, q pgx.Tx, user string, ch chain, mode lockMode) (authz.Role, error) {
	if len(ch) == 0 {
		return "", nil
	}
	rows, err := q.Query(ctx, `select role, status from company_memberships
		where user_id = $1 and company_id = any($2) `+string(mode), user, ch.ids())
	if err != nil {
		return "", fmt.Errorf("read roles of %q: %w", user, translate(err))
	}
	// An early return below must not leave the rows open: the next query
	// on the transaction would find its connection busy.
	defer rows.Close()
	var roles []authz.Role
	for rows.Next() {
		var role, status string
		if err := rows.Scan(&role, &status); err != nil {
			return "", fmt.Errorf("read roles of %q: %w", user, translate(err))
		}
		if authz.Status(status) == authz.StatusActive {
			roles = append(roles, authz.Role(role))
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read roles of %q: %w", user, translate(err))
	}
	return authz.Strongest(roles...), nil
}

// actorRole is actor's strongest role on the chain's company: its own
// memberships' (roleOn), or its platform role where that is stronger and
// the company exists. viaPlatform reports that the platform role is what
// counts, which the audit trail must say.
func actorRole(ctx context.Context, q pgx.Tx, actor authz.Actor, ch chain, mode lockMode) (role authz.Role, viaPlatform bool, err error) {
	role, err = roleOn(ctx, q, actor.ID, ch, mode)
	if err != nil || len(ch) == 0 || actor.Platform.Role == "" || authz.Strongest(role, actor.Platform.Role) == role {
		return role, false, err
	}
	return actor.Platform.Role, true, nil
}

// decision is what one management transaction decided, for the audit trail.
type decision struct {
	actor, action, company, target string
	reason                         string
	detail                         map[string]string
	// outsider is true when the actor holds no active role on the company
	// or above it. Its refusals are not that company's business: written
	// to its audit trail they would let anybody flood it.
	outsider bool
}

// role is actorRole for the decision d, whose audit detail then names the
// platform role and the group it comes from when that is what counts.
func (d *decision) role(ctx context.Context, q pgx.Tx, actor authz.Actor, ch chain, mode lockMode) (authz.Role, error) {
	role, viaPlatform, err := actorRole(ctx, q, actor, ch, mode)
	if viaPlatform {
		if d.detail == nil {
			d.detail = map[string]string{}
		}
		d.detail["platform_role"] = string(actor.Platform.Role)
		d.detail["platform_group"] = actor.Platform.Group
	}
	return role, err
}

// decider reads the facts of a request, decides it, and in the locked pass
// (only) carries it out.
type decider func(tx pgx.Tx, locked bool) error

// manage runs fn in a transaction, first unlocked and then locked (see the
// top of this file), and records the decision in the audit trail: inside
// the transaction when it commits, on its own when fn refused (the refusal
// is a decision too), or only in the log and a metric when an outsider was
// refused. It returns the WAL position after the commit, the consistency
// token of the write.
func (s *Store) manage(ctx context.Context, d *decision, fn decider) (string, error) {
	// fn notes what it found on d; a retry starts from what the caller
	// asked, so a fact of a rolled-back attempt (a generated company ID, a
	// previous role) cannot end up in the audit row of the next.
	asked := *d
	asked.detail = maps.Clone(d.detail)
	// Two transactions that deadlocked and retry at once tend to meet
	// again; a jittered pause takes them apart.
	pause := &backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: 100 * time.Millisecond}
	var err error
	attempt := 1
	for ; ; attempt++ {
		*d = asked
		d.detail = maps.Clone(asked.detail)
		// The first pass reads one snapshot, so that its facts are those
		// of one moment, as a serial order would have them.
		err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
			return fn(tx, false)
		})
		if err == nil {
			err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
				if err := fn(tx, true); err != nil {
					return err
				}
				return s.audit(ctx, tx, d, nil)
			})
		}
		if !retryable(err) || attempt == maxAttempts {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause.NextBackOff()):
			continue
		}
		break
	}
	if retryable(err) {
		// Contention that outlasts every attempt, or the caller's
		// deadline, is the database's overload, which passes: 503 with
		// Retry-After, where an error of no kind would be a 500.
		err = fmt.Errorf("%w: still conflicting with concurrent transactions after %d attempts: %w", authz.ErrUnavailable, attempt, err)
	}
	if err != nil {
		switch {
		case authz.Refused(err) && d.outsider:
			s.outsiderRefusals.Inc()
			s.logger.InfoContext(ctx, "refused a caller without a role on the company", "actor", d.actor,
				"action", d.action, "company", d.company, "target", d.target, "outcome", authz.Outcome(err), "reason", err.Error())
		case authz.Refused(err):
			if aerr := s.audit(ctx, s.pool, d, err); aerr != nil {
				s.logger.ErrorContext(ctx, "audit: cannot record a refusal", "action", d.action, "error", aerr)
			}
		}
		return "", fmt.Errorf("%s: %w", d.action, unavailable(err))
	}
	pos, err := s.WALPosition(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: %w", d.action, err)
	}
	return pos.String(), nil
}

// retryable reports a failure that running the transaction again can cure.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// audit writes d with the outcome of err to the audit table and the log.
func (s *Store) audit(ctx context.Context, q execer, d *decision, err error) error {
	outcome, reason := authz.Outcome(err), d.reason
	if err != nil {
		// A refusal's message is the rule's own wording, safe to keep.
		reason = err.Error()
	}
	s.logger.InfoContext(ctx, "audit", "actor", d.actor, "action", d.action, "company", d.company,
		"target", d.target, "outcome", outcome, "reason", reason, "detail", d.detail)
	detail := d.detail
	if detail == nil {
		detail = map[string]string{}
	}
	// The row belongs to the company as it exists now (none: a refusal
	// about an unknown ID), so a company created later with the same ID
	// does not inherit it.
	_, aerr := q.Exec(ctx, `insert into tenantgate.audit_log (actor, action, company_id, target, outcome, reason, detail, incarnation)
		values ($1, $2, $3, $4, $5, $6, $7,
			(select incarnation from tenantgate.company_incarnations where company_id = $3))`,
		d.actor, d.action, d.company, d.target, outcome, reason, detail)
	if aerr != nil {
		return fmt.Errorf("audit: %w", translate(aerr))
	}
	return nil
}

// SetMember gives m.UserID the role and status of m in m.CompanyID on
// actor's behalf, if the grant rules allow it against the current rows. It
// returns the membership as stored and the write's consistency token.
func (s *Store) SetMember(ctx context.Context, actor authz.Actor, m authz.Membership) (authz.Membership, string, error) {
	d := &decision{actor: actor.ID, action: authz.ActionMemberSet, company: m.CompanyID, target: m.UserID,
		detail: map[string]string{"role": string(m.Role), "status": string(m.Status)}}
	var stored authz.Membership
	token, err := s.manage(ctx, d, func(tx pgx.Tx, locked bool) error {
		change, err := s.memberFacts(ctx, tx, locked, d, actor, m.CompanyID, m.UserID)
		if err != nil {
			return err
		}
		next := authz.Invited(s.consent, actor.ID, change.Current, m)
		change.Next = &next
		d.note(change)
		if next.Status != m.Status {
			d.detail["status"] = string(next.Status)
			d.detail["invitation"] = "pending until the user accepts"
		}
		if err := authz.DecideMemberChange(change); err != nil {
			return err
		}
		// Judged after the decision, so that a caller without rights gets
		// the same refusal for "*" as for any other member.
		if err := authz.ValidateUserID(m.UserID); err != nil || !locked {
			return err
		}
		stored = next
		err = tx.QueryRow(ctx, `
			insert into company_memberships (user_id, company_id, role, status) values ($1, $2, $3, $4)
			on conflict (user_id, company_id) do update
			set role = excluded.role, status = excluded.status, updated_at = now()
			returning id`, next.UserID, next.CompanyID, string(next.Role), string(next.Status)).Scan(&stored.ID)
		if err != nil {
			// The table's checks judge role and status: an unknown one
			// is an ErrInvalid, refused and audited as such.
			return fmt.Errorf("write membership: %w", translate(err))
		}
		return nil
	})
	if err != nil {
		return authz.Membership{}, "", err
	}
	return stored, token, nil
}

// RemoveMember deletes userID's membership in companyID on actor's behalf,
// if the rules allow it; leaving (actor == userID) is allowed unless the
// actor is the last active owner of a root company.
func (s *Store) RemoveMember(ctx context.Context, actor authz.Actor, companyID, userID string) (string, error) {
	d := &decision{actor: actor.ID, action: authz.ActionMemberRemove, company: companyID, target: userID}
	return s.manage(ctx, d, func(tx pgx.Tx, locked bool) error {
		change, err := s.memberFacts(ctx, tx, locked, d, actor, companyID, userID)
		if err != nil {
			return err
		}
		d.note(change)
		if err := authz.DecideMemberChange(change); err != nil || !locked {
			return err
		}
		_, err = tx.Exec(ctx, `delete from company_memberships where user_id = $1 and company_id = $2`, userID, companyID)
		if err != nil {
			return fmt.Errorf("delete membership: %w", translate(err))
		}
		return nil
	})
}

// AcceptMembership makes actor's pending membership in companyID active:
// the invited user's consent. It returns the membership and the write's
// consistency token.
func (s *Store) AcceptMembership(ctx context.Context, actor authz.Actor, companyID string) (authz.Membership, string, error) {
	var accepted authz.Membership
	token, err := s.respond(ctx, actor, companyID, authz.ActionMemberAccept, func(tx pgx.Tx, m authz.Membership) error {
		accepted = m
		accepted.Status = authz.StatusActive
		_, err := tx.Exec(ctx, `update company_memberships set status = $3, updated_at = now()
			where user_id = $1 and company_id = $2`, actor.ID, companyID, string(authz.StatusActive))
		return err
	})
	return accepted, token, err
}

// DeclineMembership deletes actor's pending membership in companyID.
func (s *Store) DeclineMembership(ctx context.Context, actor authz.Actor, companyID string) (string, error) {
	return s.respond(ctx, actor, companyID, authz.ActionMemberDecline, func(tx pgx.Tx, _ authz.Membership) error {
		_, err := tx.Exec(ctx, `delete from company_memberships where user_id = $1 and company_id = $2`, actor.ID, companyID)
		return err
	})
}

// respond decides an invited user's answer to its pending membership
// (authz.DecideResponse) and, in the locked pass, writes it with write.
func (s *Store) respond(ctx context.Context, actor authz.Actor, companyID, action string, write func(pgx.Tx, authz.Membership) error) (string, error) {
	d := &decision{actor: actor.ID, action: action, company: companyID, target: actor.ID, reason: "the invited user answered"}
	return s.manage(ctx, d, func(tx pgx.Tx, locked bool) error {
		change, err := s.memberFacts(ctx, tx, locked, d, actor, companyID, actor.ID)
		if err != nil {
			return err
		}
		// Only the user itself is concerned: a refusal is its own
		// business, not the company's audit trail's.
		d.outsider = change.Current == nil
		if err := authz.DecideResponse(actor.ID, actor.ID, change.Current); err != nil || !locked {
			return err
		}
		if err := write(tx, *change.Current); err != nil {
			return fmt.Errorf("%s: %w", action, translate(err))
		}
		return nil
	})
}

// note adds the facts of a member change to its audit detail.
func (d *decision) note(c authz.MemberChange) {
	if d.detail == nil {
		d.detail = map[string]string{}
	}
	d.detail["actor_role"] = string(c.ActorRole)
	d.outsider = c.ActorRole == ""
	if c.Current != nil {
		d.detail["previous_role"] = string(c.Current.Role)
		d.detail["previous_status"] = string(c.Current.Status)
	}
	d.reason = "actor holds " + string(c.ActorRole)
	if c.Actor == c.Target && c.Next == nil {
		d.reason = "member left"
	}
}

// memberFacts reads what DecideMemberChange needs to judge a change to
// target's membership: in the locked pass under the locks described at the
// top of this file, in the first without any.
func (s *Store) memberFacts(ctx context.Context, tx pgx.Tx, locked bool, d *decision, actor authz.Actor, companyID, target string) (authz.MemberChange, error) {
	change := authz.MemberChange{Actor: actor.ID, Target: target}
	ch, err := lockChain(ctx, tx, companyID, when(locked, lockChange))
	if err != nil || len(ch) == 0 {
		return change, err
	}
	if change.ActorRole, err = d.role(ctx, tx, actor, ch, when(locked, lockShare)); err != nil {
		return change, err
	}
	change.Root = ch[0].ParentID == ""
	var cur authz.Membership
	err = tx.QueryRow(ctx, `select id, role, status from company_memberships
		where user_id = $1 and company_id = $2 `+string(when(locked, lockUpdate)), target, companyID).Scan(&cur.ID, &cur.Role, &cur.Status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return change, fmt.Errorf("read membership: %w", translate(err))
	default:
		cur.UserID, cur.CompanyID = target, companyID
		change.Current = &cur
	}
	// Every change made here to this company's members holds its row lock;
	// the owners counted are locked too, so that the application's own SQL
	// cannot demote them either before this commits: the count cannot go
	// stale. (A locking read cannot aggregate, so the rows are counted here.)
	if change.OtherActiveOwners, err = countOwners(ctx, tx, companyID, target, when(locked, lockShare)); err != nil {
		return change, err
	}
	return change, nil
}

// countOwners counts companyID's active owners other than except (none: ""),
// locking their rows with mode. A row demoted by a writer it waited for is
// read again and no longer counts.
func countOwners(ctx context.Context, tx pgx.Tx, companyID, except string, mode lockMode) (int, error) {
	rows, err := tx.Query(ctx, `select user_id from company_memberships
		where company_id = $1 and role = $3 and status = $4 and user_id <> $2 `+string(mode),
		companyID, except, authz.RoleOwner, authz.StatusActive)
	if err != nil {
		return 0, fmt.Errorf("count owners: %w", translate(err))
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("count owners: %w", translate(err))
	}
	return len(owners), nil
}

// CreateCompany creates c on actor's behalf and makes actor its active
// owner. A c.ID of "" gets a generated ID. A child needs create on its
// parent; an existing ID is an authz.ErrConflict.
func (s *Store) CreateCompany(ctx context.Context, actor authz.Actor, c authz.Company) (authz.Company, string, error) {
	// A refusal is filed under the parent, whose managers are the ones to
	// see an attempt under it (an ID asked for under a parent may name no
	// company, or another tenant's); a root's under the ID asked for.
	d := &decision{actor: actor.ID, action: authz.ActionCompanyCreate, company: cmp.Or(c.ParentID, c.ID),
		detail: map[string]string{"name": c.Name, "parent_id": c.ParentID}}
	created := c
	token, err := s.manage(ctx, d, func(tx pgx.Tx, locked bool) error {
		change := authz.CompanyChange{Create: true, NewParent: c.ParentID}
		// The actor's role where a refusal is filed: on the parent, which
		// the decision needs locked, or on a company that holds the ID
		// asked for, which only decides whether the refusal is its
		// business.
		mode := when(locked && c.ParentID != "", lockShare)
		home, err := lockChain(ctx, tx, d.company, mode)
		if err != nil {
			return err
		}
		homeRole, err := d.role(ctx, tx, actor, home, mode)
		if err != nil {
			return err
		}
		if c.ParentID != "" {
			change.ActorParentRole = homeRole
		}
		d.outsider = homeRole == ""
		d.reason = "anyone may create a root company"
		if c.ParentID != "" {
			d.reason = "actor holds " + string(change.ActorParentRole) + " on the parent"
		}
		var parent chain
		if c.ParentID != "" {
			parent = home
		}
		if err := s.quotaFacts(ctx, tx, locked, actor.ID, nil, parent, &change); err != nil {
			return err
		}
		if err := authz.DecideCompanyChange(change); err != nil {
			return err
		}
		// Judged after the decision, like SetMember's user: a caller
		// without rights learns nothing more from a bad value.
		if err := validCreate(actor.ID, c); err != nil || !locked {
			return err
		}
		err = tx.QueryRow(ctx, `insert into companies (id, name, parent_id)
			values (coalesce(nullif($1, ''), gen_random_uuid()::text), $2, nullif($3, '')) returning id`,
			c.ID, c.Name, c.ParentID).Scan(&created.ID)
		if err != nil {
			return treeError("insert company", err)
		}
		d.company = created.ID
		_, err = tx.Exec(ctx, `insert into company_memberships (user_id, company_id, role, status)
			values ($1, $2, $3, $4)`, actor.ID, created.ID, authz.RoleOwner, authz.StatusActive)
		if err != nil {
			return fmt.Errorf("insert owner: %w", translate(err))
		}
		return nil
	})
	if err != nil {
		return authz.Company{}, "", err
	}
	return created, token, nil
}

// validCreate checks what CreateCompany writes: the actor becomes a member,
// so it must be a user ("*" never is); the ID, when given, and the name must
// be ones UpsertCompany would take too.
func validCreate(actor string, c authz.Company) error {
	if err := authz.ValidateUserID(actor); err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	if c.ID != "" {
		if err := authz.ValidateCompanyID(c.ID); err != nil {
			return err
		}
	}
	if c.Name == "" {
		return fmt.Errorf("%w: empty name", authz.ErrInvalid)
	}
	return nil
}

// UpdateCompany renames or moves company id on actor's behalf. A move that
// would close a loop or exceed MaxDepth is an authz.ErrConflict (the trigger
// of migration 1 judges it).
func (s *Store) UpdateCompany(ctx context.Context, actor authz.Actor, id string, u authz.CompanyUpdate) (authz.Company, string, error) {
	d := &decision{actor: actor.ID, action: authz.ActionCompanyUpdate, company: id, detail: map[string]string{}}
	if u.Name != nil {
		d.detail["name"] = *u.Name
	}
	if u.ParentID != nil {
		d.detail["parent_id"] = *u.ParentID
	}
	var updated authz.Company
	token, err := s.manage(ctx, d, func(tx pgx.Tx, locked bool) error {
		ch, err := lockChain(ctx, tx, id, when(locked, lockChange))
		if err != nil {
			return err
		}
		change := authz.CompanyChange{Rename: u.Name != nil, Move: u.ParentID != nil}
		if change.ActorRole, err = d.role(ctx, tx, actor, ch, when(locked, lockShare)); err != nil {
			return err
		}
		d.outsider = change.ActorRole == ""
		d.reason = "actor holds " + string(change.ActorRole)
		if change.Move {
			change.NewParent = *u.ParentID
			parent, err := s.moveFacts(ctx, tx, locked, d, actor, ch, &change)
			if err != nil {
				return err
			}
			d.reason += " on the company, " + string(change.ActorCurrentParentRole) + " on the current parent and " +
				string(change.ActorParentRole) + " on the new parent"
			if err := s.quotaFacts(ctx, tx, locked, actor.ID, ch, parent, &change); err != nil {
				return err
			}
		}
		if err := authz.DecideCompanyChange(change); err != nil {
			return err
		}
		if u.Name != nil && *u.Name == "" {
			return fmt.Errorf("%w: empty name", authz.ErrInvalid)
		}
		if !locked {
			return nil
		}
		updated = ch[0]
		if u.Name != nil {
			updated.Name = *u.Name
		}
		if u.ParentID != nil {
			updated.ParentID = *u.ParentID
		}
		_, err = tx.Exec(ctx, `update companies set name = $2, parent_id = nullif($3, '') where id = $1`,
			id, updated.Name, updated.ParentID)
		if err != nil {
			return treeError("update company", err)
		}
		return nil
	})
	if err != nil {
		return authz.Company{}, "", err
	}
	return updated, token, nil
}

// quotaFacts fills in what the quotas need of a create (moved is nil) or
// of a move of the chain moved under the chain parent (nil: to the root):
// how many companies the actor owns directly, how many children the new
// parent has besides the company, and how big the parent's tree is and
// grows. In the locked pass the counts hold until commit: creations by one
// user, new children of one parent, and changes to one tree take turns on
// transaction-scoped advisory locks, so concurrent requests cannot each
// see room for one more.
func (s *Store) quotaFacts(ctx context.Context, tx pgx.Tx, locked bool, actor string, moved, parent chain, change *authz.CompanyChange) error {
	change.Quotas = s.quotas
	owned := change.Create && s.quotas.MaxOwned > 0
	children := change.NewParent != "" && s.quotas.MaxChildren > 0
	tree := change.NewParent != "" && s.quotas.MaxTreeSize > 0 && len(parent) > 0
	// A move between trees changes both: the subtree's size is read under
	// its old tree's lock, the destination's under its own.
	across := tree && len(moved) > 0 && moved.root() != parent.root()
	if locked {
		keys := quotaLocks{}
		keys.add(owned, "tenantgate.owned:"+actor)
		keys.add(children, "tenantgate.children:"+change.NewParent)
		trees := []string{}
		if tree {
			trees = append(trees, parent.root())
		}
		if across {
			trees = append(trees, moved.root())
		}
		// In one order, so two moves in opposite directions cannot wait for
		// each other.
		slices.Sort(trees)
		for _, root := range trees {
			keys.add(true, "tenantgate.tree:"+root)
		}
		if err := keys.take(ctx, tx); err != nil {
			return err
		}
	}
	if owned {
		err := tx.QueryRow(ctx, `select count(*) from company_memberships where user_id = $1 and role = $2 and status = $3`,
			actor, authz.RoleOwner, authz.StatusActive).Scan(&change.ActorOwns)
		if err != nil {
			return fmt.Errorf("count owned companies: %w", translate(err))
		}
	}
	if children {
		err := tx.QueryRow(ctx, `select count(*) from companies where parent_id = $1 and id <> $2`,
			change.NewParent, moved.company()).Scan(&change.NewParentChildren)
		if err != nil {
			return fmt.Errorf("count children: %w", translate(err))
		}
	}
	if !tree {
		return nil
	}
	var err error
	if change.NewTreeSize, err = countTree(ctx, tx, parent.root(), s.quotas.MaxTreeSize+1); err != nil {
		return err
	}
	switch {
	case len(moved) == 0:
		change.TreeGrowth = 1
	case across:
		change.TreeGrowth, err = countTree(ctx, tx, moved.company(), s.quotas.MaxTreeSize+1)
	}
	return err
}

// quotaLocks are the advisory locks a quota's count holds until commit, in
// the order they are taken.
type quotaLocks []string

func (q *quotaLocks) add(on bool, key string) {
	if on {
		*q = append(*q, key)
	}
}

func (q quotaLocks) take(ctx context.Context, tx pgx.Tx) error {
	for _, key := range q {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
			return fmt.Errorf("quota lock: %w", translate(err))
		}
	}
	return nil
}

// countTree counts root and the companies below it, up to limit: the
// recursion stops once limit rows are read, so a bound checked against a
// huge tree costs no more than the bound.
func countTree(ctx context.Context, tx pgx.Tx, root string, limit int) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `with recursive tree(id) as (
			select $1::text
			union all
			select c.id from companies c join tree on c.parent_id = tree.id
		)
		select count(*) from (select 1 from tree limit $2) bounded`, root, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count tree of %q: %w", root, translate(err))
	}
	return n, nil
}

// moveFacts fills in the actor's role on the company's current parent
// (ch is the company's chain, read under lock), and its role on the new
// parent or, for a move to the root, whether the company has an active
// owner of its own. It returns the new parent's chain, nil for the root.
func (s *Store) moveFacts(ctx context.Context, tx pgx.Tx, locked bool, d *decision, actor authz.Actor, ch chain, change *authz.CompanyChange) (parent chain, err error) {
	if len(ch) == 0 {
		return nil, nil // unknown: refused for want of read, like any stranger
	}
	if len(ch) > 1 {
		change.HasParent = true
		// The actor's memberships on the parent's chain are locked
		// already: UpdateCompany read its role on the whole chain.
		if change.ActorCurrentParentRole, err = d.role(ctx, tx, actor, ch[1:], lockNone); err != nil {
			return nil, err
		}
	}
	if change.NewParent == "" {
		owners, err := countOwners(ctx, tx, ch[0].ID, "", when(locked, lockShare))
		change.HasActiveOwner = owners > 0
		return nil, err
	}
	if parent, err = lockChain(ctx, tx, change.NewParent, when(locked, lockShare)); err != nil {
		return nil, err
	}
	change.ActorParentRole, err = d.role(ctx, tx, actor, parent, when(locked, lockShare))
	return parent, err
}

// readAs runs fn in a read-only transaction once actor is found to hold
// perm on companyID; otherwise it is an authz.ErrForbidden, the same for a
// company that does not exist.
func (s *Store) readAs(ctx context.Context, actor authz.Actor, companyID string, perm authz.Permission, fn func(pgx.Tx, chain) error) error {
	return unavailable(pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		ch, err := lockChain(ctx, tx, companyID, lockNone)
		if err != nil {
			return err
		}
		role, _, err := actorRole(ctx, tx, actor, ch, lockNone)
		if err != nil {
			return err
		}
		if !role.Grants(perm) {
			return fmt.Errorf("%w: this needs %s on the company", authz.ErrForbidden, perm)
		}
		return fn(tx, ch)
	}))
}

// Members lists companyID's direct memberships, by user, for an actor with
// manage_members on it.
func (s *Store) Members(ctx context.Context, actor authz.Actor, companyID string) ([]authz.Membership, error) {
	var members []authz.Membership
	err := s.readAs(ctx, actor, companyID, authz.PermManageMembers, func(tx pgx.Tx, _ chain) error {
		rows, err := tx.Query(ctx, `select id, user_id, company_id, role, status from company_memberships
			where company_id = $1 order by user_id`, companyID)
		if err != nil {
			return translate(err)
		}
		members, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Membership, error) {
			var m authz.Membership
			err := row.Scan(&m.ID, &m.UserID, &m.CompanyID, &m.Role, &m.Status)
			return m, err
		})
		return translate(err)
	})
	if err != nil {
		return nil, fmt.Errorf("members of %q: %w", companyID, err)
	}
	return members, nil
}

// Accesses lists the active memberships on companyID and its ancestors, the
// rows that explain who can act on it, for an actor with manage_members.
func (s *Store) Accesses(ctx context.Context, actor authz.Actor, companyID string) ([]authz.Access, error) {
	var accesses []authz.Access
	err := s.readAs(ctx, actor, companyID, authz.PermManageMembers, func(tx pgx.Tx, ch chain) error {
		rows, err := tx.Query(ctx, `select user_id, role, company_id, array_position($1::text[], company_id) - 1
			from company_memberships where company_id = any($1) and status = $2
			order by user_id, 4`, ch.ids(), authz.StatusActive)
		if err != nil {
			return translate(err)
		}
		accesses, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Access, error) {
			var a authz.Access
			err := row.Scan(&a.UserID, &a.Role, &a.CompanyID, &a.Depth)
			return a, err
		})
		return translate(err)
	})
	if err != nil {
		return nil, fmt.Errorf("accesses to %q: %w", companyID, err)
	}
	return accesses, nil
}

// Audit lists companyID's audit entries newest first, at most limit, older
// than entry before (0: from the newest), for an actor with manage_members.
func (s *Store) Audit(ctx context.Context, actor authz.Actor, companyID string, limit int, before int64) ([]authz.AuditEntry, error) {
	var entries []authz.AuditEntry
	err := s.readAs(ctx, actor, companyID, authz.PermManageMembers, func(tx pgx.Tx, _ chain) error {
		rows, err := tx.Query(ctx, `select id, at, actor, action, company_id, target, outcome, reason, detail
			from tenantgate.audit_log
			where incarnation = (select incarnation from tenantgate.company_incarnations where company_id = $1)
				and ($2::bigint = 0 or id < $2::bigint)
			order by id desc limit $3`, companyID, before, limit)
		if err != nil {
			return translate(err)
		}
		entries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.AuditEntry, error) {
			var e authz.AuditEntry
			err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.CompanyID, &e.Target, &e.Outcome, &e.Reason, &e.Detail)
			return e, err
		})
		return translate(err)
	})
	if err != nil {
		return nil, fmt.Errorf("audit of %q: %w", companyID, err)
	}
	return entries, nil
}

// treeError words the refusals of the companies table for the caller: the
// trigger's and the key's own messages name SQL objects.
func treeError(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeParentCycle:
			return authz.Hide(authz.ErrConflict, "the new parent is the company itself or one of its descendants", err)
		case codeTreeTooDeep:
			return authz.Hide(authz.ErrConflict, fmt.Sprintf("the company tree would be deeper than %d levels", MaxDepth), err)
		case "23505":
			return authz.Hide(authz.ErrConflict, "a company with this id exists", err)
		}
	}
	return fmt.Errorf("%s: %w", op, translate(err))
}
