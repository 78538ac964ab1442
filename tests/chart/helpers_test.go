// Package chart holds the template tests of charts/ephemeral-store: the chart is
// rendered with `helm template` through terratest's helm module (no cluster)
// and the decoded Kubernetes objects are asserted on.
package chart

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/logger"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	namespace   = "store-ns"
	oldRelease  = "ephemeral-store" // the release name that keeps the old object names
	kubeVersion = "v1.34.3"         // scripts/versions.sh K8S_VERSION
)

var (
	repoRoot = mustAbs("../..")
	chartDir = filepath.Join(repoRoot, "charts", "ephemeral-store")
)

func mustAbs(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return abs
}

// TestMain puts the repository's bin/ first on PATH, so that the tests run the
// pinned helm that `make tools` installs there even under a plain `go test`.
func TestMain(m *testing.M) {
	_ = os.Setenv("PATH", filepath.Join(repoRoot, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	os.Exit(m.Run())
}

var (
	helmOnce sync.Once
	helmErr  error
)

// requireHelm fails the test (never skips it) when helm cannot be run.
func requireHelm(t *testing.T) {
	t.Helper()
	helmOnce.Do(func() {
		path, err := exec.LookPath("helm")
		if err != nil {
			helmErr = fmt.Errorf("helm is not installed: the chart tests need the pinned helm in %s; run `make tools` (or `make test-chart`, which does): %w",
				filepath.Join(repoRoot, "bin"), err)
			return
		}
		out, err := exec.Command(path, "version", "--short").CombinedOutput()
		if err != nil {
			helmErr = fmt.Errorf("%s version: %w: %s", path, err, out)
			return
		}
		if !strings.HasPrefix(strings.TrimSpace(string(out)), "v3.") {
			helmErr = fmt.Errorf("%s is %s; the chart tests need helm v3 (run `make tools`)", path, strings.TrimSpace(string(out)))
		}
	})
	require.NoError(t, helmErr)
}

// opts are the inputs of one render.
type opts struct {
	release     string            // default oldRelease
	set         map[string]string // --set
	setJSON     map[string]string // --set-json
	valuesFiles []string          // relative to the chart directory
	chart       string            // default chartDir
}

// renderE runs `helm template` and returns its output or its error.
func renderE(t *testing.T, o opts) (string, error) {
	t.Helper()
	requireHelm(t)
	if o.release == "" {
		o.release = oldRelease
	}
	if o.chart == "" {
		o.chart = chartDir
	}
	files := make([]string, 0, len(o.valuesFiles))
	for _, f := range o.valuesFiles {
		files = append(files, filepath.Join(o.chart, f))
	}
	options := &helm.Options{
		SetValues:      o.set,
		SetJSONValues:  o.setJSON,
		ValuesFiles:    files,
		KubectlOptions: k8s.NewKubectlOptions("", "", namespace),
		Logger:         logger.Discard,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return helm.RenderTemplateContextE(t, ctx, options, o.chart, o.release, nil, "--kube-version", kubeVersion)
}

// render runs `helm template` and decodes every object; a render error fails the test.
func render(t *testing.T, o opts) *manifests {
	t.Helper()
	out, err := renderE(t, o)
	require.NoError(t, err, "helm template")
	return decode(t, out)
}

// object is one rendered Kubernetes object.
type object struct {
	Kind   string
	Name   string
	Source string // the template it came from
	Raw    []byte // YAML
	Meta   struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Namespace   string            `json:"namespace"`
	}
}

type manifests struct {
	objects []object
}

var sourceLine = regexp.MustCompile(`(?m)^# Source: (\S+)`)

// decode splits helm's output into its YAML documents with apimachinery's
// YAML reader (a separator is a line that starts with "---", as in the YAML
// spec, not any "\n---" in the text) and keeps every document that is an object.
func decode(t *testing.T, out string) *manifests {
	t.Helper()
	m := &manifests{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		raw, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "splitting the rendered YAML into documents")
		doc := string(raw)
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name        string            `json:"name"`
				Namespace   string            `json:"namespace"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &head), "decoding:\n%s", doc)
		if head.Kind == "" {
			continue
		}
		o := object{Kind: head.Kind, Name: head.Metadata.Name, Raw: []byte(doc)}
		if s := sourceLine.FindStringSubmatch(doc); s != nil {
			o.Source = s[1]
		}
		o.Meta.Labels = head.Metadata.Labels
		o.Meta.Annotations = head.Metadata.Annotations
		o.Meta.Namespace = head.Metadata.Namespace
		m.objects = append(m.objects, o)
	}
	return m
}

// find returns the object of that kind and name, or nil.
func (m *manifests) find(kind, name string) *object {
	for i := range m.objects {
		if m.objects[i].Kind == kind && m.objects[i].Name == name {
			return &m.objects[i]
		}
	}
	return nil
}

// get decodes the object of that kind and name into into; a missing object fails the test.
func (m *manifests) get(t *testing.T, kind, name string, into any) {
	t.Helper()
	o := m.find(kind, name)
	require.NotNil(t, o, "no %s %q rendered; have %v", kind, name, m.names())
	require.NoError(t, yaml.Unmarshal(o.Raw, into), "decoding %s %q", kind, name)
}

// ofKind returns every object of a kind.
func (m *manifests) ofKind(kind string) []object {
	var out []object
	for _, o := range m.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// names lists "Kind/name" of every object, sorted.
func (m *manifests) names() []string {
	out := make([]string, 0, len(m.objects))
	for _, o := range m.objects {
		out = append(out, o.Kind+"/"+o.Name)
	}
	sort.Strings(out)
	return out
}

// statefulSet returns the single StatefulSet.
func (m *manifests) statefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	all := m.ofKind("StatefulSet")
	require.Len(t, all, 1, "exactly one StatefulSet")
	var sts appsv1.StatefulSet
	require.NoError(t, yaml.Unmarshal(all[0].Raw, &sts))
	return &sts
}

// secret returns a Secret by name.
func (m *manifests) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	m.get(t, "Secret", name, &s)
	return &s
}

// storeContainer returns the store container of the StatefulSet.
func storeContainer(t *testing.T, sts *appsv1.StatefulSet) corev1.Container {
	t.Helper()
	require.Len(t, sts.Spec.Template.Spec.Containers, 1)
	return sts.Spec.Template.Spec.Containers[0]
}

// flags turns `--name=value` arguments into a map of name to values.
func flags(args []string) map[string][]string {
	out := map[string][]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out[name] = append(out[name], value)
	}
	return out
}

// volume returns the pod volume of that name, or nil.
func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// mounts maps mount paths to volume names for a container.
func mounts(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, vm := range c.VolumeMounts {
		out[vm.MountPath] = vm.Name
	}
	return out
}

// itemPaths maps the keys of a Secret volume's items to their file paths.
func itemPaths(v *corev1.Volume) map[string]string {
	out := map[string]string{}
	if v == nil || v.Secret == nil {
		return out
	}
	for _, it := range v.Secret.Items {
		out[it.Key] = it.Path
	}
	return out
}

// valuesFiles lists the per-environment values files and chart-testing's ci/ files.
func valuesFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"values-*.yaml", "ci/*-values.yaml"} {
		matches, err := filepath.Glob(filepath.Join(chartDir, pattern))
		require.NoError(t, err)
		for _, m := range matches {
			rel, err := filepath.Rel(chartDir, m)
			require.NoError(t, err)
			out = append(out, rel)
		}
	}
	require.NotEmpty(t, out)
	sort.Strings(out)
	return out
}
