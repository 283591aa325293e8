package authz

// Relations and object types of schema/tenantgate.zed that rows turn into.
const (
	TypeCompany    = "company"
	TypeUser       = "user"
	RelationParent = "parent"
)

// Relationship is one edge of the permission graph: Resource is always a
// company; the subject is a user (for a role) or a company (for parent).
type Relationship struct {
	Resource    string
	Relation    string
	SubjectType string
	SubjectID   string
}

// MembershipRelationship is the edge a membership row stands for; ok is false
// when the row grants nothing (any status but active).
func MembershipRelationship(m Membership) (rel Relationship, ok bool) {
	if m.Status != StatusActive {
		return Relationship{}, false
	}
	return Relationship{Resource: m.CompanyID, Relation: string(m.Role), SubjectType: TypeUser, SubjectID: m.UserID}, true
}

// ParentRelationship is the edge a company row stands for; ok is false for a
// root company.
func ParentRelationship(c Company) (rel Relationship, ok bool) {
	if c.ParentID == "" {
		return Relationship{}, false
	}
	return Relationship{Resource: c.ID, Relation: RelationParent, SubjectType: TypeCompany, SubjectID: c.ParentID}, true
}

// Op is what a relationship update does. Both are idempotent, so a replayed
// update is harmless.
type Op int

// The two update kinds the sync uses; SpiceDB's CREATE is never used because
// it fails on replay.
const (
	OpTouch Op = iota + 1
	OpDelete
)

// Update is one relationship change.
type Update struct {
	Op  Op
	Rel Relationship
}

// Consistency says how fresh an answer must be. An empty token means the
// backend may answer from any reasonably recent state.
type Consistency struct {
	AtLeastAsFresh string
	// AtRevision, when set, asks for the answer at exactly this revision
	// and nothing else: how the permission index has its answers checked
	// at the revision it gave them at.
	AtRevision string
}

// CheckRequest asks whether User holds Permission on Company.
type CheckRequest struct {
	User       string
	Permission Permission
	Company    string
}
