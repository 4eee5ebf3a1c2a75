package server

import (
	"net"
	"net/http"
	"strings"
)

// listenerGroup is one listen address and what serves it: an API's gateway,
// or a router by Host when APIs share the address.
type listenerGroup struct {
	name    string // API names, comma-separated
	addr    string
	handler http.Handler
}

// listenerGroups groups the APIs by listen address, in config order.
func (s *Server) listenerGroups() []listenerGroup {
	var groups []listenerGroup
	index := map[string]int{}
	routers := map[string]hostRouter{}
	for _, api := range s.apis {
		g := s.gateways[api.Name]
		i, seen := index[api.Listen]
		if !seen || api.Listen == "" || strings.HasSuffix(api.Listen, ":0") {
			index[api.Listen] = len(groups)
			groups = append(groups, listenerGroup{name: api.Name, addr: api.Listen, handler: g})
			if api.Host != "" {
				routers[api.Listen] = hostRouter{api.Host: g}
				groups[len(groups)-1].handler = routers[api.Listen]
			}
			continue
		}
		// config allows a shared address only when every API on it has
		// its own host, so the first one created the router.
		routers[api.Listen][api.Host] = g
		groups[i].name += "," + api.Name
	}
	return groups
}

// hostRouter sends each request to the API configured for its Host.
type hostRouter map[string]http.Handler

func (h hostRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
	}
	if g := h[strings.TrimSuffix(host, ".")]; g != nil {
		g.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"error": "No API is configured for this host."}`))
}
