package hooks

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultRetention outlives Bubblehouse's 48 h retry window and Svix's
// ~27.6 h retry schedule, so that every retry of a request finds its record.
const DefaultRetention = 72 * time.Hour

// Dispatch picks the action for each job: Go actions and the config's by
// sender and name first, then a Svix endpoint's routes by event type; nil
// means the store action (the job is recorded and done).
type Dispatch struct {
	// Actions are by sender and name (a Bubblehouse hook, a Bloomreach
	// webhook); Go actions replace the config's for the same name.
	Actions Actions
	// Svix are each Svix endpoint's event routes, by endpoint name.
	Svix map[string]*EventRoutes
}

// For picks a job's action, as configured.
func (d *Dispatch) For(j *Job) Action {
	if a := d.Actions.ForJob(j); a != nil {
		return a
	}
	if r := d.Svix[j.Source]; j.Sender == SenderSvix && r != nil {
		a, _ := r.Match(j.Name)
		return a
	}
	return nil
}

// Queued is Queue.ActionFor, and what a replay runs: the action For picks,
// with a Bubblehouse hook's output checked for whether it settles the job.
func (d *Dispatch) Queued(j *Job) Action {
	a := d.For(j)
	if a == nil || j.Sender != SenderBubblehouse {
		return a
	}
	return CatalogueHook(j.Name).Queued(a)
}

// CheckHost checks a host name that certificates and URLs are made for: a
// name or an IP address, without a scheme, port or path.
func CheckHost(h string) error {
	switch {
	case strings.TrimSpace(h) == "":
		return errors.New("empty host name")
	case net.ParseIP(strings.Trim(h, "[]")) != nil:
		return nil
	case strings.ContainsAny(h, ":/ \t@?#"):
		return fmt.Errorf("host %q: want a name or an IP address, without a scheme, port or path", h)
	}
	return nil
}
