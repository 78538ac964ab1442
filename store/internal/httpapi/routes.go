package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
)

// Route is one route of the client API, as docs/openapi.yaml describes it.
// The router dispatches from this table, so the table is what the server
// serves; a test checks it against the OpenAPI document both ways.
type Route struct {
	// Name is the route label of the request metrics.
	Name string
	// Path is the path as the OpenAPI document writes it ({key} for the
	// key, which may itself contain slashes).
	Path string
	// Methods are the methods the route answers; any other gets 405
	// method_not_allowed (after authentication, like every answer but a
	// missing route).
	Methods []string

	match func(path, method string) bool
	serve func(a *API, w http.ResponseWriter, r *http.Request, u auth.User) error
}

// routes, in matching order: the first whose match accepts the escaped
// path serves the request. ServeHTTP routes by hand rather than with
// http.ServeMux: the mux cleans paths and would redirect keys such as
// "a//b" or "x/../y".
var routes = []Route{
	{
		Name: "list", Path: "/v1/kv/", Methods: []string{http.MethodGet},
		// Only GET lists; any other method on /v1/kv/ is a key route with
		// an empty key (400 invalid_key).
		match: func(p, m string) bool { return p == "/v1/kv/" && m == http.MethodGet },
		serve: (*API).list,
	},
	{
		Name: "kv", Path: "/v1/kv/{key}", Methods: []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete},
		match: func(p, _ string) bool { return strings.HasPrefix(p, "/v1/kv/") },
		serve: (*API).kv,
	},
	{
		Name: "watch", Path: "/v1/watch/", Methods: []string{http.MethodGet},
		match: func(p, _ string) bool { return p == "/v1/watch/" },
		serve: (*API).watch,
	},
	{
		Name: "watch", Path: "/v1/watch", Methods: []string{http.MethodGet},
		match: func(p, _ string) bool { return p == "/v1/watch" },
		serve: (*API).watch,
	},
	{
		Name: "cluster", Path: "/v1/cluster", Methods: []string{http.MethodGet},
		match: func(p, _ string) bool { return p == "/v1/cluster" },
		serve: func(a *API, w http.ResponseWriter, _ *http.Request, _ auth.User) error {
			writeJSON(w, http.StatusOK, a.o.Cluster.Status())
			return nil
		},
	},
	{
		Name: "reform", Path: "/v1/cluster/reform", Methods: []string{http.MethodPost},
		match: func(p, _ string) bool { return p == "/v1/cluster/reform" },
		serve: (*API).reform,
	},
}

// Routes returns the client API's routes, for documentation checks.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, r := range routes {
		out[i] = Route{Name: r.Name, Path: r.Path, Methods: slices.Clone(r.Methods)}
	}
	return out
}

// findRoute returns the route serving an escaped path, or nil.
func findRoute(path, method string) *Route {
	for i := range routes {
		if routes[i].match(path, method) {
			return &routes[i]
		}
	}
	return nil
}
