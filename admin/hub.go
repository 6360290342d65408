package admin

import (
	"sync"
	"sync/atomic"
)

// Event is one message of the live stream: a kind ("request" or "job")
// and its JSON. Events are shared by every subscriber and never changed.
type Event struct {
	Kind string
	// Data is the event's JSON; for an event made by lazyEvent it is
	// made on first use, by the first subscriber to send it.
	Data []byte
	lazy *lazyData
}

// lazyData is JSON made once, when first needed: an event that every
// subscriber drops (all too slow) costs its publisher no encoding.
type lazyData struct {
	once sync.Once
	make func() []byte
	data []byte
}

func lazyEvent(kind string, make func() []byte) Event {
	return Event{Kind: kind, lazy: &lazyData{make: make}}
}

// JSON returns the event's data.
func (e Event) JSON() []byte {
	if e.lazy == nil {
		return e.Data
	}
	e.lazy.once.Do(func() { e.lazy.data = e.lazy.make() })
	return e.lazy.data
}

// Hub fans events out to the live stream's subscribers. Publishing never
// blocks: each subscriber has a bounded buffer, and a subscriber that does
// not keep up (a slow browser) loses the events that do not fit and is told
// how many it lost, so that it can read the list again. Ingest never waits
// for a browser.
type Hub struct {
	mu     sync.RWMutex
	subs   map[*Subscription]struct{}
	active atomic.Int32
	closed bool
}

// NewHub returns a hub with no subscribers.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscription is one subscriber's buffered view of the stream.
type Subscription struct {
	// C receives the events; it is closed when the hub closes.
	C       <-chan Event
	c       chan Event
	dropped atomic.Int64
	hub     *Hub
	once    sync.Once
}

// Subscribe adds a subscriber whose buffer holds up to buffer events.
// Close it when done. On a closed hub, C is closed already.
func (h *Hub) Subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	s := &Subscription{c: make(chan Event, buffer), hub: h}
	s.C = s.c
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.c)
		s.once.Do(func() {})
		return s
	}
	h.subs[s] = struct{}{}
	h.active.Add(1)
	return s
}

// Active reports whether anyone listens: publishers skip building events
// when nobody does, so that the stream costs ingest nothing when no
// inspector is open.
func (h *Hub) Active() bool { return h != nil && h.active.Load() > 0 }

// Publish hands ev to every subscriber whose buffer has room, and counts a
// lost event for every other one. It never blocks.
func (h *Hub) Publish(ev Event) {
	if !h.Active() {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// Close ends every subscription (their C are closed) and makes later
// subscriptions start closed: streams end at shutdown.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		s.once.Do(func() { close(s.c) })
		delete(h.subs, s)
	}
	h.active.Store(0)
}

// Dropped returns how many events were lost since the last call.
func (s *Subscription) Dropped() int64 { return s.dropped.Swap(0) }

// Close removes the subscriber from the hub.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.active.Add(-1)
	}
	s.once.Do(func() { close(s.c) })
}
