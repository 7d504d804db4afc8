package metadata

// This file is the package's contract with the broker and the tiering manager.

import "errors"

// Errors.
var (
	ErrTopicExists   = errors.New("metadata: topic already exists")
	ErrTopicNotFound = errors.New("metadata: topic not found")
	ErrCorrupt       = errors.New("metadata: corrupt value")
	ErrNotFound      = errors.New("metadata: not found")
)

// Topic is a topic's durable description.
type Topic struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Configs    map[string]string // topic-level overrides only
}

// OffsetCommit is one committed offset of a group.
type OffsetCommit struct {
	Topic           string
	Partition       int32
	Offset          int64
	LeaderEpoch     int32
	Metadata        string
	CommitTimestamp int64 // ms
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// RemoteState is a remote segment's place in the copy/delete state machine.
type RemoteState uint8

const (
	CopyStarted   RemoteState = 1
	CopyFinished  RemoteState = 2
	DeleteStarted RemoteState = 3
)

func (s RemoteState) String() string {
	switch s {
	case CopyStarted:
		return "COPY_STARTED"
	case CopyFinished:
		return "COPY_FINISHED"
	case DeleteStarted:
		return "DELETE_STARTED"
	}
	return "UNKNOWN"
}

// RemoteSegment is one entry of a partition's remote index.
type RemoteSegment struct {
	BaseOffset     int64
	EndOffset      int64 // last offset in the segment (inclusive)
	FirstTimestamp int64
	MaxTimestamp   int64
	Size           int64
	LeaderEpoch    int32
	UploadID       string
	State          RemoteState
	CRC32C         uint32 // of the .log object's bytes
	RolledAtMs     int64  // when the local segment was rolled
	UpdatedAtMs    int64  // when State last changed
}
