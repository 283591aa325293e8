package gateway

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// TestFoldASCIIIsFoldKey: the fast path folds every ASCII key exactly as
// the rune-by-rune fold does, and leaves other keys to it.
func TestFoldASCIIIsFoldKey(t *testing.T) {
	keys := []string{"", "permission", "Permission", "PERMISSION", "consistency_token", "a1-B2_c3.{}", "\x00\x7f"}
	for c := range 128 {
		keys = append(keys, string(rune(c)))
	}
	for _, k := range keys {
		got, ok := foldASCII(k)
		if want := foldRunes(k); !ok || got != want {
			t.Errorf("foldASCII(%q) = %q, %v; foldRunes gives %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"\u212a", "ſ", "perḿission"} {
		if _, ok := foldASCII(k); ok {
			t.Errorf("foldASCII(%q) took a key that is not ASCII", k)
		}
	}
}

type flatBody struct {
	Permission string `json:"permission"`
	Company    string `json:"company"`
	Limit      int    `json:"limit"`
	Nested     struct {
		A string `json:"a"`
	} `json:"nested"`
}

var flatSeeds = []string{
	`{}`, ` { } `, `{"permission":"read","company":"acme"}`,
	`{"permission":"read","Permission":"delete"}`, `{"permission":"read","permission":"read"}`,
	`{"PERMISSION":"read"}`, `{"perm":"read"}`, `{"company":"a\"b","limit":10}`,
	`{"company":"\u0041","limit":-1.5e3}`, `{"p\u0065rmission":"read"}`, `{"limit":true,"company":null}`,
	`{"nested":{"a":"x","A":"y"}}`, `{"company":["a"]}`, `{"company":"x"} {}`, `{"company":"x",}`,
	`{"company" : "x" , "limit" : 1}`, "{\"company\":\"\xff\"}", "{\"\xff\":1}", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}`,
	`[]`, `"x"`, `{"company":"x"`, `{"ſ":1}`, `{"K":1,"k":2}`,
}

// FuzzFlatKeysAgreeWithTheWalk: whenever the fast path answers for a body
// of valid JSON, its answer is the token walk's.
func FuzzFlatKeysAgreeWithTheWalk(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	typ := reflect.TypeFor[*flatBody]()
	f.Fuzz(func(t *testing.T, body []byte) {
		flatErr, ok := checkFlatKeys(body, typ)
		if !ok || !json.Valid(body) {
			return
		}
		walkErr := walkKeys(body, typ)
		if fmt.Sprint(flatErr) != fmt.Sprint(walkErr) {
			t.Errorf("body %q: fast path says %v, the walk %v", body, flatErr, walkErr)
		}
	})
}

// TestFlatKeysTakeTheCommonBodies: the fast path does answer for the
// bodies it exists for, so the agreement above is not vacuous.
func TestFlatKeysTakeTheCommonBodies(t *testing.T) {
	typ := reflect.TypeFor[*flatBody]()
	for _, body := range []string{`{"permission":"read","company":"acme"}`, `{"permission":"read","Permission":"delete"}`, `{"perm":"read"}`, `{}`} {
		if _, ok := checkFlatKeys([]byte(body), typ); !ok {
			t.Errorf("fast path declined %s", body)
		}
	}
}

func TestLoneSurrogate(t *testing.T) {
	for body, want := range map[string]bool{
		`{"a":"\ud83d\ude00"}`:     false, // a pair: one emoji
		`{"a":"\ud83d"}`:           true,
		`{"a":"\ude00x"}`:          true,
		`{"a":"\ud83d\u0041"}`:     true,
		`{"a":"\\ud800"}`:          false, // an escaped backslash, then text
		`{"a":"\u00e9\n\"\\"}`:     false,
		`{"a":"\ud83d\ude00\ud8"}`: false, // malformed: the decoder's to report
	} {
		if got := loneSurrogate([]byte(body)); got != want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", body, got, want)
		}
	}
}
