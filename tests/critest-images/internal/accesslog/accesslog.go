// Package accesslog is the access log of the web-server stand-ins (nginx,
// httpd): one line on stdout per request, in the caller's format.
package accesslog

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// Entry is what a log line says about one served request.
type Entry struct {
	Request *http.Request
	// Host is the client's address, without its port.
	Host string
	// Time is when the response was written, as the common log format
	// gives it (02/Jan/2006:15:04:05 -0700).
	Time string
	// Status and Bytes are the response's status code and body size.
	Status, Bytes int
}

// Handler serves with h, then prints format(entry) and a newline to stdout.
func Handler(h http.Handler, format func(Entry) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rw, r)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Println(format(Entry{Request: r, Host: host, Time: time.Now().Format("02/Jan/2006:15:04:05 -0700"), Status: rw.status, Bytes: rw.n}))
	})
}

// statusWriter records the status code and the body size.
type statusWriter struct {
	http.ResponseWriter
	status, n int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }
func (w *statusWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += n
	return n, err
}
