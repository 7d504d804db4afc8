package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	seeds := []string{"127.0.0.1:19092", "127.0.0.1:19192", "127.0.0.1:19292"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		panic(err)
	}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := os.Args[1]
	if len(os.Args) > 2 && os.Args[2] == "create" {
		r, err := adm.CreateTopic(ctx, 3, 3, nil, topic)
		fmt.Println("create", r, err)
	}
	for i := 0; i < 30; i++ {
		res := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint("v", i))})
		if err := res.FirstErr(); err != nil {
			fmt.Println("produce err", err)
		}
	}
	md, _ := adm.Metadata(ctx, topic)
	for _, p := range md.Topics[topic].Partitions {
		fmt.Println("p", p.Partition, "leader", p.Leader, "epoch", p.LeaderEpoch, "isr", p.ISR, "err", p.Err)
	}
	ends, _ := adm.ListEndOffsets(ctx, topic)
	ends.Each(func(o kadm.ListedOffset) { fmt.Println("end", o.Partition, o.Offset, o.Err) })
	c2, _ := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g-"+topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	n := 0
	for n < 30 && ctx.Err() == nil {
		fs := c2.PollFetches(ctx)
		fs.EachError(func(t string, p int32, err error) { fmt.Println("fetch err", p, err) })
		n += len(fs.Records())
	}
	fmt.Println("consumed", n)
	fmt.Println("commit", c2.CommitUncommittedOffsets(ctx))
	c2.Close()
	offs, err := adm.FetchOffsets(ctx, "g-"+topic)
	fmt.Println("committed", offs, err)
}
