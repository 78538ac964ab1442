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

	match func(path, method string) bool // nil: derived from Path (matches)
	serve func(a *API, w http.ResponseWriter, r *http.Request, u auth.User) error
}

// routes, in matching order: the first whose match accepts the escaped
// path serves the request. ServeHTTP routes by hand rather than with
// http.ServeMux: the mux cleans paths and would redirect keys such as
// "a//b" or "x/../y".
var routes = []Route{
	{
		Name: "list", Path: "/v1/kv/", Methods: []string{http.MethodGet},
		// Only GET lists; any other method on /v1/kv/ goes to the key
		// route: an empty key (400 invalid_key) for its methods, 405 for
		// the rest.
		match: func(p, m string) bool { return p == "/v1/kv/" && m == http.MethodGet },
		serve: (*API).list,
	},
	{
		Name: "kv", Path: "/v1/kv/{key}", Methods: []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete},
		serve: (*API).kv,
	},
	{
		Name: "watch", Path: "/v1/watch/", Methods: []string{http.MethodGet},
		serve: (*API).watch,
	},
	{
		Name: "watch", Path: "/v1/watch", Methods: []string{http.MethodGet},
		serve: (*API).watch,
	},
	{
		Name: "cluster", Path: "/v1/cluster", Methods: []string{http.MethodGet},
		serve: func(a *API, w http.ResponseWriter, _ *http.Request, _ auth.User) error {
			writeJSON(w, http.StatusOK, a.o.Cluster.Status())
			return nil
		},
	},
	{
		Name: "reform", Path: "/v1/cluster/reform", Methods: []string{http.MethodPost},
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

// matches reports whether r serves an escaped path: its own match, else
// its Path itself, the prefix before a trailing "{key}" for key routes, so
// what the table documents is what the router serves.
func (r *Route) matches(path, method string) bool {
	if r.match != nil {
		return r.match(path, method)
	}
	if base, ok := strings.CutSuffix(r.Path, "{key}"); ok {
		return strings.HasPrefix(path, base)
	}
	return path == r.Path
}

// findRoute returns the route serving an escaped path, or nil.
func findRoute(path, method string) *Route {
	for i := range routes {
		if routes[i].matches(path, method) {
			return &routes[i]
		}
	}
	return nil
}
