package api

// Routes exposes the registered routes to the OpenAPI test.
func (h *Handler) Routes() []Route { return h.routes() }
