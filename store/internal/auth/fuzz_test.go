package auth

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
)

// FuzzParseUser checks that ParseUser never panics, that every error wraps
// ErrInvalidUser, that what it accepts is a well-formed User, and that
// MarshalJSON writes what ParseUser reads back to the same User.
// Seeds: f.Add below and testdata/fuzz/FuzzParseUser.
func FuzzParseUser(f *testing.F) {
	for _, s := range []string{
		`{ "name": "myuser", "auth_mode": "certificate" }`,
		`{"name":"reader","auth_mode":"certificate","permissions":[{"prefix":"pools/","access":"read"}]}`,
		`{"name":"nobody","permissions":[]}`,
		`{"name":"w","permissions":[{"prefix":"","access":"readwrite"},{"prefix":"a","access":"read","x":1}]}`,
		`{"name":"a","name":"b"}`,
		`{"name":"a","permissions":null}`,
		`{"name":"\u00e9\ud83d\ude00"}`,
		`{"name":"a"} x`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUser(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidUser) {
				t.Fatalf("error does not wrap ErrInvalidUser: %v", err)
			}
			return
		}
		if u.Name == "" || strings.IndexFunc(u.Name, unicode.IsControl) >= 0 {
			t.Fatalf("accepted bad name %q", u.Name)
		}
		if u.AuthMode != AuthModeCertificate {
			t.Fatalf("auth mode %q", u.AuthMode)
		}
		if u.AllKeys != (u.Permissions == nil) {
			t.Fatalf("AllKeys %v with permissions %#v", u.AllKeys, u.Permissions)
		}
		for _, p := range u.Permissions {
			if !p.Access.Valid() {
				t.Fatalf("invalid access %v", p.Access)
			}
		}
		out, err := json.Marshal(u)
		if err != nil {
			t.Fatalf("marshal %#v: %v", u, err)
		}
		again, err := ParseUser(out)
		if err != nil {
			t.Fatalf("reparse %s: %v", out, err)
		}
		if again.Name != u.Name || again.AllKeys != u.AllKeys || len(again.Permissions) != len(u.Permissions) {
			t.Fatalf("round trip: %#v became %#v", u, again)
		}
		for i := range u.Permissions {
			if again.Permissions[i] != u.Permissions[i] {
				t.Fatalf("round trip: %#v became %#v", u, again)
			}
		}
	})
}
