// Package docs checks the repository's markdown: every relative link names a
// file that exists, and every #anchor a heading of the file it points into,
// so that moving a section or renaming a file cannot leave a dead link.
package docs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// skipDirs are not the project's documentation: vendored code keeps its
// upstream's links, and build output is not committed.
var skipDirs = map[string]bool{".git": true, "bin": true, "dist": true, "node_modules": true, "third_party": true}

var (
	// [text](target) and ![alt](target), target without spaces, an optional "title" after it.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// <a id="x"> or <a name="x">: anchors written by hand.
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	heading    = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	linkText   = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// Problem is one dead link: where it is and what is wrong.
type Problem struct {
	File   string // relative to the root
	Line   int
	Target string
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Target, p.Reason)
}

// MarkdownFiles lists the .md files under root, relative to it, sorted.
func MarkdownFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// Check returns every dead relative link of the given markdown files (paths
// relative to root). Links with a scheme (https:, mailto:) are not followed.
func Check(root string, files []string) ([]Problem, error) {
	anchors := map[string]map[string]bool{} // file -> its anchors, read once
	anchorsOf := func(file string) (map[string]bool, error) {
		if a, ok := anchors[file]; ok {
			return a, nil
		}
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return nil, err
		}
		a := Anchors(string(b))
		anchors[file] = a
		return a, nil
	}
	var problems []Problem
	for _, file := range files {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return nil, err
		}
		for _, l := range links(string(b)) {
			target := l.target
			if strings.Contains(target, ":") && !strings.HasPrefix(target, "#") {
				continue // https:, mailto: and the like
			}
			path, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				if strings.HasPrefix(path, "/") {
					resolved = strings.TrimPrefix(path, "/")
				} else {
					resolved = filepath.ToSlash(filepath.Join(filepath.Dir(file), path))
				}
				info, err := os.Stat(filepath.Join(root, resolved))
				if err != nil {
					problems = append(problems, Problem{file, l.line, target, "no such file or directory"})
					continue
				}
				if info.IsDir() && anchor != "" {
					problems = append(problems, Problem{file, l.line, target, "an anchor into a directory"})
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(resolved, ".md") {
				continue // anchors of other files (line numbers, YAML) are not checked
			}
			a, err := anchorsOf(resolved)
			if err != nil {
				return nil, err
			}
			if !a[anchor] {
				problems = append(problems, Problem{file, l.line, target, "no heading or anchor #" + anchor + " in " + resolved})
			}
		}
	}
	return problems, nil
}

type link struct {
	line   int
	target string
}

// links finds the inline links outside fenced code blocks and code spans.
func links(doc string) []link {
	var out []link
	for i, line := range proseLines(doc) {
		line = codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			out = append(out, link{i + 1, m[1]})
		}
	}
	return out
}

// proseLines returns doc's lines with those of fenced code blocks (fences
// included) blanked, so line numbers stay those of the file.
func proseLines(doc string) []string {
	lines := strings.Split(doc, "\n")
	fence := ""
	for i, line := range lines {
		if f, ok := fenceOf(line); ok {
			switch {
			case fence == "":
				fence = f
			case strings.HasPrefix(strings.TrimSpace(line), fence):
				fence = ""
			}
			lines[i] = ""
			continue
		}
		if fence != "" {
			lines[i] = ""
		}
	}
	return lines
}

// fenceOf reports whether line opens or closes a fenced code block, and its fence.
func fenceOf(line string) (string, bool) {
	t := strings.TrimSpace(line)
	for _, f := range []string{"```", "~~~"} {
		if strings.HasPrefix(t, f) {
			return f, true
		}
	}
	return "", false
}

// Anchors are the ids GitHub gives a document's headings (Slug, with -1, -2
// for repeats) and the ids of its <a id> and <a name> tags.
func Anchors(doc string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range proseLines(doc) {
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		slug := Slug(m[2])
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// Slug is GitHub's id for a heading: the text as rendered (a link's text,
// code without its backticks), lower case, every character but letters,
// digits, spaces, hyphens and underscores dropped, spaces made hyphens.
func Slug(text string) string {
	text = linkText.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
