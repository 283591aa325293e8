package authz

import (
	"fmt"
	"slices"
)

// Role is a user's role in one company.
type Role string

// The roles of the data contract, strongest first.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleEditor Role = "editor"
	RoleViewer Role = "viewer"
)

// Roles lists every role, strongest first.
var Roles = []Role{RoleOwner, RoleAdmin, RoleEditor, RoleViewer}

// ParseRole accepts exactly the role names of the data contract.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles, r) {
		return "", fmt.Errorf("%w: unknown role %q (want owner, admin, editor or viewer)", ErrInvalid, s)
	}
	return r, nil
}

// Permission is something a user may do on a company.
type Permission string

// The permissions of the authorization model.
const (
	PermRead          Permission = "read"
	PermUpdate        Permission = "update"
	PermCreate        Permission = "create"
	PermDelete        Permission = "delete"
	PermManageMembers Permission = "manage_members"
	PermManageOwners  Permission = "manage_owners"
)

// Permissions lists every permission in a stable order.
var Permissions = []Permission{PermRead, PermUpdate, PermCreate, PermDelete, PermManageMembers, PermManageOwners}

// ParsePermission accepts exactly the permission names of the model.
func ParsePermission(s string) (Permission, error) {
	p := Permission(s)
	if !slices.Contains(Permissions, p) {
		return "", fmt.Errorf("%w: unknown permission %q", ErrInvalid, s)
	}
	return p, nil
}

// grants is the role table of docs/design.md, the one source of it: the
// management decisions read it, TestSchemaMatchesRoleTable ties SpiceDB's
// enforcing copy (schema/tenantgate.zed) to it, and the store's tests tie
// the data contract's check constraints to Roles and Statuses.
var grants = map[Role][]Permission{
	RoleOwner:  {PermRead, PermUpdate, PermCreate, PermDelete, PermManageMembers, PermManageOwners},
	RoleAdmin:  {PermRead, PermUpdate, PermCreate, PermDelete, PermManageMembers},
	RoleEditor: {PermRead, PermUpdate},
	RoleViewer: {PermRead},
}

// Grants reports whether role r, held directly on a company or on one of its
// ancestors, grants permission p on it.
func (r Role) Grants(p Permission) bool {
	return slices.Contains(grants[r], p)
}

// Status is the lifecycle state of a membership. Only StatusActive grants.
type Status string

// The membership states of the data contract.
const (
	StatusActive   Status = "active"
	StatusInactive Status = "inactive"
	StatusPending  Status = "pending"
)

// Statuses lists every membership state.
var Statuses = []Status{StatusActive, StatusInactive, StatusPending}

// ParseStatus accepts exactly the status names of the data contract.
func ParseStatus(s string) (Status, error) {
	st := Status(s)
	if !slices.Contains(Statuses, st) {
		return "", fmt.Errorf("%w: unknown status %q (want active, inactive or pending)", ErrInvalid, s)
	}
	return st, nil
}

// Company is a tenant. ParentID is empty for a root company.
type Company struct {
	ID       string
	Name     string
	ParentID string
}

// Membership gives a user a role in a company.
type Membership struct {
	ID        string
	UserID    string
	CompanyID string
	Role      Role
	Status    Status
}
