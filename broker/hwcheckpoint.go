package broker

// The high-watermark checkpoint of a cluster broker: Kafka's
// replication-offset-checkpoint file in the log directory, "0", the entry
// count, then "<topic> <partition> <high watermark>" per line, rewritten
// whole (temporary file, fsync, rename, fsync of the directory) every
// replica.high.watermark.checkpoint.interval.ms and at shutdown. A broker
// that restarts starts each replica's high watermark there (never above its
// log end), so a broker that leads again at once does not expose records its
// ISR never acknowledged; a partition missing from it starts at its log
// start offset and the ISR moves it on.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/localstore"
)

const hwCheckpointFile = "replication-offset-checkpoint"

// loadHWCheckpoint reads the checkpoint; a missing file is empty, a damaged
// one is reported and ignored (every partition then starts at its log start).
func (s *Server) loadHWCheckpoint() map[cluster.TP]int64 {
	path := filepath.Join(s.cfg.LogDir(), hwCheckpointFile)
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	hws, perr := parseHWCheckpoint(b)
	if err != nil || perr != nil {
		s.log.Warn("the high-watermark checkpoint is unreadable: replicas start their high watermarks at their log starts", "path", path, "err", errors2(err, perr))
		return nil
	}
	return hws
}

func errors2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func parseHWCheckpoint(b []byte) (map[cluster.TP]int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	if v, ok := line(); !ok || v != "0" {
		return nil, fmt.Errorf("version line %q, want 0", v)
	}
	c, ok := line()
	n, err := strconv.Atoi(c)
	if !ok || err != nil || n < 0 {
		return nil, fmt.Errorf("bad entry count %q", c)
	}
	hws := make(map[cluster.TP]int64, n)
	for i := 0; i < n; i++ {
		l, ok := line()
		f := strings.Fields(l)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("entry %d: %q", i, l)
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		hw, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || hw < 0 {
			return nil, fmt.Errorf("entry %d: %q", i, l)
		}
		hws[cluster.TP{Topic: f[0], Partition: int32(p)}] = hw
	}
	return hws, nil
}

// writeHWCheckpoint writes every replica's high watermark.
func (s *Server) writeHWCheckpoint() error {
	var buf bytes.Buffer
	var n int
	var lines bytes.Buffer
	for _, t := range s.topics.all() {
		for _, p := range t.parts() {
			if p.rep.Load() == nil {
				continue
			}
			fmt.Fprintf(&lines, "%s %d %d\n", t.name, p.index, p.log.HighWatermark())
			n++
		}
	}
	fmt.Fprintf(&buf, "0\n%d\n", n)
	buf.Write(lines.Bytes())
	return localstore.WriteFileAtomic(filepath.Join(s.cfg.LogDir(), hwCheckpointFile), buf.Bytes())
}

// hwCheckpointLoop writes the checkpoint every
// replica.high.watermark.checkpoint.interval.ms, and once more at shutdown.
func (s *Server) hwCheckpointLoop() {
	defer s.wg.Done()
	t := time.NewTicker(ms(max(s.cfg.ReplicaHighWatermarkCheckpointIntMs, 1)))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			if err := s.writeHWCheckpoint(); err != nil {
				s.log.Warn("cannot write the high-watermark checkpoint", "err", err)
			}
			return
		case <-t.C:
			if err := s.writeHWCheckpoint(); err != nil {
				s.log.Warn("cannot write the high-watermark checkpoint", "err", err)
			}
		}
	}
}
