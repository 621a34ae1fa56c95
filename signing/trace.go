package signing

import (
	"context"
	"fmt"
	"sync"
)

// Trace records every step of a verification, in order, for
// `sigil verify --explain`. Like net/http/httptrace it travels in the
// context of one request, since it describes that request only:
//
//	tr := &signing.Trace{}
//	verdict, err := v.Judge(signing.WithTrace(ctx, tr), name, desc)
//	for _, s := range tr.Steps() { fmt.Println(s) }
//
// A Trace is safe for concurrent use. Steps never hold secrets: keys are
// named by path and KeyID.
type Trace struct {
	mu    sync.Mutex
	steps []string
}

// Steps returns the recorded steps.
func (t *Trace) Steps() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.steps...)
}

func (t *Trace) add(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.steps = append(t.steps, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

type traceKey struct{}

// WithTrace returns a context whose verifications record their steps in t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceFrom(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}
