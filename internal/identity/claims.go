package identity

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
)

var (
	errWrongTokenUse = reject("wrong token use")
	errNoAudience    = reject("token has no audience")
	errWrongAudience = reject("wrong audience")
)

// claimChecks returns the jwt.Validate options for a token that has an
// "aud" claim and for one that has none, which only a Cognito access token
// may lack. Both check iss, exp (required), nbf and iat against now with
// leeway as the allowed skew, then token_use when configured, then the
// audience. They replace jwx's default validators so that the checks run in
// this order, which decides the reason given for a token with several faults.
func claimChecks(cfg Config, now func() time.Time) (withAud, withoutAud []jwt.ValidateOption) {
	checks := []jwt.ValidateOption{
		jwt.WithResetValidators(true),
		jwt.WithClock(jwt.ClockFunc(now)),
		jwt.WithAcceptableSkew(cfg.Leeway),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithValidator(jwt.IsExpirationValid()),
		jwt.WithValidator(jwt.IsNbfValid()),
		jwt.WithValidator(jwt.IsIssuedAtValid()),
	}
	if cfg.TokenUse != "" {
		checks = append(checks, jwt.WithValidator(tokenUseIs(cfg.TokenUse)))
	}
	withAud = slices.Concat(checks, []jwt.ValidateOption{jwt.WithAudience(cfg.Audience)})
	withoutAud = slices.Concat(checks, []jwt.ValidateOption{jwt.WithValidator(cognitoAccessToken(cfg.Audience))})
	return withAud, withoutAud
}

// tokenUseIs tells a Cognito-style issuer's ID tokens from its access
// tokens, which share issuer, keys and (via client_id) audience.
func tokenUseIs(want string) jwt.ValidatorFunc {
	return func(_ context.Context, tok jwt.Token) error {
		var use string
		if tok.Get("token_use", &use) != nil || use != want {
			return errWrongTokenUse
		}
		return nil
	}
}

// cognitoAccessToken is the audience check for a token without "aud".
// Cognito access tokens carry none; the app client they were issued to is
// "client_id", and "token_use" tells them from ID tokens.
func cognitoAccessToken(audience string) jwt.ValidatorFunc {
	return func(_ context.Context, tok jwt.Token) error {
		var use, client string
		if tok.Get("token_use", &use) != nil || use != "access" || tok.Get("client_id", &client) != nil {
			return errNoAudience
		}
		if client != audience {
			return errWrongAudience
		}
		return nil
	}
}

// jwxRejections names the reason given when one of jwx's own checks fails.
var jwxRejections = []struct{ cause, rejection error }{
	{jwt.InvalidIssuerError(), reject("wrong issuer")},
	// exp is the only claim that claimChecks requires.
	{jwt.MissingRequiredClaimError(), reject("token has no expiry")},
	{jwt.TokenExpiredError(), reject("token expired")},
	{jwt.TokenNotYetValidError(), reject("token not yet valid")},
	{jwt.InvalidIssuedAtError(), reject("token issued in the future")},
	{jwt.InvalidAudienceError(), errWrongAudience},
}

// claimsRejection turns an error from jwt.Validate into the reason given to
// the client: our own validators fail with a rejection already, jwx's with
// the errors listed in jwxRejections.
func claimsRejection(err error) error {
	var r *rejection
	if errors.As(err, &r) {
		return r
	}
	for _, j := range jwxRejections {
		if errors.Is(err, j.cause) {
			return j.rejection
		}
	}
	return reject("invalid claims")
}
