package localstore

import "fmt"

// RequireKeys refuses, with ErrInvalidRecord (INVALID_RECORD), a produce to
// a compacted topic holding a record without a key, as Kafka's LogValidator
// does. batches must have passed ValidateBatches, whose headers hdrs are.
// Records are streamed as validation streams them: a compressed batch costs
// time, not memory.
func RequireKeys(batches []byte, hdrs []BatchHeader) error {
	var d decoders
	defer d.close()
	pos := int64(0)
	for _, h := range hdrs {
		b := batches[pos : pos+h.TotalSize()]
		pos += h.TotalSize()
		if h.Control() {
			continue
		}
		s, err := d.scanner(b, h)
		if err != nil {
			return err
		}
		for i := int32(0); i < h.NumRecords; i++ {
			l, err := s.varint(false)
			if err != nil {
				return s.classify(err, i)
			}
			start := s.consumed()
			var kl int64
			err = s.skip(1) // attributes
			if err == nil {
				_, err = s.varint(true) // timestamp delta
			}
			if err == nil {
				_, err = s.varint(false) // offset delta
			}
			if err == nil {
				kl, err = s.varint(false)
			}
			if err != nil {
				return s.classify(err, i)
			}
			if kl < 0 {
				return fmt.Errorf("%w: record %d of the batch at sequence %d has no key: a compacted topic (cleanup.policy=compact) needs every record keyed",
					ErrInvalidRecord, i, h.BaseSequence)
			}
			if err := s.skip(start + l - s.consumed()); err != nil {
				return s.classify(err, i)
			}
		}
	}
	return nil
}
