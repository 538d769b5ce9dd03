package env_test

import (
	"fmt"
	"net/netip"

	"github.com/ucspi-tls/sslserver/env"
)

func ExampleProgram() {
	base := []string{"PATH=/bin:/usr/bin", "KEYFILE=/etc/ssl/private/mx.key", "TCPREMOTEIP=203.0.113.66"}
	e := env.Endpoints{
		LocalIP: netip.MustParseAddr("::ffff:192.0.2.1"), LocalPort: 465,
		RemoteIP: netip.MustParseAddr("::ffff:192.0.2.7"), RemotePort: 50123,
		RemoteHost: "client.example.net", // LocalHost and RemoteInfo unknown: unset
	}
	rule := []env.Var{{Name: "RELAYCLIENT", Value: ""}}
	for _, kv := range env.Program(base, e, env.Options{}, nil, rule) {
		fmt.Println(kv)
	}
	// Output:
	// PATH=/bin:/usr/bin
	// PROTO=SSL
	// SSLLOCALIP=192.0.2.1
	// SSLLOCALPORT=465
	// SSLREMOTEIP=192.0.2.7
	// SSLREMOTEPORT=50123
	// SSLREMOTEHOST=client.example.net
	// RELAYCLIENT=
}
