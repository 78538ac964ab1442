// Package auth holds the users allowed into the store and what each may do.
//
// Users come from a directory with one JSON file per user, the users
// ConfigMap mounted as a volume, in the old system's format:
//
//	{ "name": "myuser", "auth_mode": "certificate",
//	  "permissions": [ { "prefix": "pools/", "access": "read" } ] }
//
// The name is the Common Name of the user's verified client certificate
// (see package mtls). Without a "permissions" key the user may read and
// write every key, as in the old system; "permissions": [] allows nothing.
// Permissions only add up: a key is allowed when any permission whose
// prefix starts the key grants the access needed ("readwrite" includes
// "read"; the prefix "" covers every key).
//
// A Directory loads the files and follows changes without a restart.
package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AuthModeCertificate is the only authentication mode: the user is the
// Common Name of a verified TLS client certificate.
const AuthModeCertificate = "certificate"

// ErrInvalidUser wraps every reason ParseUser refuses an entry.
var ErrInvalidUser = errors.New("invalid user entry")

// Access is what a permission allows, or what an operation needs. The zero
// value is not a valid access.
type Access uint8

const (
	// AccessRead allows reading keys: get, list, watch.
	AccessRead Access = iota + 1
	// AccessReadWrite allows reading, writing and deleting keys.
	AccessReadWrite
)

// ParseAccess parses the JSON names "read" and "readwrite".
func ParseAccess(s string) (Access, error) {
	switch s {
	case "read":
		return AccessRead, nil
	case "readwrite":
		return AccessReadWrite, nil
	}
	return 0, fmt.Errorf("access %q is neither \"read\" nor \"readwrite\"", s)
}

// String returns the JSON name: "read", "readwrite", or "invalid(N)".
func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessReadWrite:
		return "readwrite"
	}
	return fmt.Sprintf("invalid(%d)", uint8(a))
}

// Valid reports whether a is AccessRead or AccessReadWrite.
func (a Access) Valid() bool { return a == AccessRead || a == AccessReadWrite }

// Allows reports whether a permission granting a allows an operation that
// needs need: readwrite allows read; an invalid access allows nothing.
func (a Access) Allows(need Access) bool {
	return a.Valid() && need.Valid() && a >= need
}

// MarshalText implements encoding.TextMarshaler.
func (a Access) MarshalText() ([]byte, error) {
	if !a.Valid() {
		return nil, fmt.Errorf("marshal access: %s", a)
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Access) UnmarshalText(b []byte) error {
	v, err := ParseAccess(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Permission grants Access to every key that starts with Prefix.
type Permission struct {
	Prefix string `json:"prefix"`
	Access Access `json:"access"`
}

// User is one entry of the users directory. When AllKeys is true the user
// may read and write every key and Permissions is nil; otherwise
// Permissions is all the user may do (possibly nothing). AuthMode is
// always AuthModeCertificate. A User from a Directory is shared: do not
// modify its Permissions.
type User struct {
	Name        string
	AuthMode    string
	Permissions []Permission
	AllKeys     bool
}

// MarshalJSON writes the users-directory format, which ParseUser reads
// back to the same User.
func (u User) MarshalJSON() ([]byte, error) {
	type perms = []Permission
	out := struct {
		Name        string `json:"name"`
		AuthMode    string `json:"auth_mode"`
		Permissions *perms `json:"permissions,omitempty"`
	}{Name: u.Name, AuthMode: u.AuthMode}
	if out.AuthMode == "" {
		out.AuthMode = AuthModeCertificate
	}
	if !u.AllKeys {
		p := u.Permissions
		if p == nil {
			p = perms{}
		}
		out.Permissions = &p
	}
	return json.Marshal(out)
}

// ParseUser parses one users-directory entry. It is strict about what it
// knows and lenient about what it does not:
//
//   - the entry is one JSON object in valid UTF-8, nothing after it, no key
//     given twice; keys match exactly (not case-insensitively);
//   - "name": required, a non-empty string without control characters;
//   - "auth_mode": optional (default "certificate"), and if given, the
//     string "certificate";
//   - "permissions": optional; if given, an array (null is refused: omit the
//     key for every key, or give [] for none) of objects, each with the
//     string "prefix" (required; "" means every key) and the string
//     "access" (required; "read" or "readwrite");
//   - any other key, here or in a permission, is ignored.
//
// Every error wraps ErrInvalidUser and names the offending field.
func ParseUser(data []byte) (User, error) {
	u, _, err := parseUser(data)
	return u, err
}

// parseUser is ParseUser that also returns the ignored keys, as
// "key" or "permissions[i].key", for a warning.
func parseUser(data []byte) (User, []string, error) {
	invalid := func(format string, args ...any) (User, []string, error) {
		return User{}, nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidUser}, args...)...)
	}
	if !utf8.Valid(data) {
		return invalid("not valid UTF-8")
	}
	fields, keys, err := object(data, true)
	if err != nil {
		return invalid("%v", err)
	}
	var unknown []string
	for _, k := range keys {
		switch k {
		case "name", "auth_mode", "permissions":
		default:
			unknown = append(unknown, k)
		}
	}

	u := User{AuthMode: AuthModeCertificate}
	raw, ok := fields["name"]
	if !ok {
		return invalid("name: missing")
	}
	if u.Name, err = stringValue(raw); err != nil {
		return invalid("name: %v", err)
	}
	if err := validName(u.Name); err != nil {
		return invalid("name: %v", err)
	}

	if raw, ok := fields["auth_mode"]; ok {
		mode, err := stringValue(raw)
		if err != nil {
			return invalid("auth_mode: %v", err)
		}
		if mode != AuthModeCertificate {
			return invalid("auth_mode: %q is not supported (the only mode is %q)", mode, AuthModeCertificate)
		}
	}

	raw, ok = fields["permissions"]
	if !ok {
		u.AllKeys = true
		return u, unknown, nil
	}
	if kind(raw) != '[' {
		return invalid("permissions: want an array, got %s (omit the key for every key, [] for none)", describe(raw))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return invalid("permissions: %v", err)
	}
	u.Permissions = make([]Permission, 0, len(items))
	for i, item := range items {
		p, extra, err := permission(item)
		if err != nil {
			return invalid("permissions[%d].%v", i, err)
		}
		for _, k := range extra {
			unknown = append(unknown, fmt.Sprintf("permissions[%d].%s", i, k))
		}
		u.Permissions = append(u.Permissions, p)
	}
	return u, unknown, nil
}

func permission(raw json.RawMessage) (Permission, []string, error) {
	var p Permission
	if kind(raw) != '{' {
		return p, nil, fmt.Errorf("want an object, got %s", describe(raw))
	}
	fields, keys, err := object(raw, false)
	if err != nil {
		return p, nil, err
	}
	var unknown []string
	for _, k := range keys {
		if k != "prefix" && k != "access" {
			unknown = append(unknown, k)
		}
	}
	rawPrefix, ok := fields["prefix"]
	if !ok {
		return p, nil, errors.New(`prefix: missing (use "" for every key)`)
	}
	if p.Prefix, err = stringValue(rawPrefix); err != nil {
		return p, nil, fmt.Errorf("prefix: %w", err)
	}
	rawAccess, ok := fields["access"]
	if !ok {
		return p, nil, errors.New(`access: missing (want "read" or "readwrite")`)
	}
	s, err := stringValue(rawAccess)
	if err != nil {
		return p, nil, fmt.Errorf("access: %w", err)
	}
	if p.Access, err = ParseAccess(s); err != nil {
		return p, nil, fmt.Errorf("access: %w", err)
	}
	return p, unknown, nil
}

// object splits a JSON object into its members, exactly as written,
// refusing duplicate keys; whole also refuses anything after the object.
func object(data []byte, whole bool) (map[string]json.RawMessage, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("want a JSON object, got %s", describe(bytes.TrimSpace(data)))
	}
	fields := map[string]json.RawMessage{}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("not JSON: %w", err)
		}
		key := tok.(string) // an object's tokens alternate key, value
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("not JSON: %s: %w", key, err)
		}
		if _, dup := fields[key]; dup {
			return nil, nil, fmt.Errorf("%s: given twice", key)
		}
		fields[key] = raw
		keys = append(keys, key)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, fmt.Errorf("not JSON: %w", err)
	}
	if whole {
		if _, err := dec.Token(); err != io.EOF {
			return nil, nil, errors.New("not JSON: data after the object")
		}
	}
	return fields, keys, nil
}

// kind is the first byte of a JSON value: '{', '[', '"', 'n' (null), 't'
// or 'f', or a digit or '-'.
func kind(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func describe(raw []byte) string {
	switch k := kind(raw); {
	case k == '{':
		return "an object"
	case k == '[':
		return "an array"
	case k == '"':
		return "a string"
	case k == 'n':
		return "null"
	case k == 't' || k == 'f':
		return "a boolean"
	case k == '-' || (k >= '0' && k <= '9'):
		return "a number"
	}
	return "nothing"
}

func stringValue(raw json.RawMessage) (string, error) {
	if kind(raw) != '"' {
		return "", fmt.Errorf("want a string, got %s", describe(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

func validName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if i := strings.IndexFunc(name, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%q has a control character at byte %d", name, i)
	}
	return nil
}
