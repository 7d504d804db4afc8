package tier

// The bandwidth limits of KIP-956, which the broker changes at run time
// (dynamic broker configs): the new rate applies at once to transfers in
// progress, no restart.

// SetFetchMaxBytesPerSecond sets the download limit of remote reads, all
// partitions together (remote.log.manager.fetch.max.bytes.per.second); <= 0:
// unlimited.
func (m *Manager) SetFetchMaxBytesPerSecond(n int64) {
	m.fetchLimiter.setRate(n)
}

// SetCopyMaxBytesPerSecond sets the upload limit, all uploads together
// (remote.log.manager.copy.max.bytes.per.second); <= 0: unlimited.
func (m *Manager) SetCopyMaxBytesPerSecond(n int64) {
	m.limiter.setRate(n)
}

// FetchMaxBytesPerSecond is the download limit in force; <= 0: unlimited.
func (m *Manager) FetchMaxBytesPerSecond() int64 {
	rate, _, _ := m.fetchLimiter.limits()
	return int64(rate)
}

// CopyMaxBytesPerSecond is the upload limit in force; <= 0: unlimited.
func (m *Manager) CopyMaxBytesPerSecond() int64 {
	rate, _, _ := m.limiter.limits()
	return int64(rate)
}
