package faultstore_test

import (
	"testing"

	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
	"github.com/stratalog/strata/remotestore/mem"
	"github.com/stratalog/strata/remotestore/storetest"
)

// With no faults injected the decorator is transparent.
func TestAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store { return faultstore.New(mem.New()) })
}

func TestAfterWritesButFails(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	s := faultstore.New(inner)
	remove := s.Inject(faultstore.Fault{Op: remotestore.OpPut, Mode: faultstore.After, KeyPrefix: "lost/"})
	if err := s.Put(ctx, "lost/ack", nil, 0); err == nil {
		t.Fatal("Put succeeded under an After fault")
	}
	if _, err := inner.Head(ctx, "lost/ack"); err != nil {
		t.Fatalf("After fault did not write the object: %v", err)
	}
	storetest.MustPut(t, ctx, s, "other", []byte("x")) // prefix does not match
	remove()
	storetest.MustPut(t, ctx, s, "lost/again", []byte("x"))
}
