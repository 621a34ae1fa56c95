package container

import "testing"

// waitForHandler must not take libcontainer's init (a Go program that
// catches every signal until it execs the container's program), nor a
// process in the middle of that exec, for the container's program.
func TestRuntimeInit(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    bool
	}{
		{"", true}, // exec in progress
		{"/usr/libexec/sigil/shim\x00init\x00", true},
		{"sigil\x00init\x00", true},
		{"sh\x00-c\x00top\x00", false},
		{"top\x00", false},
		{"/sbin/init\x00", false},
		{"nginx: master process nginx -g daemon off;\x00", false},
		{"tini\x00--\x00init\x00", false},
	} {
		if got := runtimeInit([]byte(tc.cmdline)); got != tc.want {
			t.Errorf("runtimeInit(%q) = %v, want %v", tc.cmdline, got, tc.want)
		}
	}
}
