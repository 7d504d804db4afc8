package metadata

// TEMPORARY: signatures the metadata implementation must provide. The helper that
// implements the package deletes this file and keeps the signatures.

// Store is the broker's bbolt database. Safe for concurrent use.
type Store struct{}

func Open(path string) (*Store, error) { panic("todo") }
func (s *Store) Close() error          { panic("todo") }

// Topics.
func (s *Store) CreateTopic(t Topic) error                                { panic("todo") }
func (s *Store) DeleteTopic(name string) error                            { panic("todo") } // also its partition state and remote index
func (s *Store) Topics() ([]Topic, error)                                 { panic("todo") }
func (s *Store) SetTopicConfigs(name string, cfg map[string]string) error { panic("todo") } // replaces the overrides
func (s *Store) SetPartitionCount(name string, n int32) error             { panic("todo") }

// Partition state: the log start offset of the whole log (remote + local).
func (s *Store) SetLogStartOffset(topic string, partition int32, off int64) error  { panic("todo") }
func (s *Store) LogStartOffset(topic string, partition int32) (int64, bool, error) { panic("todo") }

// AllocateProducerIDs reserves n consecutive producer ids and returns the first.
func (s *Store) AllocateProducerIDs(n int64) (int64, error) { panic("todo") }

// Committed group offsets.
func (s *Store) CommitOffsets(group string, commits []OffsetCommit) error { panic("todo") }
func (s *Store) GroupOffsets(group string) ([]OffsetCommit, error)        { panic("todo") }
func (s *Store) DeleteGroupOffsets(group string) error                    { panic("todo") }
func (s *Store) DeleteOffsets(group string, tps []TopicPartition) error   { panic("todo") }
func (s *Store) OffsetGroups() ([]string, error)                          { panic("todo") }

// ExpireOffsets deletes commits older than beforeMs of groups for which keep returns false.
func (s *Store) ExpireOffsets(beforeMs int64, keep func(group string) bool) (int, error) {
	panic("todo")
}

// Remote segment index, per partition, keyed by base offset.
func (s *Store) PutRemoteSegment(topic string, partition int32, seg RemoteSegment) error {
	panic("todo")
}
func (s *Store) RemoteSegments(topic string, partition int32) ([]RemoteSegment, error) {
	panic("todo")
}

// FloorRemoteSegment returns the entry with the greatest BaseOffset <= offset.
func (s *Store) FloorRemoteSegment(topic string, partition int32, offset int64) (RemoteSegment, bool, error) {
	panic("todo")
}
func (s *Store) DeleteRemoteSegment(topic string, partition int32, base int64) error {
	panic("todo")
}

// RemotePartitions lists every partition that has a remote index.
func (s *Store) RemotePartitions() ([]TopicPartition, error) { panic("todo") }
