package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// decodeJSON reads a body of exactly one JSON value into dst. The body must
// be declared application/json (a missing Content-Type is refused too):
// being strict costs clients one header and keeps form posts and guessed
// types out. Its keys are checked before it is decoded (checkKeys), since
// encoding/json matches them without regard to case and keeps the last of
// repeated ones: it would take {"permission":"read","Permission":"delete"}
// for a delete where a proxy or a log that keeps the first key sees a read.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	if err := requireJSON(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		return bodyError(err)
	}
	// encoding/json turns invalid UTF-8 and lone surrogate escapes into
	// U+FFFD: the question would be about another ID than the one sent.
	if !utf8.Valid(body) || loneSurrogate(body) {
		return fmt.Errorf("%w: body is not valid UTF-8 text", authz.ErrInvalid)
	}
	if err := checkKeys(body, reflect.TypeOf(dst)); err != nil {
		return bodyError(err)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return bodyError(err)
	}
	return nil
}

// checkKeys walks body, one JSON value, alongside t, the type it decodes
// into. In every object no key may repeat, even in another case; in an
// object decoded into a struct every key must name a field exactly, so
// that a misspelt field is reported instead of silently widening the
// question. Below a json.RawMessage or an interface anything goes: whoever
// reads that value later decodes it by its own rules.
func checkKeys(body []byte, t reflect.Type) error {
	if err, ok := checkFlatKeys(body, t); ok {
		return err
	}
	return walkKeys(body, t)
}

// walkKeys is checkKeys for any body, token by token.
func walkKeys(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	// Numbers are not converted: a huge one is the decoder's to judge.
	dec.UseNumber()
	if err := walkValue(dec, t, "", 0); err != nil {
		return err
	}
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return fmt.Errorf("%w: body holds more than one JSON value", authz.ErrInvalid)
	default:
		return err
	}
}

// checkFlatKeys is checkKeys for the bodies of nearly every request: one
// object of strings, numbers and literals, no escape in a key, decoded into
// a struct. It applies walkObject's rules to the keys as it finds them
// without tokenising; ok is false for any other body, and for any syntax it
// does not expect, which the walk then reports.
func checkFlatKeys(body []byte, t reflect.Type) (err error, ok bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, false
	}
	fields := jsonFields(t)
	var seen [8]struct{ folded, key string }
	n := 0
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return nil, skipSpace(body, i+1) == len(body)
	}
	for {
		if i == len(body) || body[i] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(body[i+1:], '"')
		if end < 0 {
			return nil, false
		}
		key := string(body[i+1 : i+1+end])
		if strings.IndexByte(key, '\\') >= 0 || !utf8.ValidString(key) || n == len(seen) {
			return nil, false
		}
		folded := foldKey(key)
		for _, prev := range seen[:n] {
			if prev.folded == folded {
				return repeatedKey(prev.key, key), true
			}
		}
		seen[n] = struct{ folded, key string }{folded, key}
		n++
		if _, err := fieldType(fields, key, ""); err != nil {
			return err, true
		}
		i = skipSpace(body, i+2+end)
		if i == len(body) || body[i] != ':' {
			return nil, false
		}
		if i = skipScalar(body, skipSpace(body, i+1)); i < 0 {
			return nil, false
		}
		switch i = skipSpace(body, i); {
		case i < len(body) && body[i] == ',':
			i = skipSpace(body, i+1)
		case i < len(body) && body[i] == '}':
			return nil, skipSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipScalar returns the index after the string, number or literal at i, or
// -1 for anything else (an object, an array, the end).
func skipScalar(b []byte, i int) int {
	if i == len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return -1
	case c == '{' || c == '[':
		return -1
	}
	j := i
	for j < len(b) && !strings.ContainsRune(" \t\n\r,}]", rune(b[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// maxNesting bounds how deep objects and arrays may nest in a body: no
// request needs more than three levels, and the walk recurses once per
// level, so a body of a million brackets must not mean a million frames.
const maxNesting = 32

// walkValue checks the next value of dec, decoded into t, at nesting depth
// depth; a nil t is a value that does not fit its destination, which
// json.Unmarshal reports, but whose keys are checked for repeats all the
// same.
func walkValue(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if depth > maxNesting {
		return fmt.Errorf("%w: body nests objects and arrays deeper than %d levels", authz.ErrInvalid, maxNesting)
	}
	if t == rawMessageType || t != nil && t.Kind() == reflect.Interface {
		var skipped json.RawMessage
		return dec.Decode(&skipped)
	}
	tok, err := dec.Token()
	switch {
	case err != nil:
		return err
	case tok == json.Delim('{'):
		return inside(walkObject(dec, t, path, depth+1))
	case tok == json.Delim('['):
		return inside(walkArray(dec, t, path, depth+1))
	}
	return nil
}

// inside makes the end of the body within a value what it is: a truncated
// body, not an empty one.
func inside(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func walkObject(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	var fields structFields
	if t != nil && t.Kind() == reflect.Struct {
		fields = jsonFields(t)
	}
	seen := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // an object's tokens alternate: key, value
		folded := foldKey(key)
		if prev, ok := seen[folded]; ok {
			return repeatedKey(keyPath(path, prev), keyPath(path, key))
		}
		seen[folded] = key
		ft, err := fieldType(fields, key, path)
		if err != nil {
			return err
		}
		if err := walkValue(dec, ft, keyPath(path, key), depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing brace
	return err
}

// fieldType is the type of the field key names among fields, those of the
// struct the object decodes into; with no struct (nil fields) keys are free.
func fieldType(fields structFields, key, path string) (reflect.Type, error) {
	if fields.byKey == nil {
		return nil, nil
	}
	f, ok := fields.byKey[foldKey(key)]
	switch {
	// The case rule holds even where unknown fields are ignored, as
	// encoding/json would still fill the field from such a key.
	case !ok && fields.open:
		return nil, nil
	case !ok:
		return nil, fmt.Errorf("%w: unknown field %q", authz.ErrInvalid, keyPath(path, key))
	case f.name != key:
		return nil, fmt.Errorf("%w: key %q must be written %q: keys are case-sensitive", authz.ErrInvalid, keyPath(path, key), keyPath(path, f.name))
	}
	return f.typ, nil
}

func walkArray(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	var elem reflect.Type
	if t != nil && t.Kind() == reflect.Slice {
		elem = t.Elem()
	}
	for i := 0; dec.More(); i++ {
		if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i), depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing bracket
	return err
}

func repeatedKey(first, second string) error {
	if first == second {
		return fmt.Errorf("%w: key %q appears more than once", authz.ErrInvalid, second)
	}
	return fmt.Errorf("%w: keys %q and %q differ only in case", authz.ErrInvalid, first, second)
}

func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonField is a struct field as encoding/json names it.
type jsonField struct {
	name string
	typ  reflect.Type
}

// structFields are the fields of a struct a JSON object decodes into, by
// folded JSON name. open is true for a struct that ignores unknown fields
// (one that implements ignoresUnknownFields).
type structFields struct {
	byKey map[string]jsonField
	open  bool
}

// ignoresUnknownFields marks a body type whose standard requires unknown
// fields to be ignored rather than refused (AuthZEN's).
type ignoresUnknownFields interface{ ignoresUnknownFields() }

var openType = reflect.TypeFor[ignoresUnknownFields]()

// fieldsByType caches jsonFields: a request's body types are few and
// fixed, and reflecting on them per request was a third of a check's cost.
var fieldsByType sync.Map // reflect.Type -> structFields

// jsonFields maps the folded JSON name of every field of struct type t to
// the field.
func jsonFields(t reflect.Type) structFields {
	if cached, ok := fieldsByType.Load(t); ok {
		return cached.(structFields)
	}
	fields := map[string]jsonField{}
	for _, f := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		// An embedded struct's own fields are listed after it.
		case !f.IsExported() || f.Anonymous || name == "-":
			continue
		case name == "":
			name = f.Name
		}
		fields[foldKey(name)] = jsonField{name: name, typ: f.Type}
	}
	sf := structFields{byKey: fields, open: t.Implements(openType)}
	fieldsByType.Store(t, sf)
	return sf
}

// foldKey maps every rune to the smallest of its case-folding orbit, so two
// keys fold alike exactly when encoding/json would take one for the other
// (strings.EqualFold: "K", "k" and the Kelvin sign are one letter).
func foldKey(key string) string {
	if ascii, ok := foldASCII(key); ok {
		return ascii
	}
	return foldRunes(key)
}

func foldRunes(key string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, key)
}

// foldASCII is foldKey for a key of ASCII only, the common case: the least
// of an ASCII letter's orbit is its upper case (the Kelvin sign and the
// long s, which fold to K and S, are not ASCII and take the slow path).
func foldASCII(key string) (string, bool) {
	upper := true
	for i := range len(key) {
		c := key[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		if 'a' <= c && c <= 'z' {
			upper = false
		}
	}
	if upper {
		return key, true
	}
	return strings.ToUpper(key), true
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

// loneSurrogate reports whether body holds a \u escape of a UTF-16
// surrogate that is not half of a pair, which encodes no character.
func loneSurrogate(body []byte) bool {
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if i+1 < len(body) && body[i+1] != 'u' {
			i++ // another escape: skip its character, a backslash included
			continue
		}
		r, ok := hex4(body, i+2)
		switch {
		case !ok:
			continue // malformed: the decoder reports it
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			low, ok := rune(0), i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u'
			if ok {
				low, ok = hex4(body, i+8)
			}
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
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
	case errors.Is(err, authz.ErrInvalid):
		return err // checkKeys' own, already worded for the caller
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: body exceeds %d bytes", errBodyTooLarge, tooLarge.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The net error names the server's own address: not for callers.
		return fmt.Errorf("%w: the body did not arrive in time", errBodyTimeout)
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
		// Read failures: their wording is safe to show.
		return fmt.Errorf("%w: %s", authz.ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
}
