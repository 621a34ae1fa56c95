package registry

import (
	"log/slog"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// serveError writes err as the OCI error JSON body with its status. It is
// the one place Sigil's own handlers turn errors into responses;
// distribution does the same for its handlers (errcode.ServeJSON in its
// app), so clients see one format.
func serveError(w http.ResponseWriter, logger *slog.Logger, err error) {
	if err := errcode.ServeJSON(w, err); err != nil {
		logger.Warn("writing error response", "error", err)
	}
}
