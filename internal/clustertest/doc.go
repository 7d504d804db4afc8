// Package clustertest starts strata processes for tests: a cluster of N
// nodes with the command lines of issue 12 (node.id, process.roles,
// PLAINTEXT and CONTROLLER listeners, controller.quorum.voters, log.dirs,
// one shared remote.storage.url), or, with Options.Single, N independent
// single nodes. It builds cmd/strata once per test binary (Binary).
//
// Ports: each node gets a free PLAINTEXT port and a free CONTROLLER port
// whose next port is free too (the embedded etcd's client URL). Each node's
// stdout and stderr go to <tmp>/node-<id>.log, appended across restarts; the
// end of every log is printed when the test fails.
//
// Faults: Kill9 (SIGKILL), Stop and Cont (SIGSTOP, SIGCONT), Terminate
// (SIGTERM, returns the exit status), Restart (same command line and
// directories), WipeData (empties log.dirs of a node that is not running).
// Every process is killed when the test ends, failed or panicking, a stopped
// one too; processes also die with the test binary (PR_SET_PDEATHSIG).
//
// Network partitions (Options.Netns, netns.go): each node runs in its own
// network namespace with its own address on a bridge in a hub namespace; the
// test's clients reach the nodes from a client namespace (ClientCmd for
// processes, DialContext for in-process clients). Cut isolates a node, Heal
// restores it. The namespaces are removed at the end, and stale ones of a
// killed earlier run at the next start. Without the means (root, iproute2)
// the test skips, or fails with STRATATEST_REQUIRE_NETNS=1 (make test).
package clustertest
