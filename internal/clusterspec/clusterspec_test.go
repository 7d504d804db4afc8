package clusterspec

import (
	"slices"
	"testing"
)

func TestArgs(t *testing.T) {
	nodes := []Node{{ID: 1, Host: "127.0.0.1", Port: 9092, Ctrl: 9093, DataDir: "data-1"}, {ID: 2, Host: "127.0.0.1", Port: 9192, Ctrl: 9193, DataDir: "data-2"}}
	spec := Spec{Voters: Voters(nodes), RemoteURL: "file:///shared", Extra: []string{"a=1"}}
	got := spec.Args(nodes[0], "b=2")
	want := []string{"serve",
		"--set", "node.id=1",
		"--set", "process.roles=broker,controller",
		"--set", "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
		"--set", "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193",
		"--set", "log.dirs=data-1",
		"--set", "remote.storage.url=file:///shared",
		"--set", "group.initial.rebalance.delay.ms=0",
		"--set", "a=1", "--set", "b=2"}
	if !slices.Equal(got, want) {
		t.Fatalf("Args:\n got %q\nwant %q", got, want)
	}
	single := Spec{Single: true}.Args(nodes[1])
	want = []string{"serve", "--set", "listeners=PLAINTEXT://127.0.0.1:9192", "--set", "log.dirs=data-2", "--set", "group.initial.rebalance.delay.ms=0"}
	if !slices.Equal(single, want) {
		t.Fatalf("single Args:\n got %q\nwant %q", single, want)
	}
	if a := nodes[1].EtcdClientAddr(); a != "127.0.0.1:9194" {
		t.Fatalf("EtcdClientAddr = %s", a)
	}
}

func TestLoopbackPorts(t *testing.T) {
	ps, err := LoopbackPorts(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		for _, port := range []int{p[0], p[1], p[1] + 1} {
			if seen[port] {
				t.Fatalf("port %d twice in %v", port, ps)
			}
			seen[port] = true
		}
	}
}
