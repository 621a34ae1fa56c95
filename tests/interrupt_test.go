package tests

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-project/sigil/tests/testimage"
)

// TestInterruptedFetchCanBeRunAgain kills a fetch in the middle of a layer
// download and checks that nothing half-written is visible and that the
// same command, run again, completes the image.
func TestInterruptedFetchCanBeRunAgain(t *testing.T) {
	e := newEnv(t)
	img, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push("interrupt/app:1", img)
	layers, _ := img.Layers()
	last, _ := layers[len(layers)-1].Digest()

	// A proxy in front of the registry that, while stall is set, sends
	// half of the last layer and then hangs.
	var stall atomic.Bool
	stall.Store(true)
	inner := e.reg.Handler()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stall.Load() && strings.HasSuffix(r.URL.Path, "/blobs/"+last.String()) {
			size, _ := layers[len(layers)-1].Size()
			rc, _ := layers[len(layers)-1].Compressed()
			defer rc.Close()
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			w.WriteHeader(http.StatusOK)
			buf := make([]byte, size/2)
			n, _ := rc.Read(buf)
			w.Write(buf[:n])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	viaProxy := strings.Replace(ref, e.reg.Host, strings.TrimPrefix(proxy.URL, "http://"), 1)

	cmd := exec.Command(sigilBinary, "--root", e.root, "--state", e.state, "--policy", e.policy, "fetch", "-q", viaProxy)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ingest := filepath.Join(e.root, "content", "ingest")
	waitFor(t, "a partial download in "+ingest, func() bool {
		entries, _ := os.ReadDir(ingest)
		for _, en := range entries {
			if fi, err := en.Info(); err == nil && fi.Size() > 0 {
				return true
			}
		}
		return false
	})
	cmd.Process.Kill()
	cmd.Wait()

	if _, err := os.Stat(filepath.Join(e.root, "content", "blobs", "sha256", last.Hex)); err == nil {
		t.Fatalf("the half-downloaded layer %s is visible in the store", last)
	}
	if out := e.mustSigil("images", "-q").stdout; strings.TrimSpace(out) != "" {
		t.Fatalf("images after a killed fetch = %q, want none", out)
	}

	stall.Store(false)
	time.Sleep(10 * time.Millisecond)
	e.mustSigil("fetch", "-q", viaProxy)
	if r := e.mustSigil("run", "--rm", viaProxy, "cat", "/etc/motd"); r.stdout != "layer3\n" {
		t.Errorf("run after the resumed fetch = %q, want layer3", r.stdout)
	}
}
