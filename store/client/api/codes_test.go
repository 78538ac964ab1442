package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The module has no test dependencies (applications that import it get
// none): plain testing.

// declared returns the value of every constant of codes.go, by name, read
// from its source: Codes must not forget one.
func declared(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
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
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", name.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out[name.Name] = v
			}
		}
	}
	return out
}

func TestCodesListsEveryConstantOnce(t *testing.T) {
	var values []string
	for _, v := range declared(t) {
		values = append(values, v)
	}
	slices.Sort(values)
	if all := slices.Sorted(slices.Values(Codes())); !slices.Equal(values, all) {
		t.Errorf("declared %q, Codes %q", values, all)
	}
	seen := map[string]bool{}
	form := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	for _, c := range Codes() {
		if seen[c] {
			t.Errorf("%q twice", c)
		}
		seen[c] = true
		if !form.MatchString(c) {
			t.Errorf("%q is not lower_snake_case", c)
		}
	}
}

// docCodes reads the codes of the table under "### Error codes" in
// docs/interfaces.md: every `code` in the second column, outside
// parentheses (which hold remarks such as "with `Retry-After`").
func docCodes(t *testing.T) []string {
	t.Helper()
	// The module lives in the repository with the docs (store/client/api).
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "interfaces.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(data), "\n### Error codes")
	if !found {
		t.Fatal(`docs/interfaces.md has no "### Error codes" section`)
	}
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
	if rows == 0 {
		t.Fatal("no table rows found under ### Error codes")
	}
	return codes
}

// TestDocumentedCodesAreTheConstants: a code documented but never sent,
// or sent but not documented, fails here.
func TestDocumentedCodesAreTheConstants(t *testing.T) {
	documented := docCodes(t)
	inDoc := map[string]bool{}
	for _, c := range documented {
		if inDoc[c] {
			t.Errorf("%q is documented twice", c)
		}
		inDoc[c] = true
	}
	declared := map[string]bool{}
	for _, c := range Codes() {
		declared[c] = true
		if !inDoc[c] {
			t.Errorf("%q is declared in codes.go but missing from the table of docs/interfaces.md", c)
		}
	}
	for _, c := range documented {
		if !declared[c] {
			t.Errorf("%q is in the table of docs/interfaces.md but not declared in codes.go", c)
		}
	}
}
