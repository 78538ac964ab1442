package auth

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAuthorize(t *testing.T) {
	all := User{Name: "all", AllKeys: true}
	none := User{Name: "none", Permissions: []Permission{}}
	reader := User{Name: "reader", Permissions: []Permission{{Prefix: "pools/", Access: AccessRead}}}
	mixed := User{Name: "mixed", Permissions: []Permission{
		{Prefix: "", Access: AccessRead},
		{Prefix: "pools/mine/", Access: AccessReadWrite},
	}}
	everything := User{Name: "everything", Permissions: []Permission{{Prefix: "", Access: AccessReadWrite}}}

	tests := []struct {
		name    string
		user    User
		key     string
		need    Access
		allowed bool
	}{
		{"all keys: read", all, "any", AccessRead, true},
		{"all keys: write", all, "any", AccessReadWrite, true},
		{"empty permissions: read", none, "any", AccessRead, false},
		{"empty permissions: write", none, "", AccessReadWrite, false},
		{"reader under prefix", reader, "pools/a", AccessRead, true},
		{"reader on the prefix itself", reader, "pools/", AccessRead, true},
		{"reader may not write", reader, "pools/a", AccessReadWrite, false},
		{"reader outside prefix", reader, "other/a", AccessRead, false},
		{"reader on a shorter key", reader, "pools", AccessRead, false},
		{"prefix is not a substring match", reader, "x/pools/a", AccessRead, false},
		{"permissions add up: read anywhere", mixed, "other", AccessRead, true},
		{"permissions add up: write under own prefix", mixed, "pools/mine/a", AccessReadWrite, true},
		{"permissions add up: no write elsewhere", mixed, "pools/theirs/a", AccessReadWrite, false},
		{"empty prefix covers every key", everything, "anything/at/all", AccessReadWrite, true},
		{"invalid need is forbidden", all, "k", Access(0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Authorize(tt.user, tt.key, tt.need)
			if tt.allowed {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrForbidden)
			}
		})
	}
}

func TestAuthorizePrefix(t *testing.T) {
	reader := User{Name: "reader", Permissions: []Permission{{Prefix: "pools/", Access: AccessRead}}}
	two := User{Name: "two", Permissions: []Permission{{Prefix: "a/", Access: AccessRead}, {Prefix: "b/", Access: AccessRead}}}
	everything := User{Name: "everything", Permissions: []Permission{{Prefix: "", Access: AccessRead}}}

	tests := []struct {
		name    string
		user    User
		prefix  string
		need    Access
		allowed bool
	}{
		{"all keys list everything", User{AllKeys: true}, "", AccessRead, true},
		{"the permitted prefix", reader, "pools/", AccessRead, true},
		{"a longer prefix", reader, "pools/a", AccessRead, true},
		{"everything is more than permitted", reader, "", AccessRead, false},
		{"a shorter prefix reaches other keys", reader, "pool", AccessRead, false},
		{"another prefix", reader, "other/", AccessRead, false},
		{"read permission does not allow readwrite", reader, "pools/", AccessReadWrite, false},
		{"two permissions do not join into their parent", two, "", AccessRead, false},
		{"each of two permissions", two, "b/x", AccessRead, true},
		{"empty permission prefix covers every prefix", everything, "", AccessRead, true},
		{"no permissions", User{Permissions: []Permission{}}, "x", AccessRead, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AuthorizePrefix(tt.user, tt.prefix, tt.need)
			if tt.allowed {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrForbidden)
			}
		})
	}
}
