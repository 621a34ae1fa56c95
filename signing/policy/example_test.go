package policy_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/sigil-project/sigil/signing/policy"
)

func ExampleEvaluator_Evaluate() {
	p, err := policy.Parse([]byte(`{
		"default": [{"type": "reject"}],
		"transports": {"docker": {"docker.io/library/busybox": [{"type": "insecureAcceptAnything"}]}}
	}`))
	if err != nil {
		panic(err)
	}
	ev, err := policy.NewEvaluator(p)
	if err != nil {
		panic(err)
	}
	const d = "sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"

	v, err := ev.Evaluate(context.Background(), "docker", "busybox", d)
	fmt.Println(v.Accepted, v.Scope, err)

	_, err = ev.Evaluate(context.Background(), "docker", "alpine", d)
	var rej *policy.RejectedError
	if errors.As(err, &rej) {
		fmt.Println(rej.Code, rej.Scope)
	}
	// Output:
	// true docker.io/library/busybox <nil>
	// POLICY_REJECT default
}
