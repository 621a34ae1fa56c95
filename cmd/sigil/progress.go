package main

import (
	"io"
	"os"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// barProgress draws one bar per layer being downloaded, as docker pull
// does. It is used only when stderr is a terminal.
type barProgress struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*mpb.Bar
}

func newBarProgress(w io.Writer) *barProgress {
	return &barProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40)), bars: map[string]*mpb.Bar{}}
}

func (b *barProgress) Start(desc ocispec.Descriptor) func(int) {
	short := desc.Digest.Encoded()[:12]
	bar := b.p.AddBar(desc.Size,
		mpb.PrependDecorators(decor.Name(short+" "), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.OnComplete(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30), "done")),
	)
	b.mu.Lock()
	b.bars[desc.Digest.String()] = bar
	b.mu.Unlock()
	return func(n int) { bar.IncrBy(n) }
}

func (b *barProgress) Done(desc ocispec.Descriptor, err error) {
	b.mu.Lock()
	bar := b.bars[desc.Digest.String()]
	b.mu.Unlock()
	if bar == nil {
		return
	}
	if err != nil {
		bar.Abort(false)
		return
	}
	bar.SetTotal(-1, true)
}

// Wait lets the bars draw their final state.
func (b *barProgress) Wait() { b.p.Wait() }

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
