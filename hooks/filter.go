package hooks

import "time"

// RequestFilter selects request records, newest first. Zero fields do not
// filter. Every store backend reads it the same way (store/storetest).
type RequestFilter struct {
	// ID selects one record.
	ID int64
	// Sender and Name select a sender and a hook, webhook or endpoint name.
	Sender Sender
	Name   string
	// RequestID is the sender's own id: X-Request-ID, the Bloomreach
	// request ID or the Svix message id.
	RequestID string
	// Status selects one answer status; StatusClass a class (2 for 2xx, 4
	// for 4xx, 5 for 5xx). Status wins when both are set.
	Status      int
	StatusClass int
	// Search is text that must appear in the body or the stored headers.
	Search string
	// Since and Until bound the time received: Since <= t < Until.
	Since, Until time.Time
	// BeforeID pages backwards: only records older than that id. AfterID
	// keeps only records newer than that id: with BeforeID, it bounds how
	// many records a filter that no index serves (a request ID) reads.
	BeforeID int64
	AfterID  int64
	// Limit caps the records returned (a store picks a default when 0).
	Limit int
}

// JobFilter selects jobs, oldest first. Zero fields do not filter.
type JobFilter struct {
	State      JobState
	Sender     Sender
	Name       string
	RequestRef int64
	// AfterID pages forwards: only jobs with a larger id.
	AfterID int64
	Limit   int
}
