// Command ipcs stands in for busybox's ipcs, which Debian's busybox-static
// (the stand-in images' busybox) lacks and the real busybox images have.
// It lists System V IPC objects from /proc/sysvipc in busybox's layout:
// -m shared memory, -q message queues, -s semaphore arrays, all by default.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	shm := flag.Bool("m", false, "shared memory segments")
	msq := flag.Bool("q", false, "message queues")
	sem := flag.Bool("s", false, "semaphore arrays")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: ipcs [-mqs]") }
	flag.Parse()
	all := !*shm && !*msq && !*sem
	users := names("/etc/passwd")
	failed := false
	if all || *shm {
		// key shmid perms size cpid lpid nattch uid ...
		failed = show("/proc/sysvipc/shm", "Shared Memory Segments",
			"key        shmid      owner      perms      bytes      nattch     status",
			func(f []string) string {
				return fmt.Sprintf("0x%08x %-10s %-10s %-10s %-10s %-10s", key(f[0]), f[1], user(users, f[7]), perms(f[2]), f[3], f[6])
			}) || failed
	}
	if all || *sem {
		// key semid perms nsems uid ...
		failed = show("/proc/sysvipc/sem", "Semaphore Arrays",
			"key        semid      owner      perms      nsems",
			func(f []string) string {
				return fmt.Sprintf("0x%08x %-10s %-10s %-10s %-10s", key(f[0]), f[1], user(users, f[4]), perms(f[2]), f[3])
			}) || failed
	}
	if all || *msq {
		// key msqid perms cbytes qnum lspid lrpid uid ...
		failed = show("/proc/sysvipc/msg", "Message Queues",
			"key        msqid      owner      perms      used-bytes  messages",
			func(f []string) string {
				return fmt.Sprintf("0x%08x %-10s %-10s %-10s %-11s %-10s", key(f[0]), f[1], user(users, f[7]), perms(f[2]), f[3], f[4])
			}) || failed
	}
	if failed {
		os.Exit(1)
	}
}

// show prints one table; it reports whether the file could not be read.
func show(path, title, header string, row func([]string) string) bool {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ipcs: %v (is /proc mounted?)\n", err)
		return true
	}
	defer f.Close()
	fmt.Printf("\n------ %s --------\n%s\n", title, header)
	sc := bufio.NewScanner(f)
	sc.Scan() // the kernel's header line
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 8 {
			fmt.Println(row(fields))
		}
	}
	fmt.Println()
	return false
}

func key(s string) uint32 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return uint32(n)
}

func perms(s string) string {
	n, _ := strconv.ParseUint(s, 10, 32)
	return strconv.FormatUint(n&0o777, 8)
}

func user(users map[string]string, uid string) string {
	if n, ok := users[uid]; ok {
		return n
	}
	return uid
}

// names maps uids to user names from a passwd file.
func names(path string) map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 {
			m[f[2]] = f[0]
		}
	}
	return m
}
