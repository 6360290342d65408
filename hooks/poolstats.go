package hooks

import "time"

// PoolStats is a snapshot of a store's connection pool, for metrics: the
// connections it holds now, and counts since it opened of the connections
// handed out and of the waits for one. A store of one connection
// (SQLite) has none.
type PoolStats struct {
	// Acquired connections are in use; Idle ones wait in the pool; Total
	// counts both and the ones being opened; Max is the pool's cap.
	Acquired, Idle, Total, Max int
	// Acquires counts the connections handed out. EmptyAcquires counts
	// those that found none idle and waited for one to be freed or opened,
	// and AcquireWait is how long they waited in all. CanceledAcquires
	// counts the waits given up (their context ended first).
	Acquires, EmptyAcquires, CanceledAcquires int64
	AcquireWait                               time.Duration
	// Conflicts counts the write transactions that lost a deadlock or a
	// serialization conflict with another replica's, and were run again.
	Conflicts int64
}
