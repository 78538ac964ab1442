package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/cluster"
	"github.com/ephemeral-store/ephemeral-store/store/internal/httpapi"
	"github.com/ephemeral-store/ephemeral-store/store/internal/server"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

var openAPIFile = filepath.Join("..", "..", "..", "docs", "openapi.yaml")

// loadOpenAPI loads docs/openapi.yaml and validates it as OpenAPI 3.1.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(openAPIFile)
	require.NoError(t, err, "loading %s", openAPIFile)
	require.NoError(t, doc.Validate(context.Background()), "%s is not a valid OpenAPI document", openAPIFile)
	require.True(t, doc.IsOpenAPI31OrLater(), "mutualTLS needs OpenAPI 3.1")
	return doc
}

// routeSet is "path" -> sorted methods.
type routeSet map[string][]string

func (rs routeSet) add(path string, methods ...string) {
	for _, m := range methods {
		if !slices.Contains(rs[path], m) {
			rs[path] = append(rs[path], m)
		}
	}
	sort.Strings(rs[path])
}

// fromPatterns reads ServeMux patterns "METHOD /path".
func fromPatterns(t *testing.T, patterns []string) routeSet {
	t.Helper()
	rs := routeSet{}
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		require.True(t, ok, "pattern %q has no method", p)
		rs.add(path, method)
	}
	return rs
}

// probePort is the port of the servers a probe path of the document names.
const probePort = "8089"

// documented splits the document's operations into client paths (the
// document's servers) and probe paths (a path-level server on the probe
// port).
func documented(t *testing.T, doc *openapi3.T) (client, probe routeSet) {
	t.Helper()
	client, probe = routeSet{}, routeSet{}
	for path, item := range doc.Paths.Map() {
		var methods []string
		for m := range item.Operations() {
			methods = append(methods, strings.ToUpper(m))
		}
		isProbe := false
		for _, s := range item.Servers {
			u, err := url.Parse(strings.ReplaceAll(s.URL, "{pod}", "pod"))
			require.NoError(t, err, "server of %s", path)
			isProbe = isProbe || u.Port() == probePort
		}
		if isProbe {
			probe.add(path, methods...)
		} else {
			require.Empty(t, item.Servers, "%s: a path-level server other than the probe port", path)
			client.add(path, methods...)
		}
	}
	return client, probe
}

func clientRoutes() routeSet {
	rs := routeSet{}
	for _, r := range httpapi.Routes() {
		rs.add(r.Path, r.Methods...)
	}
	return rs
}

// TestOpenAPIDocumentsEveryRoute: every route the client API dispatches
// from (httpapi.Routes) and the probe port registers (server.ProbeRoutes)
// is in docs/openapi.yaml with exactly its methods, every documented path
// is served, and no peer route is documented.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	docClient, docProbe := documented(t, doc)

	served := clientRoutes()
	require.NotEmpty(t, served)
	for path, methods := range served {
		assert.Equal(t, methods, docClient[path], "client route %s: methods served vs documented in %s", path, openAPIFile)
	}
	for path := range docClient {
		assert.Contains(t, served, path, "%s documents %s, which the server does not serve", openAPIFile, path)
	}

	probes := fromPatterns(t, server.ProbeRoutes())
	require.NotEmpty(t, probes)
	// A ServeMux "GET" pattern answers HEAD too; the document lists GET.
	for path, methods := range probes {
		assert.Equal(t, methods, docProbe[path], "probe route %s: methods served vs documented", path)
	}
	for path := range docProbe {
		assert.Contains(t, probes, path, "%s documents probe path %s, which the probe port does not serve", openAPIFile, path)
	}

	peers := fromPatterns(t, cluster.PeerRoutes())
	require.NotEmpty(t, peers)
	for path := range peers {
		require.True(t, strings.HasPrefix(path, "/peer/"), "peer route %s outside /peer/", path)
		assert.NotContains(t, docClient, path, "peer route %s is not part of the client API", path)
		assert.NotContains(t, docProbe, path, "peer route %s is not part of the client API", path)
	}
	for path := range docClient {
		assert.False(t, strings.HasPrefix(path, "/peer/"), "%s documents %s: /peer/ is the peer port's", openAPIFile, path)
	}
	assert.Contains(t, doc.Info.Description, "/peer/", "the description says the peer routes are not part of the API")
}

// TestOpenAPIDocumentsEveryErrorCode: the ErrorCode enum is exactly the
// codes of store/client/api (api.Codes).
func TestOpenAPIDocumentsEveryErrorCode(t *testing.T) {
	doc := loadOpenAPI(t)
	ref, ok := doc.Components.Schemas["ErrorCode"]
	require.True(t, ok, "%s has no ErrorCode schema", openAPIFile)
	var documented []string
	for _, v := range ref.Value.Enum {
		s, ok := v.(string)
		require.True(t, ok, "ErrorCode enum value %v is not a string", v)
		documented = append(documented, s)
	}
	for _, c := range api.Codes() {
		assert.Contains(t, documented, c, "error code %q is missing from ErrorCode in %s", c, openAPIFile)
	}
	for _, c := range documented {
		assert.Contains(t, api.Codes(), c, "ErrorCode in %s lists %q, which store/client/api does not declare", openAPIFile, c)
	}
	// The error body's code is that schema.
	detail := doc.Components.Schemas["ErrorDetail"]
	require.NotNil(t, detail)
	require.Equal(t, "#/components/schemas/ErrorCode", detail.Value.Properties["code"].Ref)
}

// TestOpenAPIRoutesAnswerOnARunningServer sends every documented client
// operation to a real node: none may answer "no such route" or "method
// not allowed", and a method the document does not list must get 405. The
// probe paths answer on the probe port.
func TestOpenAPIRoutesAnswerOnARunningServer(t *testing.T) {
	doc := loadOpenAPI(t)
	docClient, docProbe := documented(t, doc)
	c, base := single(t)
	hc := httpClient(t, c, testcluster.UserAll)

	for path, methods := range docClient {
		target := base + strings.ReplaceAll(path, "{key}", "openapi/probe")
		for _, m := range methods {
			status, code := statusAndCode(t, hc, m, target)
			assert.NotEqual(t, http.StatusMethodNotAllowed, status, "%s %s", m, path)
			assert.NotEqual(t, api.CodeNotFound, code, "%s %s", m, path)
		}
		status, code, _ := do(t, hc, http.MethodPatch, target, nil)
		assert.Equal(t, http.StatusMethodNotAllowed, status, "PATCH %s", path)
		assert.Equal(t, api.CodeMethodNotAllowed, code, "PATCH %s", path)
	}
	status, code, _ := do(t, hc, http.MethodGet, base+"/v2/nothing", nil)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, api.CodeNotFound, code)

	for path, methods := range docProbe {
		for _, m := range methods {
			resp, err := http.DefaultClient.Do(mustRequest(t, m, "http://"+c.Node(0).Probe+path))
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "%s %s on the probe port", m, path)
		}
	}
}

// statusAndCode sends a request without a body and returns the status and
// the error code, reading no more than the head of a streamed answer.
func statusAndCode(t *testing.T, hc *http.Client, method, target string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err, "%s %s", method, target)
	defer resp.Body.Close()
	var e api.ErrorBody
	if resp.StatusCode >= 400 && method != http.MethodHead {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e), "%s %s: error bodies are JSON", method, target)
	}
	return resp.StatusCode, e.Error.Code
}

func mustRequest(t *testing.T, method, target string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	require.NoError(t, err)
	return req
}

// TestOpenAPIResponsesMatchTheirSchemas validates requests and the real
// node's answers against the document (kin-openapi's openapi3filter): the
// parameters sent must be documented, and each answer's status, headers
// and JSON body must match what the document says, errors included.
func TestOpenAPIResponsesMatchTheirSchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	c, base := single(t)
	hc := httpClient(t, c, testcluster.UserAll)
	// Route against this node: the document's servers are templates.
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacyrouter.NewRouter(doc)
	require.NoError(t, err)
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		// The mutual TLS handshake authenticates; nothing to check here.
		AuthenticationFunc: func(context.Context, *openapi3filter.AuthenticationInput) error { return nil },
	}

	steps := []struct {
		method, path, body string
		status             int
		// into is the api type a 2xx JSON answer is (nil: not JSON); an
		// error's is api.ErrorBody.
		into any
	}{
		{http.MethodPut, "/v1/kv/openapi-k?ttl=30s", "v1", http.StatusOK, &api.PutResult{}},
		{http.MethodPut, "/v1/kv/openapi-k?prev_revision=0", "v2", http.StatusPreconditionFailed, nil},
		{http.MethodPut, "/v1/kv/openapi-k?ttl=forever", "v2", http.StatusBadRequest, nil},
		{http.MethodGet, "/v1/kv/openapi-k", "", http.StatusOK, nil},
		{http.MethodGet, "/v1/kv/openapi-k?stale", "", http.StatusOK, nil},
		{http.MethodHead, "/v1/kv/openapi-k", "", http.StatusOK, nil},
		{http.MethodGet, "/v1/kv/?prefix=openapi&limit=10", "", http.StatusOK, &api.ListPage{}},
		{http.MethodGet, "/v1/kv/?prefix=openapi&keys_only", "", http.StatusOK, &api.ListPage{}},
		{http.MethodGet, "/v1/kv/openapi-missing", "", http.StatusNotFound, nil},
		{http.MethodGet, "/v1/cluster", "", http.StatusOK, &api.ClusterStatus{}},
		{http.MethodPost, "/v1/cluster/reform?confirm=", "", http.StatusBadRequest, nil},
		{http.MethodGet, "/v1/watch/?from=999999999", "", http.StatusGone, nil},
		{http.MethodDelete, "/v1/kv/openapi-k", "", http.StatusOK, &api.DeleteResult{}},
		{http.MethodDelete, "/v1/kv/openapi-k", "", http.StatusNotFound, nil},
	}
	for _, s := range steps {
		name := s.method + " " + s.path
		var body io.Reader
		if s.body != "" {
			body = strings.NewReader(s.body)
		}
		req, err := http.NewRequest(s.method, base+s.path, body)
		require.NoError(t, err, name)
		if s.body != "" {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		route, pathParams, err := router.FindRoute(req)
		require.NoError(t, err, "%s: no documented route", name)
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route, Options: opts}
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in), "%s: the request does not match the document", name)
		// ValidateRequest lets unknown query parameters through: every one
		// sent must be documented for the operation.
		for q := range req.URL.Query() {
			documented := false
			for _, p := range append(route.PathItem.Parameters, route.Operation.Parameters...) {
				documented = documented || (p.Value.In == openapi3.ParameterInQuery && p.Value.Name == q)
			}
			assert.True(t, documented, "%s: query parameter %q is not documented", name, q)
		}
		// A status must be listed, not only covered by default.
		assert.NotNil(t, route.Operation.Responses.Status(s.status), "%s: status %d is not documented", name, s.status)
		if s.body != "" {
			req.Body = io.NopCloser(strings.NewReader(s.body)) // ValidateRequest read it
		}

		resp, err := hc.Do(req)
		require.NoError(t, err, name)
		respBody, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err, name)
		require.Equal(t, s.status, resp.StatusCode, "%s: %s", name, respBody)
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts,
		}
		out.SetBodyBytes(respBody)
		assert.NoError(t, openapi3filter.ValidateResponse(context.Background(), out), "%s: the answer does not match the document: %s", name, respBody)
		into := s.into
		if s.status >= 400 {
			into = &api.ErrorBody{}
		}
		if into != nil {
			decodesStrictly(t, name, respBody, into)
		}
	}

	// A watch stream is lines of JSON, which the validator above does not
	// read: the put and the delete of the steps, each a WatchEvent.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	from := steps[0].into.(*api.PutResult).Revision
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/watch/?prefix=openapi-k&from=%d", base, from), nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	lines := bufio.NewScanner(resp.Body)
	schema := doc.Components.Schemas["WatchEvent"].Value
	for _, want := range []string{api.EventPut, api.EventDelete} {
		require.True(t, lines.Scan(), "the watch ended before its %s event: %v", want, lines.Err())
		var ev api.WatchEvent
		decodesStrictly(t, "a watch line", lines.Bytes(), &ev)
		assert.Equal(t, want, ev.Type, "%s", lines.Bytes())
		var generic any
		require.NoError(t, json.Unmarshal(lines.Bytes(), &generic))
		assert.NoError(t, schema.VisitJSON(generic), "the watch line does not match WatchEvent: %s", lines.Bytes())
	}
}

// decodesStrictly: body decodes into v, an api type, with no member left
// over, and v encodes back to the same JSON. The server sends the api
// types themselves, and these checks fail when an answer is built from
// anything else.
func decodesStrictly(t *testing.T, name string, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "%s: the answer does not decode into %T: %s", name, v, body)
	again, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, string(body), string(again), "%s: %T does not give back what the server sent", name, v)
}
