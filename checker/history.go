package checker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Event kinds, the "kind" field of a history line.
const (
	KindAck     = "ack"     // a produce acknowledged at (p, o)
	KindFail    = "fail"    // a produce that failed: indeterminate, it may or may not be in the log
	KindConsume = "consume" // a record a group consumer read
	KindFinal   = "final"   // a record the final read read
	KindRange   = "range"   // the final read's range of one partition: [o, end)
)

// maxLine bounds one history line, so a corrupt file cannot cost unbounded memory.
const maxLine = 1 << 20

// Event is one line of a history file.
type Event struct {
	Kind      string `json:"kind"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"p"`
	Offset    int64  `json:"o"`
	End       int64  `json:"end,omitempty"` // KindRange: the high watermark read up to
	Value     string `json:"v,omitempty"`
	Err       string `json:"err,omitempty"` // KindFail: the client's error
}

// History is the events one workload recorded.
type History []Event

// WriteHistory writes h to w as JSON lines.
func WriteHistory(w io.Writer, h History) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range h {
		if err := enc.Encode(&h[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteHistoryFile writes h to the file path (created or truncated).
func WriteHistoryFile(path string, h History) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteHistory(f, h); err != nil {
		f.Close()
		return fmt.Errorf("checker: write %q: %w", path, err)
	}
	return f.Close()
}

// ReadHistory reads JSON lines; name is used in error messages. A line that is
// not an event (bad JSON, an unknown kind, a negative offset, longer than 1 MiB)
// is an error naming the line.
func ReadHistory(r io.Reader, name string) (History, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var h History
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var e Event
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("checker: %s:%d: not a history event: %v", name, n, err)
		}
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("checker: %s:%d: %v", name, n, err)
		}
		h = append(h, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("checker: %s: a line longer than %d bytes", name, maxLine)
		}
		return nil, fmt.Errorf("checker: %s: %w", name, err)
	}
	return h, nil
}

// ReadHistoryFile reads the history file path.
func ReadHistoryFile(path string) (History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadHistory(f, path)
}

func (e *Event) validate() error {
	switch e.Kind {
	case KindAck, KindConsume, KindFinal:
		if e.Offset < 0 || e.Partition < 0 {
			return fmt.Errorf("%s event with partition %d offset %d", e.Kind, e.Partition, e.Offset)
		}
	case KindFail:
	case KindRange:
		if e.Offset < 0 || e.End < e.Offset || e.Partition < 0 {
			return fmt.Errorf("range event [%d, %d) of partition %d", e.Offset, e.End, e.Partition)
		}
	default:
		return fmt.Errorf("unknown event kind %q", e.Kind)
	}
	return nil
}

// ParseValue splits a workload value "<producer>-<seq>".
func ParseValue(v string) (producer string, seq int64, ok bool) {
	i := strings.LastIndexByte(v, '-')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil || seq < 0 {
		return "", 0, false
	}
	return v[:i], seq, true
}
