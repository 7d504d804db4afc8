package e2e

// Old Fetch versions over the remote tier: a topic whose early segments live
// only in the (default fs) tier, read from offset 0 by sarama at Fetch v5, v6,
// v10 and v12 and by kafka-go at v10; every record byte-identical.

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func TestCompatReplayFromTier(t *testing.T) {
	saramaLog.capture(t, "sarama")
	kafkagoLog.capture(t, "kafka-go")
	_, vp := startCompatBroker(t, tierSets...)
	addr := vp.addr()
	topic := "compat-tiered"

	cfg := saramaConfig(sarama.V2_1_0_0)
	cfg.Producer.Flush.Messages = 20
	cfg.Producer.Compression = sarama.CompressionLZ4
	prod, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	written := saramaProduce(t, prod, topic, 0, 1000)
	prod.Close()
	waitTiered(t, addr, topic)

	for _, v := range []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.V1_0_0_0, sarama.V2_1_0_0, sarama.DefaultVersion} {
		cons, err := sarama.NewConsumer([]string{addr}, saramaConfig(v))
		if err != nil {
			t.Fatal(err)
		}
		got := saramaConsumePartition(t, cons, topic, 0, sarama.OffsetOldest, len(written))
		cons.Close()
		compareRecs(t, "sarama "+v.String()+" from the tier", got, written)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var want []clientRec
	for _, r := range written {
		want = append(want, clientRec{r.partition, r.offset, r.key, r.val, "", r.ts})
	}
	got := kafkagoReadPartition(ctx, t, []string{addr}, topic, 0, len(written))
	for i := range got {
		got[i].hdrs = "" // compared by the sarama readers; formatted differently here
	}
	compareRecs(t, "kafka-go from the tier", got, want)
	vp.expect(t, map[int16][2]int16{1: {5, 12}})
	vp.report(t)
}
