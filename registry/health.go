package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// serveHealth answers /healthz: 200 when the storage answers, 503 with the
// reason otherwise. Load balancers take a replica out on 503.
func (r *Registry) serveHealth(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	_, err := r.driver.Stat(ctx, "/")
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		err = nil // an empty storage is a healthy one
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	status := map[string]string{"status": "ok"}
	if err != nil {
		status = map[string]string{"status": "unavailable", "storage": err.Error()}
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(status)
}
