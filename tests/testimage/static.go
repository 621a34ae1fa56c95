package testimage

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// StaticRegistry answers registry API paths with canned responses, so a
// test can serve what no honest registry would: blobs that do not match
// their digest, truncated bodies, hostile manifests.
type StaticRegistry struct {
	Host   string
	server *httptest.Server

	mu        sync.Mutex
	responses map[string]Response
	hits      map[string]int
}

// Response is one canned answer.
type Response struct {
	ContentType string
	Body        []byte
	// ContentLength, when not zero, is declared instead of len(Body).
	ContentLength int
	Status        int
}

// NewStaticRegistry starts an empty canned registry on 127.0.0.1.
func NewStaticRegistry() *StaticRegistry {
	s := &StaticRegistry{responses: map[string]Response{}, hits: map[string]int{}}
	s.server = httptest.NewServer(http.HandlerFunc(s.serve))
	s.Host = strings.TrimPrefix(s.server.URL, "http://")
	return s
}

// Close stops the registry.
func (s *StaticRegistry) Close() { s.server.Close() }

// Set registers the answer for an API path such as
// "/v2/repo/manifests/latest" or "/v2/repo/blobs/sha256:...".
func (s *StaticRegistry) Set(path string, r Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responses[path] = r
}

// Hits counts the requests whose path starts with prefix.
func (s *StaticRegistry) Hits(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.hits {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func (s *StaticRegistry) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	resp, ok := s.responses[r.URL.Path]
	s.mu.Unlock()
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}`))
		return
	}
	if resp.ContentType != "" {
		w.Header().Set("Content-Type", resp.ContentType)
	}
	if resp.ContentLength != 0 {
		w.Header().Set("Content-Length", strconv.Itoa(resp.ContentLength))
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(resp.Body)
	}
}
