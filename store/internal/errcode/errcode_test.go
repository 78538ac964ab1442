package errcode

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// declared returns the value of every string constant of this package, by
// name, read from its source: All must not forget one.
func declared(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errcode.go", nil, 0)
	require.NoError(t, err)
	out := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				require.True(t, ok && lit.Kind == token.STRING, "%s is not a string literal", name.Name)
				v, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				out[name.Name] = v
			}
		}
	}
	return out
}

func TestAllListsEveryConstantOnce(t *testing.T) {
	var values []string
	for _, v := range declared(t) {
		values = append(values, v)
	}
	assert.ElementsMatch(t, values, All())
	seen := map[string]bool{}
	for _, c := range All() {
		assert.False(t, seen[c], "%q twice", c)
		seen[c] = true
		assert.Regexp(t, `^[a-z]+(_[a-z]+)*$`, c)
	}
}

// docCodes reads the codes of the table under "### Error codes" in
// docs/interfaces.md: every `code` in the second column, outside
// parentheses (which hold remarks such as "with `Retry-After`").
func docCodes(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "interfaces.md"))
	require.NoError(t, err)
	_, section, found := strings.Cut(string(data), "\n### Error codes")
	require.True(t, found, `docs/interfaces.md has no "### Error codes" section`)
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	code := regexp.MustCompile("`([^`]+)`")
	remark := regexp.MustCompile(`\([^)]*\)`)
	var codes []string
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue // not a table row
		}
		status := strings.TrimSpace(cells[1])
		if status == "status" || strings.HasPrefix(status, "---") {
			continue // header
		}
		rows++
		for _, m := range code.FindAllStringSubmatch(remark.ReplaceAllString(cells[2], ""), -1) {
			codes = append(codes, m[1])
		}
	}
	require.NotZero(t, rows, "no table rows found under ### Error codes")
	return codes
}

// TestDocumentedCodesAreTheConstants: a code documented but never sent,
// or sent but not documented, fails here.
func TestDocumentedCodesAreTheConstants(t *testing.T) {
	documented := docCodes(t)
	inDoc := map[string]bool{}
	for _, c := range documented {
		assert.False(t, inDoc[c], "%q is documented twice", c)
		inDoc[c] = true
	}
	declared := map[string]bool{}
	for _, c := range All() {
		declared[c] = true
		assert.True(t, inDoc[c], "%q is declared in errcode but missing from the table of docs/interfaces.md", c)
	}
	for _, c := range documented {
		assert.True(t, declared[c], "%q is in the table of docs/interfaces.md but not declared in errcode", c)
	}
}
