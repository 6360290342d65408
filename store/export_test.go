package store

import "time"

// SetCheckpointing makes the WAL bound and the checkpoint interval small
// for a test, and returns a function that restores them. Stores opened in
// between use the test's values.
func SetCheckpointing(frames int, interval time.Duration) (restore func()) {
	oldFrames, oldInterval := maxWALFrames, checkpointInterval
	maxWALFrames, checkpointInterval = frames, interval
	return func() { maxWALFrames, checkpointInterval = oldFrames, oldInterval }
}
