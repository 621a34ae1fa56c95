package registries_test

import (
	"fmt"

	"github.com/sigil-project/sigil/runtime/registries"
)

func ExampleConfig_Endpoints() {
	conf, err := registries.Parse([]byte(`
[[registry]]
prefix = "registry.k8s.io"
location = "registry.k8s.io"

[[registry.mirror]]
location = "127.0.0.1:5000/k8s"
insecure = true
`))
	if err != nil {
		panic(err)
	}
	eps, err := conf.Endpoints("registry.k8s.io/pause", false)
	if err != nil {
		panic(err)
	}
	for _, ep := range eps {
		fmt.Printf("%s insecure=%v mirror=%v\n", ep, ep.Insecure, ep.Mirror)
	}
	// Output:
	// 127.0.0.1:5000/k8s/pause insecure=true mirror=true
	// registry.k8s.io/pause insecure=false mirror=false
}
