package client

import "time"

// Permission is something a user may do on a company.
type Permission string

// The permissions of the API. A role grants a fixed set of them: owner all
// six, admin all but manage_owners, editor read and update, viewer read.
const (
	PermRead          Permission = "read"
	PermUpdate        Permission = "update"
	PermCreate        Permission = "create"
	PermDelete        Permission = "delete"
	PermManageMembers Permission = "manage_members"
	PermManageOwners  Permission = "manage_owners"
)

// AllPermissions lists every permission, weakest first.
func AllPermissions() []Permission {
	return []Permission{PermRead, PermUpdate, PermCreate, PermDelete, PermManageMembers, PermManageOwners}
}

// Valid reports whether p is one of the API's permissions.
func (p Permission) Valid() bool {
	for _, known := range AllPermissions() {
		if p == known {
			return true
		}
	}
	return false
}

// Role is what a membership makes a user in a company.
type Role string

// The roles, strongest first.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleEditor Role = "editor"
	RoleViewer Role = "viewer"
)

// Status is the state of a membership; only an active one grants anything.
type Status string

// The statuses of a membership.
const (
	StatusActive   Status = "active"
	StatusInactive Status = "inactive"
	StatusPending  Status = "pending"
)

// Company is a company as the gateway lists it.
type Company struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// ParentID is empty for a root company (null in the API).
	ParentID string `json:"parent_id"`
}

// Membership is a user's role in one company, as stored.
type Membership struct {
	UserID    string `json:"user_id"`
	CompanyID string `json:"company_id"`
	Role      Role   `json:"role"`
	Status    Status `json:"status"`
}

// EffectiveMember is someone who can read a company, with the strongest
// role that reaches it and every active membership it comes through. Role
// is empty and Via empty when no membership explains the access (a removal
// the gateway's index has not applied yet).
type EffectiveMember struct {
	UserID string   `json:"user_id"`
	Role   Role     `json:"role"`
	Via    []Access `json:"via"`
}

// Access is one membership an effective member's access comes through.
type Access struct {
	CompanyID string `json:"company_id"`
	Role      Role   `json:"role"`
	// Inherited is true for a role held on an ancestor.
	Inherited bool `json:"inherited"`
}

// AuditEntry is one decision of the management API about a company.
type AuditEntry struct {
	ID        int64             `json:"id"`
	At        time.Time         `json:"at"`
	Actor     string            `json:"actor"`
	Action    string            `json:"action"` // member.set, member.remove, company.create, company.update
	CompanyID string            `json:"company_id"`
	Target    string            `json:"target"`
	Outcome   string            `json:"outcome"` // allowed, forbidden, conflict, not_found, invalid
	Reason    string            `json:"reason"`
	Detail    map[string]string `json:"detail"`
}

// Explanation is why a user may or may not do one permission on one
// company, read from the same facts as the answer it explains.
type Explanation struct {
	Allowed bool `json:"allowed"`
	// Text is the same in words, one line per fact.
	Text string `json:"text"`
	// Memberships are every role the user holds on the company or above
	// it, nearest company first.
	Memberships []HeldRole `json:"memberships"`
	// PlatformRole is set when the caller's token gives it a platform role
	// (--platform-role); never for a user the service token asks about.
	PlatformRole   *PlatformRole `json:"platform_role,omitempty"`
	RolesThatGrant []Role        `json:"roles_that_grant"`
}

// HeldRole is one role an explanation found.
type HeldRole struct {
	Company string `json:"company"`
	Role    Role   `json:"role"`
	// Path runs from Company down to the company asked about.
	Path      []string `json:"path"`
	Inherited bool     `json:"inherited"`
	Grants    bool     `json:"grants"`
}

// PlatformRole is a role the caller holds on every company through a group
// of its token.
type PlatformRole struct {
	Group  string `json:"group"`
	Role   Role   `json:"role"`
	Grants bool   `json:"grants"`
}
