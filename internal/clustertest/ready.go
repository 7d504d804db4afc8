package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
)

// Client is a franz-go client of the cluster (bootstrapped from every node,
// dialing as DialContext does), closed when the test ends.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...), kgo.Dialer(c.DialContext)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// MetadataListsAll is an Options.WaitReady: it waits until node i's Metadata
// lists every running node of the cluster as a broker.
func MetadataListsAll(t testing.TB, c *Cluster, i int) {
	t.Helper()
	var last string
	ok := wait.Until(startTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(c.DialContext))
		if err != nil {
			last = err.Error()
			return false
		}
		defer cl.Close()
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		if err != nil {
			last = err.Error()
			return false
		}
		want := 0
		for j := 0; j < c.Brokers(); j++ {
			if c.Running(j) {
				want++
			}
		}
		last = fmt.Sprintf("%d brokers listed, %d nodes running", len(resp.Brokers), want)
		return len(resp.Brokers) == want
	})
	if !ok {
		t.Fatalf("clustertest: node %d's Metadata did not list %d brokers within %v (%s); log:\n%s", i+1, c.Brokers(), startTimeout, last, tail(c.LogPath(i)))
	}
}

// Metric reads one unlabelled series from the Prometheus text a node serves
// at http://addr/metrics (metrics.listen): -1 if it is absent, -2 if the node
// does not answer.
func Metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -2
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return -1
}
