package bench

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// requester sends one request and returns its response. *kgo.Broker is one
// (its connection reads every response into a newly allocated buffer);
// *kwire.Conn is the other: one connection of its own whose responses are
// read into one reused buffer (see package kwire for why that matters here).
type requester interface {
	Request(context.Context, kmsg.Request) (kmsg.Response, error)
}
