package hooks

import "time"

// JobStats is a snapshot of the queue for metrics and alerts: how many
// jobs wait, run or are dead at each urgency, and since when the oldest
// job that is due has waited. Done jobs are not counted: they pile up by
// design (they are kept for inspection), so counting them costs a scan of
// the table; the attempts tell how many were delivered.
type JobStats struct {
	// Counts are by state (available, running, dead) and urgency.
	Counts map[JobState]map[Urgency]int64
	// OldestDue is, by urgency, when the oldest available job whose time
	// has come was due; an urgency with no such job is absent.
	OldestDue map[Urgency]time.Time
}

// UrgencyOfPriority is the urgency whose jobs are queued at priority p
// (Urgency.Priority's inverse); regular for any other priority.
func UrgencyOfPriority(p int) Urgency {
	switch p {
	case 0:
		return UrgencyRealtime
	case 1:
		return UrgencyUrgent
	}
	return UrgencyRegular
}
