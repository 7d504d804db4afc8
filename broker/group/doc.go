// Package group is Strata's classic consumer group coordinator: JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
// DescribeGroups, ListGroups, DeleteGroups and OffsetDelete, served from
// franz-go kmsg requests and answered with kmsg responses.
//
// Committed offsets are persisted through an OffsetStore before a commit is
// acknowledged. If the store is also a GroupStore (the broker's
// __consumer_offsets log), a group's metadata is written when a rebalance
// completes and when it goes Empty, and Restore rebuilds the group from it
// after a restart (generation, protocol, leader, members with fresh
// sessions), as Kafka's coordinator load does. A group that has committed
// offsets but no in-memory state is reported as Empty.
//
// # State machine
//
//	Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
//	CompletingRebalance --leader SyncGroup--> Stable
//	Stable / CompletingRebalance --join with new metadata, leave, expiry--> PreparingRebalance
//	PreparingRebalance --nobody left--> Empty
//	Empty --DeleteGroups, expiry--> Dead (dropped from memory)
//
// The first rebalance of an Empty group waits group.initial.rebalance.delay.ms,
// extended by the same delay while new members keep arriving, never past the
// group's rebalance timeout (Kafka's InitialDelayedJoin).
//
// # Locking
//
// Coordinator.mu guards the map of groups; each group's mu guards that
// group's state, members and timers. The order is Coordinator.mu, then a
// group's mu; nothing takes Coordinator.mu while holding a group's mu. Offsets
// are written to the store while the group's mu is held, so that a commit
// cannot interleave with the deletion of its group. Timer callbacks take only
// the group's mu. Each function that needs a lock says so.
package group
