package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/recbatch"
)

// sendNoResponse writes req as request() does but reads nothing: an acks=0
// produce has no response.
func (r *rawConn) sendNoResponse(req kmsg.Request) {
	r.t.Helper()
	if err := r.send(r.frame(req)); err != nil {
		r.t.Fatal(err)
	}
}

func acksZeroProduce(version int16, topic string, partition int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = version, 0, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// Kafka answers an acks=0 produce with nothing, and when a partition of it
// failed it closes the connection (KafkaApis: "Closing connection due to
// error during produce request ... with ack=0"): that is the only way the
// client learns to refresh its metadata, for instance after sending to a
// broker that is not the partition's leader. A produce that succeeds keeps
// the connection: the next request on it is answered.
func TestProduceAcksZeroFailureClosesTheConnection(t *testing.T) {
	tb := startBroker(t, "auto.create.topics.enable=false")
	tb.createTopic("acks0", 2, nil)
	for _, v := range []int16{3, 7, 9, 12} {
		ok := tb.raw()
		ok.sendNoResponse(acksZeroProduce(v, "acks0", 1, recbatch.Make(3, time.Now().UnixMilli(), "ok")))
		resp, err := ok.request(kmsg.NewPtrApiVersionsRequest())
		if err != nil || resp.(*kmsg.ApiVersionsResponse).ErrorCode != 0 {
			t.Fatalf("v%d: ApiVersions after a good acks=0 produce: %+v %v", v, resp, err)
		}

		for name, req := range map[string]*kmsg.ProduceRequest{
			"unknown topic":     acksZeroProduce(v, "no-such-topic", 0, recbatch.Make(1, time.Now().UnixMilli(), "x")),
			"unknown partition": acksZeroProduce(v, "acks0", 7, recbatch.Make(1, time.Now().UnixMilli(), "x")),
			"corrupt batch":     acksZeroProduce(v, "acks0", 0, append(recbatch.Make(2, time.Now().UnixMilli(), "x")[:70], 0xff, 0xff)),
		} {
			bad := tb.raw()
			bad.sendNoResponse(req)
			if resp, err := bad.request(kmsg.NewPtrApiVersionsRequest()); err == nil {
				t.Fatalf("v%d %s: the connection stayed open: ApiVersions answered %+v", v, name, resp)
			}
			bad.expectClosed()
		}
	}
	// The good produces are in the log: 3 records per version.
	cl := tb.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"acks0": {1: kgo.NewOffset().AtStart()}}))
	if recs := consumeN(t, cl, 12, 30*time.Second); len(recs) != 12 {
		t.Fatalf("read %d records, want 12", len(recs))
	}
}
