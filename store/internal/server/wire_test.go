package server_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// wireTypes are the types of store/client/api with the schema of
// docs/openapi.yaml each one is. api.Event has none: it is the part of
// WatchEvent that a change is.
var wireTypes = map[reflect.Type]string{
	reflect.TypeFor[api.ErrorBody]():     "Error",
	reflect.TypeFor[api.ErrorDetail]():   "ErrorDetail",
	reflect.TypeFor[api.PutResult]():     "PutResult",
	reflect.TypeFor[api.DeleteResult]():  "DeleteResult",
	reflect.TypeFor[api.ListPage]():      "ListPage",
	reflect.TypeFor[api.ListItem]():      "ListItem",
	reflect.TypeFor[api.WatchEvent]():    "WatchEvent",
	reflect.TypeFor[api.ClusterStatus](): "ClusterStatus",
	reflect.TypeFor[api.Member]():        "Member",
	reflect.TypeFor[api.QuorumReport]():  "QuorumReport",
	reflect.TypeFor[api.Fork]():          "Fork",
}

// embeddedOnly are api types that travel only inside another.
var embeddedOnly = []string{"Event"}

// wireField is one JSON member of a Go type, as encoding/json sees it.
type wireField struct {
	name      string
	omitempty bool
	typ       reflect.Type
}

// jsonFields lists the JSON members of a struct type, those of embedded
// structs without a tag included (encoding/json flattens them).
func jsonFields(t *testing.T, typ reflect.Type) []wireField {
	t.Helper()
	var out []wireField
	for f := range typ.Fields() {
		tag, tagged := f.Tag.Lookup("json")
		if f.Anonymous && !tagged && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(t, f.Type)...)
			continue
		}
		require.True(t, f.IsExported(), "%s.%s: a wire type has unexported fields", typ.Name(), f.Name)
		name, opts, _ := strings.Cut(tag, ",")
		require.True(t, tagged && name != "" && name != "-", "%s.%s has no json name", typ.Name(), f.Name)
		out = append(out, wireField{name: name, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty"), typ: f.Type})
	}
	return out
}

// checkType: the property of a field's schema has the field's JSON type;
// a struct is the $ref of its own schema.
func checkType(t *testing.T, where string, typ reflect.Type, prop *openapi3.SchemaRef) {
	t.Helper()
	require.NotNil(t, prop.Value, "%s: unresolved schema", where)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	is := func(want string) {
		assert.True(t, prop.Value.Type.Is(want), "%s: a Go %s is %q in the document, want %q", where, typ, prop.Value.Type, want)
	}
	switch typ.Kind() {
	case reflect.Struct:
		name, ok := wireTypes[typ]
		require.True(t, ok, "%s: %s is not a wire type", where, typ)
		assert.Equal(t, "#/components/schemas/"+name, prop.Ref, "%s: a %s", where, typ)
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Uint8 {
			is(openapi3.TypeString)
			assert.Equal(t, "base64", prop.Value.ContentEncoding, "%s: bytes travel in base64", where)
			return
		}
		is(openapi3.TypeArray)
		require.NotNil(t, prop.Value.Items, "%s: an array without items", where)
		checkType(t, where+"[]", typ.Elem(), prop.Value.Items)
	case reflect.String:
		is(openapi3.TypeString)
	case reflect.Bool:
		is(openapi3.TypeBoolean)
	case reflect.Int, reflect.Int64, reflect.Uint64:
		is(openapi3.TypeInteger)
	case reflect.Float64:
		is(openapi3.TypeNumber)
	default:
		t.Errorf("%s: no JSON type known for a Go %s", where, typ)
	}
}

// TestOpenAPISchemasAreTheWireTypes: each type of store/client/api, which
// the server encodes and the client decodes, is its schema in
// docs/openapi.yaml: every field a property of the same JSON type and
// every property a field, required exactly when the field is always sent
// (no omitempty); the enumerations are the api constants (ErrorCode's:
// TestOpenAPIDocumentsEveryErrorCode).
func TestOpenAPISchemasAreTheWireTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for typ, name := range wireTypes {
		ref, ok := doc.Components.Schemas[name]
		require.True(t, ok, "%s: no schema %s in %s", typ, name, openAPIFile)
		schema := ref.Value
		assert.True(t, schema.Type.Is(openapi3.TypeObject), "%s is not an object", name)
		fields := jsonFields(t, typ)
		var names []string
		for _, f := range fields {
			where := name + "." + f.name
			names = append(names, f.name)
			prop, ok := schema.Properties[f.name]
			if !assert.True(t, ok, "%s (%s) is not in the document", where, typ) {
				continue
			}
			checkType(t, where, f.typ, prop)
			assert.Equal(t, !f.omitempty, slices.Contains(schema.Required, f.name),
				"%s: required in the document exactly when %s always sends it (no omitempty)", where, typ)
		}
		for prop := range schema.Properties {
			assert.Contains(t, names, prop, "%s.%s is documented but %s has no such field", name, prop, typ)
		}
		for _, r := range schema.Required {
			assert.Contains(t, names, r, "%s requires %s, which %s has no field for", name, r, typ)
		}
	}

	enums := []struct {
		schema, prop string
		values       []string
	}{
		{"WatchEvent", "type", []string{api.EventPut, api.EventDelete, api.EventExpire, api.EventError}},
		{"QuorumReport", "state", []string{api.QuorumOK, api.QuorumElecting, api.QuorumWaiting}},
	}
	for _, e := range enums {
		var documented []string
		for _, v := range doc.Components.Schemas[e.schema].Value.Properties[e.prop].Value.Enum {
			documented = append(documented, v.(string))
		}
		assert.ElementsMatch(t, e.values, documented, "the enum of %s %s: the api constants vs the document", e.schema, e.prop)
	}
	assert.ElementsMatch(t, []any{api.SuffrageVoter, api.SuffrageNonvoter}, doc.Components.Schemas["Member"].Value.Properties["suffrage"].Value.Examples)
}

// TestEveryAPITypeIsChecked: a struct type added to store/client/api is
// added to wireTypes (or embeddedOnly) too, so the test above sees it.
func TestEveryAPITypeIsChecked(t *testing.T) {
	dir := filepath.Join("..", "..", "client", "api")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	var declared []string
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				declared = append(declared, ts.Name.Name)
			}
		}
	}
	require.NotEmpty(t, declared, "no type found in %s", dir)
	checked := slices.Clone(embeddedOnly)
	for typ := range wireTypes {
		checked = append(checked, typ.Name())
	}
	assert.ElementsMatch(t, declared, checked, "the types of %s vs those this test holds to the document", dir)
}
