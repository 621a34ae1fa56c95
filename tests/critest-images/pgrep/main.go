// Command pgrep stands in for busybox's pgrep, which Debian's busybox-static
// (the stand-in images' busybox) lacks and the real busybox images have.
// Like busybox's, it matches an extended regular expression against each
// process's name (/proc/<pid>/comm), or its whole command line with -f, and
// prints the matching PIDs, never its own; exit status 1 when none match.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	full := flag.Bool("f", false, "match the whole command line")
	list := flag.Bool("l", false, "show the process name as well")
	exact := flag.Bool("x", false, "match the whole name")
	invert := flag.Bool("v", false, "negate the match")
	newest := flag.Bool("n", false, "only the newest (highest PID)")
	oldest := flag.Bool("o", false, "only the oldest (lowest PID)")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: pgrep [-flnovx] PATTERN") }
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	pattern := flag.Arg(0)
	if *exact {
		pattern = "^(" + pattern + ")$"
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgrep: bad pattern %q: %v\n", flag.Arg(0), err)
		os.Exit(2)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgrep: %v (is /proc mounted?)\n", err)
		os.Exit(3)
	}
	self := os.Getpid()
	type match struct {
		pid  int
		text string
	}
	var found []match
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue // gone meanwhile
		}
		text := strings.TrimSuffix(string(comm), "\n")
		if *full {
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			if len(cmdline) > 0 {
				text = strings.TrimRight(strings.ReplaceAll(string(cmdline), "\x00", " "), " ")
			}
		}
		if re.MatchString(text) != *invert {
			found = append(found, match{pid, text})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].pid < found[j].pid })
	if len(found) > 0 && *newest {
		found = found[len(found)-1:]
	}
	if len(found) > 0 && *oldest {
		found = found[:1]
	}
	for _, m := range found {
		if *list {
			fmt.Println(m.pid, m.text)
		} else {
			fmt.Println(m.pid)
		}
	}
	if len(found) == 0 {
		os.Exit(1)
	}
}
