package runcmd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sigil-project/sigil/runtime/pod"
	"github.com/spf13/cobra"
)

// parse runs the run command's flag parsing on argv (flags, IMAGE, CMD).
func parse(t *testing.T, argv ...string) (*Flags, string, []string) {
	t.Helper()
	var got *Flags
	var image string
	var args []string
	cmd := NewCommand(func(_ *cobra.Command, f *Flags, img string, a []string) error {
		got, image, args = f, img, a
		return nil
	})
	cmd.SetArgs(argv)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("run %v: %v", argv, err)
	}
	return got, image, args
}

func TestCheck(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\n\nA=1\nFROM_HOST\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FROM_HOST", "h")
	f, image, args := parse(t, "--rm", "-e", "B=2", "-e", "FROM_HOST", "--env-file", envFile, "-m", "32m",
		"--net", "host", "--entrypoint", "", "-v", "/a:/b:ro", "img", "-e", "not-a-flag")
	if image != "img" || !reflect.DeepEqual(args, []string{"-e", "not-a-flag"}) {
		t.Errorf("image, args = %q, %q: flags after IMAGE belong to the command", image, args)
	}
	c, err := f.Check(args)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1", "FROM_HOST=h", "B=2", "FROM_HOST=h"}; !reflect.DeepEqual(c.Options.Env, want) {
		t.Errorf("env = %q, want %q", c.Options.Env, want)
	}
	if c.Options.Memory != 32<<20 || c.Network != pod.NetworkHost || c.Pull != PullMissing {
		t.Errorf("memory %d, network %v, pull %q", c.Options.Memory, c.Network, c.Pull)
	}
	if !c.Options.OverrideEntrypoint || c.Options.Entrypoint != nil {
		t.Errorf("--entrypoint '' must clear the image's entrypoint: %+v", c.Options)
	}
	if len(c.Options.Volumes) != 1 {
		t.Errorf("volumes = %+v", c.Options.Volumes)
	}
}

func TestCheckRefusesBadFlags(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad-env")
	if err := os.WriteFile(bad, []byte("OK=1\nNOT A KEY=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"--net", "bridge", "img"}, `--net "bridge": want none or host`},
		{[]string{"--pull", "sometimes", "img"}, `--pull "sometimes": want missing, always or never`},
		{[]string{"--memory", "lots", "img"}, `--memory: size "lots"`},
		{[]string{"--env-file", bad, "img"}, "line 2"},
		{[]string{"--env-file", "/nonexistent/env", "img"}, "--env-file: open /nonexistent/env"},
		{[]string{"-v", "relative:/x", "img"}, "relative"},
	} {
		f, _, args := parse(t, c.argv...)
		if _, err := f.Check(args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.argv, err, c.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "1k": 1 << 10, "32m": 32 << 20, "1.5GiB": 3 << 29, "2T": 2 << 40} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1m", "12q", "m"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}
