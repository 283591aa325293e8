// Package app wires tenantgate's parts into the four commands (serve, sync,
// migrate, demo). It owns the one configuration struct; each command is a
// Run function that main and the tests call alike.
package app
