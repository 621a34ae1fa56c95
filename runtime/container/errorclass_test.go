package container

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
)

func TestErrorClassSurvivesTheReport(t *testing.T) {
	for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument, errdefs.ErrFailedPrecondition, errdefs.ErrPermissionDenied} {
		err := fmt.Errorf("start container x: %w", class)
		if got := classFromName(className(err)); !errors.Is(got, class) {
			t.Errorf("%v: class after the report = %v", class, got)
		}
	}
	if got := className(errors.New("plain")); got != "" {
		t.Errorf("className(plain error) = %q, want none", got)
	}
	if got := classFromName(""); !errors.Is(got, errdefs.ErrUnknown) {
		t.Errorf("classFromName(\"\") = %v, want ErrUnknown", got)
	}
}
