package container

import (
	"runtime"
	"sync"
)

// launch runs fn, which forks a container process, on the launcher: one
// OS thread that lives as long as the process.
//
// The kernel sends a parent-death signal when the *thread* that forked a
// process exits, not when its process does. The Go runtime terminates a
// thread when a goroutine locked to it returns (libcontainer and
// runtime/pod do that on purpose, after changing a thread's namespaces),
// and such a goroutine may land on a thread that earlier forked a
// container's init for someone else, whose container would then be
// SIGKILLed for nothing. Forking only from a thread locked to a goroutine
// that never returns rules that out.
//
// Starts are serialized; each takes a few tens of milliseconds.
func launch(fn func() error) error {
	l := theLauncher()
	done := make(chan error, 1)
	l <- func() { done <- fn() }
	return <-done
}

// theLauncher is process-wide on purpose: the property it provides (a
// thread that never exits) is one of the process, not of a Manager.
var theLauncher = sync.OnceValue(func() chan<- func() {
	reqs := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked, and this goroutine never returns
		for fn := range reqs {
			fn()
		}
	}()
	return reqs
})
