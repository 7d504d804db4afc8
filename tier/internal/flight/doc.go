// Package flight is the tier's one single-flight download mechanism: the
// chunk cache (tier/chunkcache, files on disk) and the sidecar cache (package
// tier, decoded sidecars in memory) both fill their storage through a Group,
// so both follow the same rules.
//
// # The rule
//
// A Group fills a Cache, which keeps the values; the Group keeps only the
// downloads in progress ("flights"), by key.
//
//   - One download per key at a time. Do returns the cached value, or joins
//     the key's flight, or starts one; every caller that asks while it runs
//     waits for that one download.
//   - A download belongs to the Group, not to the caller that started it. It
//     runs on its own goroutine (Run: on its caller's) under a context that
//     keeps the starting caller's values but not its cancellation or
//     deadline, bounded by the Group's own timeout (Options.Timeout). It is
//     cancelled only by that timeout, by Close, or, if
//     Options.CancelAbandoned is set, when its last waiter has left. Neither
//     cache sets it: a consumer that timed out retries, and then finds the
//     value cached instead of restarting the GET from zero.
//   - Each waiter waits with its own ctx. When that ends first the waiter
//     returns the ctx's error (context.Cause) at once, and the download goes
//     on for the others and for the cache. A caller whose ctx has already
//     ended gets its error even for a cached value.
//   - A success is added to the Cache, with the number of callers still
//     waiting for it, before any waiter is released: a waiter that is handed
//     the value finds it cached, and a caller that comes after the download
//     ended finds it in the Cache, never a second download. A waiter counted
//     at the Add gets the value even if its ctx ends meanwhile, so a Cache
//     may hold the value for exactly that many callers (the chunk cache pins
//     the file until each has opened it).
//   - An error is never cached: every waiter of that flight gets it, and the
//     next call starts a new download.
//   - Close cancels every download, waits for them to end, and makes later
//     calls return ErrClosed. The fetch function must honour its ctx.
package flight
