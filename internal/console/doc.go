// Package console serves tenantgate's web console under /console/: a page
// where a person signs in and sees which companies they hold which role on,
// why a permission is granted or refused, who the members are, and manages
// memberships and companies. It exists so that the rules the API enforces
// can be seen and tried without writing a client; it adds no power of its
// own, because every datum it shows comes from the public REST API called
// with the signed-in user's bearer token.
//
// Its security rules follow from that and from every ID and name being
// chosen by some user:
//   - The pages are static files embedded in the binary, served from this
//     origin only, with a Content-Security-Policy that allows no inline
//     script or style, no other origin (but the identity provider's token
//     endpoint, for the OIDC code exchange) and no framing.
//   - The script writes text with textContent only and builds URLs with
//     encodeURIComponent, so no stored value can become markup or a path.
//   - The token is kept in memory or sessionStorage, never in a cookie: the
//     API never acts on ambient credentials, so no cross-site request can
//     use the console's sign-in.
//   - The server side mints tokens only in the demo, and only for its
//     sample users.
package console
