package auth

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrForbidden means the user is known but not allowed the operation.
	ErrForbidden = errors.New("forbidden")
	// ErrUnknownUser means no entry of the users directory has the name.
	ErrUnknownUser = errors.New("unknown user")
)

// Authorize allows u the access need on key, or returns an error wrapping
// ErrForbidden. It is allowed when u.AllKeys, or when a permission's prefix
// starts key and its access allows need. An invalid need is forbidden.
func Authorize(u User, key string, need Access) error {
	return authorize(u, key, need, "key")
}

// AuthorizePrefix allows u the access need on every key under prefix (for
// list and watch), or returns an error wrapping ErrForbidden. It is allowed
// when u.AllKeys, or when one permission covers the whole requested range:
// its prefix starts the requested prefix and its access allows need. A
// user allowed only "pools/" may list "pools/" and "pools/a", not "" or
// "pool".
func AuthorizePrefix(u User, prefix string, need Access) error {
	return authorize(u, prefix, need, "prefix")
}

func authorize(u User, s string, need Access, what string) error {
	if !need.Valid() {
		return fmt.Errorf("%w: invalid access %s requested", ErrForbidden, need)
	}
	if u.AllKeys {
		return nil
	}
	for _, p := range u.Permissions {
		if strings.HasPrefix(s, p.Prefix) && p.Access.Allows(need) {
			return nil
		}
	}
	verb := "read"
	if need == AccessReadWrite {
		verb = "write"
	}
	return fmt.Errorf("%w: user %q may not %s %s %q", ErrForbidden, u.Name, verb, what, s)
}
