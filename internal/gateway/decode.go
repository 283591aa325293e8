package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// decodeJSON reads a body of exactly one JSON value into dst. Unknown fields
// are errors, so that a misspelt field is reported instead of silently
// widening the question. The body must be declared application/json (a
// missing Content-Type is refused too): being strict costs clients one
// header and keeps form posts and guessed types out.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	if err := requireJSON(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return bodyError(err)
	}
	_, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return fmt.Errorf("%w: body holds more than one JSON value", authz.ErrInvalid)
	default:
		return bodyError(err)
	}
}

func requireJSON(contentType string) error {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != jsonContentType {
		return fmt.Errorf("%w: Content-Type must be %s", errUnsupportedMediaType, jsonContentType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Errorf("%w: charset must be utf-8", errUnsupportedMediaType)
	}
	return nil
}

// bodyError turns a decoding failure into a message for the caller that
// names the JSON problem, not the Go types behind it.
func bodyError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: body exceeds %d bytes", errBodyTooLarge, tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: body is empty", authz.ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: body ends inside a JSON value", authz.ErrInvalid)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: malformed JSON at byte %d", authz.ErrInvalid, syntaxErr.Offset)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return fmt.Errorf("%w: body must be a JSON object, not a JSON %s", authz.ErrInvalid, typeErr.Value)
	case errors.As(err, &typeErr):
		return fmt.Errorf("%w: field %q cannot be a JSON %s", authz.ErrInvalid, typeErr.Field, typeErr.Value)
	default:
		// Unknown fields and read failures: encoding/json's own wording is
		// safe to show.
		return fmt.Errorf("%w: %s", authz.ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
}
