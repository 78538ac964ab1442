package chart

// values.schema.json against values.yaml, in the direction helm does not
// check: every property the schema knows must exist in values.yaml (the
// source of truth, and the README table generated from it), and the schema
// stays strict.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// schemaNode is the part of a JSON schema the walkers read.
type schemaNode struct {
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
}

// schemaOnlyProperties lists properties that may be in the schema without a
// default in values.yaml. Empty: every property has its default there (global
// included). Add a path only when a default is impossible, with the reason.
var schemaOnlyProperties = map[string]string{}

// openObjects lists the schema objects with named properties that accept other
// keys too, with the reason.
var openObjects = map[string]string{
	"global": "a parent chart shares all of its globals with its dependencies",
}

func loadSchema(t *testing.T) *schemaNode {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	var s schemaNode
	require.NoError(t, json.Unmarshal(data, &s))
	return &s
}

func loadValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, yaml.Unmarshal(data, &v))
	return v
}

// missingFromValues walks the schema's properties (not array items: a list's
// default is no example of its items) and returns the dotted paths values
// does not have.
func missingFromValues(s *schemaNode, values any, prefix string) []string {
	var out []string
	m, _ := values.(map[string]any)
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := strings.TrimPrefix(prefix+"."+name, ".")
		child, ok := m[name]
		if !ok {
			if _, exempt := schemaOnlyProperties[path]; !exempt {
				out = append(out, path)
			}
			continue
		}
		out = append(out, missingFromValues(s.Properties[name], child, path)...)
	}
	return out
}

func TestEverySchemaPropertyHasADefaultInValuesYAML(t *testing.T) {
	t.Parallel()
	assert.Empty(t, missingFromValues(loadSchema(t), loadValues(t), ""),
		"properties of values.schema.json missing from values.yaml: add each with its default and a ## @param comment")
	for path, reason := range schemaOnlyProperties {
		assert.NotEmpty(t, reason, "schemaOnlyProperties[%q] needs a reason", path)
	}
}

// The twin: the walk does report a property values.yaml lacks, nested or not.
func TestSchemaWalkReportsAMissingProperty(t *testing.T) {
	t.Parallel()
	s := loadSchema(t)
	s.Properties["ghost"] = &schemaNode{Type: "string"}
	s.Properties["metrics"].Properties["prometheusRule"].Properties["phantom"] = &schemaNode{Type: "boolean"}
	assert.Equal(t, []string{"ghost", "metrics.prometheusRule.phantom"}, missingFromValues(s, loadValues(t), ""))
}

// TestSchemaObjectsAreStrict: every object with named properties refuses
// unknown keys (a typo fails the install instead of being ignored).
func TestSchemaObjectsAreStrict(t *testing.T) {
	t.Parallel()
	var walk func(s *schemaNode, path string)
	walk = func(s *schemaNode, path string) {
		if len(s.Properties) > 0 {
			if _, open := openObjects[path]; open {
				assert.Equal(t, true, s.AdditionalProperties, "%s is listed as open", path)
			} else {
				assert.Equal(t, false, s.AdditionalProperties, "%s: set additionalProperties: false", strings.TrimPrefix(path, "."))
			}
		}
		for name, child := range s.Properties {
			walk(child, strings.TrimPrefix(path+"."+name, "."))
		}
	}
	walk(loadSchema(t), "")
}
