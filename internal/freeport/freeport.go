// Package freeport finds free TCP ports on the loopback address, for tests,
// the benchmark and the MinIO harness, which start servers on them.
package freeport

import "net"

// Get returns a port on 127.0.0.1 that was free a moment ago. Another process
// may take it before the caller binds it; callers that can retry do.
func Get() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
