package auth

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseUser(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    User
		wantErr string // substring; empty: valid
	}{
		{name: "old format without permissions gets every key",
			in:   `{ "name": "myuser", "auth_mode": "certificate" }`,
			want: User{Name: "myuser", AuthMode: "certificate", AllKeys: true}},
		{name: "permissions",
			in: `{"name":"proxy","auth_mode":"certificate","permissions":[{"prefix":"pools/","access":"read"},{"prefix":"","access":"readwrite"}]}`,
			want: User{Name: "proxy", AuthMode: "certificate", Permissions: []Permission{
				{Prefix: "pools/", Access: AccessRead}, {Prefix: "", Access: AccessReadWrite}}}},
		{name: "empty permissions allow nothing",
			in:   `{"name":"nobody","auth_mode":"certificate","permissions":[]}`,
			want: User{Name: "nobody", AuthMode: "certificate", Permissions: []Permission{}}},
		{name: "auth_mode may be omitted",
			in:   `{"name":"myuser"}`,
			want: User{Name: "myuser", AuthMode: "certificate", AllKeys: true}},
		{name: "unknown keys are ignored",
			in:   `{"name":"myuser","auth_mode":"certificate","createSecret":true,"permissions":[{"prefix":"a","access":"read","comment":"x"}]}`,
			want: User{Name: "myuser", AuthMode: "certificate", Permissions: []Permission{{Prefix: "a", Access: AccessRead}}}},
		{name: "unicode name", in: `{"name":"üser ✓"}`, want: User{Name: "üser ✓", AuthMode: "certificate", AllKeys: true}},
		{name: "surrounding whitespace", in: "\n\t{\"name\":\"a\"}\n", want: User{Name: "a", AuthMode: "certificate", AllKeys: true}},

		{name: "bad access", in: `{"name":"a","permissions":[{"prefix":"p","access":"write"}]}`, wantErr: `permissions[0].access: access "write" is neither`},
		{name: "access in capitals", in: `{"name":"a","permissions":[{"prefix":"p","access":"READ"}]}`, wantErr: "permissions[0].access"},
		{name: "missing access", in: `{"name":"a","permissions":[{"prefix":"p"}]}`, wantErr: "permissions[0].access: missing"},
		{name: "missing prefix", in: `{"name":"a","permissions":[{"prefx":"p","access":"read"}]}`, wantErr: "permissions[0].prefix: missing"},
		{name: "bad auth_mode", in: `{"name":"a","auth_mode":"password"}`, wantErr: `auth_mode: "password" is not supported`},
		{name: "auth_mode not a string", in: `{"name":"a","auth_mode":1}`, wantErr: "auth_mode: want a string, got a number"},
		{name: "not JSON", in: `name: myuser`, wantErr: "not JSON"},
		{name: "empty file", in: ``, wantErr: "not JSON"},
		{name: "truncated", in: `{"name":"a"`, wantErr: "not JSON"},
		{name: "trailing data", in: `{"name":"a"} {"name":"b"}`, wantErr: "data after the object"},
		{name: "an array", in: `[{"name":"a"}]`, wantErr: "want a JSON object, got an array"},
		{name: "null", in: `null`, wantErr: "want a JSON object, got null"},
		{name: "empty name", in: `{"name":""}`, wantErr: "name: empty"},
		{name: "missing name", in: `{"auth_mode":"certificate"}`, wantErr: "name: missing"},
		{name: "name in capitals is not name", in: `{"Name":"a"}`, wantErr: "name: missing"},
		{name: "name with a newline", in: `{"name":"a\nb"}`, wantErr: "control character"},
		{name: "name with NUL", in: `{"name":"a\u0000"}`, wantErr: "control character"},
		{name: "name given twice", in: `{"name":"a","name":"admin"}`, wantErr: "name: given twice"},
		{name: "invalid UTF-8", in: "{\"name\":\"a\xff\"}", wantErr: "UTF-8"},
		{name: "name a number", in: `{"name":42}`, wantErr: "name: want a string, got a number"},
		{name: "name null", in: `{"name":null}`, wantErr: "name: want a string, got null"},
		{name: "permissions null", in: `{"name":"a","permissions":null}`, wantErr: "permissions: want an array, got null"},
		{name: "permissions an object", in: `{"name":"a","permissions":{"prefix":"","access":"read"}}`, wantErr: "permissions: want an array, got an object"},
		{name: "permission a string", in: `{"name":"a","permissions":["pools/"]}`, wantErr: "permissions[0].want an object, got a string"},
		{name: "prefix a number", in: `{"name":"a","permissions":[{"prefix":1,"access":"read"}]}`, wantErr: "permissions[0].prefix: want a string"},
		{name: "access a boolean", in: `{"name":"a","permissions":[{"prefix":"","access":true}]}`, wantErr: "permissions[0].access: want a string, got a boolean"},
		{name: "prefix given twice", in: `{"name":"a","permissions":[{"prefix":"a/","prefix":"","access":"read"}]}`, wantErr: "prefix: given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUser([]byte(tt.in))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInvalidUser)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			// What MarshalJSON writes reads back the same.
			data, err := json.Marshal(got)
			require.NoError(t, err)
			again, err := ParseUser(data)
			require.NoError(t, err)
			assert.Equal(t, got, again)
		})
	}
}

func TestParseUserReportsIgnoredKeys(t *testing.T) {
	_, unknown, err := parseUser([]byte(`{"name":"a","permission":[],"permissions":[{"prefix":"","access":"read","acces":"readwrite"}]}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"permission", "permissions[0].acces"}, unknown)
}

func TestAccess(t *testing.T) {
	for _, tt := range []struct {
		have, need Access
		allowed    bool
	}{
		{AccessRead, AccessRead, true},
		{AccessReadWrite, AccessRead, true},
		{AccessReadWrite, AccessReadWrite, true},
		{AccessRead, AccessReadWrite, false},
		{0, AccessRead, false},
		{AccessReadWrite, 0, false},
		{Access(9), AccessRead, false},
	} {
		assert.Equal(t, tt.allowed, tt.have.Allows(tt.need), "%s allows %s", tt.have, tt.need)
	}
	b, err := json.Marshal(Permission{Prefix: "p", Access: AccessReadWrite})
	require.NoError(t, err)
	assert.JSONEq(t, `{"prefix":"p","access":"readwrite"}`, string(b))
	_, err = json.Marshal(Permission{})
	assert.Error(t, err)
	var p Permission
	require.NoError(t, json.Unmarshal([]byte(`{"prefix":"x","access":"read"}`), &p))
	assert.Equal(t, AccessRead, p.Access)
	assert.Equal(t, "invalid(0)", Access(0).String())
}
