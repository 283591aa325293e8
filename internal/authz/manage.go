package authz

import (
	"errors"
	"fmt"
	"time"
)

// The management rules of docs/design.md, as pure decisions over facts the store
// reads under locks. Keeping them here, free of SQL and HTTP, is what lets a
// test enumerate every case against the written rules.

// Strongest returns the strongest of roles; "" when there is none.
func Strongest(roles ...Role) Role {
	best := Role("")
	for _, r := range roles {
		if r != "" && (best == "" || rank(r) < rank(best)) {
			best = r
		}
	}
	return best
}

// rank orders roles, strongest first; unknown roles rank last.
func rank(r Role) int {
	for i, known := range Roles {
		if r == known {
			return i
		}
	}
	return len(Roles)
}

// MemberChange is a request to set or remove Target's membership in a
// company, with the facts that decide it.
type MemberChange struct {
	Actor, Target string
	// ActorRole is the actor's strongest active role on the company, held
	// directly or on an ancestor; "" for none.
	ActorRole Role
	// Current is Target's own membership in the company; nil for none.
	Current *Membership
	// Next is what the membership becomes; nil removes it.
	Next *Membership
	// Root is true for a company without a parent.
	Root bool
	// OtherActiveOwners counts the company's active owners besides Target.
	OtherActiveOwners int
}

// DecideMemberChange applies the grant rules: nil means allowed. Refusals
// wrap ErrForbidden (not the actor's to do), ErrNotFound (nothing to remove)
// or ErrConflict (the company would lose its last owner). Permission comes
// before existence, so a caller without rights learns nothing about the
// company's members.
func DecideMemberChange(c MemberChange) error {
	self := c.Actor == c.Target
	switch {
	case self && c.Next != nil:
		return fmt.Errorf("%w: nobody changes their own membership", ErrForbidden)
	case self:
		// Leaving needs no right.
	case !c.ActorRole.Grants(PermManageMembers):
		// First, so that a caller without rights cannot tell an owner
		// from anybody else by the refusal.
		return fmt.Errorf("%w: changing members needs manage_members", ErrForbidden)
	case c.touchesOwner() && !c.ActorRole.Grants(PermManageOwners):
		return fmt.Errorf("%w: granting, changing or revoking an owner needs manage_owners", ErrForbidden)
	}
	if c.Next == nil && c.Current == nil {
		return fmt.Errorf("%w: no such membership", ErrNotFound)
	}
	if c.Root && c.removesActiveOwner() && c.OtherActiveOwners == 0 {
		return fmt.Errorf("%w: a root company keeps at least one active owner", ErrConflict)
	}
	return nil
}

func (c MemberChange) touchesOwner() bool {
	return (c.Current != nil && c.Current.Role == RoleOwner) || (c.Next != nil && c.Next.Role == RoleOwner)
}

func (c MemberChange) removesActiveOwner() bool {
	if c.Current == nil || c.Current.Role != RoleOwner || c.Current.Status != StatusActive {
		return false
	}
	return c.Next == nil || c.Next.Role != RoleOwner || c.Next.Status != StatusActive
}

// Consent says whether a membership granted to another user needs that
// user's acceptance before it grants anything (--membership-consent).
type Consent string

// The consent modes.
const (
	ConsentNone     Consent = "none"
	ConsentRequired Consent = "required"
)

// ParseConsent accepts exactly the consent modes.
func ParseConsent(s string) (Consent, error) {
	switch c := Consent(s); c {
	case ConsentNone, ConsentRequired:
		return c, nil
	}
	return "", fmt.Errorf("%w: unknown membership consent %q (want none or required)", ErrInvalid, s)
}

// Invited is what a grant of next stores under consent c: with consent
// required, a membership of another user that would become active without
// having been active starts pending, and grants nothing until its user
// accepts it (DecideResponse). A membership already active stays so when
// its role changes: its user accepted it once.
func Invited(c Consent, actor string, current *Membership, next Membership) Membership {
	if c != ConsentRequired || next.UserID == actor || next.Status != StatusActive {
		return next
	}
	if current != nil && current.Status == StatusActive {
		return next
	}
	next.Status = StatusPending
	return next
}

// DecideResponse decides whether actor may accept or decline its
// membership current in a company: only its own, and only a pending one.
// A refusal names no other user's membership: there is only the caller's.
func DecideResponse(actor, target string, current *Membership) error {
	switch {
	case actor != target:
		return fmt.Errorf("%w: only the invited user accepts or declines an invitation", ErrForbidden)
	case current == nil:
		return fmt.Errorf("%w: no invitation to this company", ErrNotFound)
	case current.Status != StatusPending:
		return fmt.Errorf("%w: the membership is %s, not pending", ErrConflict, current.Status)
	}
	return nil
}

// CompanyChange is a request to create a company or to rename or move one,
// with the facts that decide it.
type CompanyChange struct {
	// Create is true for a new company, false for a change to one.
	Create bool
	// ActorRole is the actor's strongest active role on the company (for a
	// change); ActorParentRole the same on the new parent, when there is one.
	ActorRole, ActorParentRole Role
	// Rename and Move say what a change does; NewParent is "" for a move to
	// the root.
	Rename, Move bool
	NewParent    string
	// HasParent is true for a company that has a parent now (a move);
	// ActorCurrentParentRole is then the actor's strongest active role on
	// that parent, held there or above it.
	HasParent              bool
	ActorCurrentParentRole Role
	// HasActiveOwner is true when the company has an active owner of its
	// own, which it needs to become a root.
	HasActiveOwner bool
	// Quotas bound what one user may create; ActorOwns counts the
	// companies the actor owns directly (a create's creator becomes their
	// owner), NewParentChildren the children the new parent has now.
	Quotas            Quotas
	ActorOwns         int
	NewParentChildren int
	// NewTreeSize counts the companies of the new parent's tree, from its
	// root; TreeGrowth how many the change adds to that tree: 1 for a
	// create, the moved subtree for a move from another tree, 0 for a move
	// within one. Both are counted only up to just past MaxTreeSize.
	NewTreeSize, TreeGrowth int
}

// Quotas keep one user from growing the data every other user's answers
// are computed over without bound (--max-companies-per-user,
// --max-children, --max-tree-size). Zero fields are no bound.
type Quotas struct {
	// MaxOwned bounds the companies a user may own directly for a create to
	// be allowed.
	MaxOwned int
	// MaxChildren bounds the children of one company.
	MaxChildren int
	// MaxTreeSize bounds the companies of one tree, its root included.
	MaxTreeSize int
}

// quotaError refuses what the quotas do not allow; a 409 whose words say
// which bound was reached.
func (c CompanyChange) quotaError() error {
	switch {
	case c.Create && c.Quotas.MaxOwned > 0 && c.ActorOwns >= c.Quotas.MaxOwned:
		return fmt.Errorf("%w: quota: you own %d companies; a user may create companies while owning fewer than %d", ErrConflict, c.ActorOwns, c.Quotas.MaxOwned)
	case c.NewParent != "" && c.Quotas.MaxChildren > 0 && c.NewParentChildren >= c.Quotas.MaxChildren:
		return fmt.Errorf("%w: quota: the parent has %d companies below it directly, the most one company may have", ErrConflict, c.NewParentChildren)
	case c.NewParent != "" && c.Quotas.MaxTreeSize > 0 && c.TreeGrowth > 0 && c.NewTreeSize+c.TreeGrowth > c.Quotas.MaxTreeSize:
		return fmt.Errorf("%w: quota: the parent's company tree would grow past %d companies, the most one tree may hold", ErrConflict, c.Quotas.MaxTreeSize)
	}
	return nil
}

// DecideCompanyChange applies the rules for companies (docs/design.md):
// anyone may create a root company (and becomes its owner); a child needs
// create on the parent; a rename needs update; a move needs manage_owners
// on the company's current parent (on the company itself when it is a root)
// and create on the new parent. A move is a privilege change against the
// owners above the company: they lose every inherited right on it, so it is
// theirs to decide, not the subsidiary's own owners'. Cycles and the depth
// bound are the store's.
func DecideCompanyChange(c CompanyChange) error {
	if c.Create {
		if c.NewParent != "" && !c.ActorParentRole.Grants(PermCreate) {
			return fmt.Errorf("%w: creating a company under a parent needs create on the parent", ErrForbidden)
		}
		return c.quotaError()
	}
	// Without read the actor may not learn that the company exists.
	if !c.ActorRole.Grants(PermRead) {
		return fmt.Errorf("%w: not a company of yours", ErrForbidden)
	}
	if c.Rename && !c.ActorRole.Grants(PermUpdate) {
		return fmt.Errorf("%w: renaming a company needs update", ErrForbidden)
	}
	if !c.Move {
		return nil
	}
	switch {
	case c.HasParent && !c.ActorCurrentParentRole.Grants(PermManageOwners):
		return fmt.Errorf("%w: moving a company needs manage_owners on its current parent", ErrForbidden)
	case !c.HasParent && !c.ActorRole.Grants(PermManageOwners):
		return fmt.Errorf("%w: moving a root company needs manage_owners on it", ErrForbidden)
	}
	if c.NewParent != "" && !c.ActorParentRole.Grants(PermCreate) {
		return fmt.Errorf("%w: moving a company needs create on the new parent", ErrForbidden)
	}
	if c.NewParent == "" && !c.HasActiveOwner {
		return fmt.Errorf("%w: a root company needs an active owner of its own", ErrConflict)
	}
	return c.quotaError()
}

// CompanyUpdate is a change to a company; nil fields stay as they are, and
// a ParentID of "" makes the company a root.
type CompanyUpdate struct {
	Name     *string
	ParentID *string
}

// Management actions, as the audit trail names them.
const (
	ActionMemberSet     = "member.set"
	ActionMemberRemove  = "member.remove"
	ActionMemberAccept  = "member.accept"
	ActionMemberDecline = "member.decline"
	ActionCompanyCreate = "company.create"
	ActionCompanyUpdate = "company.update"
)

// AuditEntry is one management decision.
type AuditEntry struct {
	ID        int64
	At        time.Time
	Actor     string
	Action    string
	CompanyID string
	// Target is the member a member action is about; "" otherwise.
	Target string
	// Outcome is "allowed", or the kind of refusal: "forbidden",
	// "conflict", "not_found", "invalid".
	Outcome string
	Reason  string
	// Detail holds the request's values (role, status, name, parent).
	Detail map[string]string
}

// refusals are the kinds of error that are a decision against a request,
// as the audit trail names them; any other error means no decision.
var refusals = []struct {
	err  error
	name string
}{{ErrForbidden, "forbidden"}, {ErrConflict, "conflict"}, {ErrNotFound, "not_found"}, {ErrInvalid, "invalid"}}

// Outcome names the result of a decision for the audit trail.
func Outcome(err error) string {
	for _, k := range refusals {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	if err != nil {
		return "failed"
	}
	return "allowed"
}

// Refused reports whether err is a decision against the request (one of
// the refusals), rather than a failure to decide.
func Refused(err error) bool {
	outcome := Outcome(err)
	return outcome != "allowed" && outcome != "failed"
}

// Access is one active membership through which a user reaches a company:
// held on the company itself (Depth 0) or on an ancestor.
type Access struct {
	UserID    string
	Role      Role
	CompanyID string
	Depth     int
}
