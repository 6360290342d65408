package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// Default action timeouts.
const (
	DefaultForwardTimeout = 10 * time.Second
	DefaultExecTimeout    = 30 * time.Second
)

// DefaultExecMaxProcs is how many copies of one exec command may run at
// once unless max_procs says otherwise.
const DefaultExecMaxProcs = 4

// Dispatch builds the actions the config names, with custom (Go actions)
// taking precedence over the config's for the same sender and name.
func (c *Config) Dispatch(custom hooks.Actions) (*hooks.Dispatch, error) {
	d := &hooks.Dispatch{Actions: hooks.Actions{}, Svix: map[string]*hooks.EventRoutes{}}
	for name, h := range c.Bubblehouse.Hooks {
		if act := h.Action.build(c.secretEnv); act != nil {
			d.Actions.Set(hooks.SenderBubblehouse, name, act)
		}
	}
	for name, ep := range c.Svix.Endpoints {
		r, err := ep.routes(c.secretEnv)
		if err != nil {
			return nil, fmt.Errorf("svix.endpoints.%s.events: %w", name, err)
		}
		d.Svix[name] = r
	}
	for name, w := range c.Bloomreach.Webhooks {
		if act := w.Action.build(c.secretEnv); act != nil {
			d.Actions.Set(hooks.SenderBloomreach, name, act)
		}
	}
	for sender, byName := range custom {
		for name, act := range byName {
			d.Actions.Set(sender, name, act)
		}
	}
	return d, nil
}

// Policy is the queue's retry policy.
func (q QueueConfig) Policy() hooks.RetryPolicy {
	return hooks.RetryPolicy{
		MaxAttempts: q.MaxAttempts,
		MaxAge:      time.Duration(q.MaxAge),
		Initial:     time.Duration(q.Backoff.Initial),
		Max:         time.Duration(q.Backoff.Max),
	}
}

// HookSet turns the hooks map into the domain's hook set.
func (b BubblehouseConfig) HookSet() (*hooks.BubblehouseHooks, error) {
	m := make(map[string]hooks.HookSettings, len(b.Hooks))
	for name, h := range b.Hooks {
		m[name] = hooks.HookSettings{Inline: h.Inline}
	}
	return hooks.NewBubblehouseHooks(m)
}

// applyDefaults fills an action's unset timeout and process limit.
func (a *ActionConfig) applyDefaults() {
	if a == nil {
		return
	}
	if a.Forward != nil {
		setDuration(&a.Forward.Timeout, DefaultForwardTimeout)
	}
	if a.Exec != nil {
		setDuration(&a.Exec.Timeout, DefaultExecTimeout)
		if a.Exec.MaxProcs == 0 {
			a.Exec.MaxProcs = DefaultExecMaxProcs
		}
	}
}

// validate checks one action block; path names it in errors.
func (a *ActionConfig) validate(path string) error {
	n := 0
	if a.Forward != nil {
		n++
		u, err := url.Parse(a.Forward.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.forward.url: %q is not an http(s) URL", path, a.Forward.URL)
		}
		if a.Forward.Timeout <= 0 {
			return fmt.Errorf("%s.forward.timeout: %s must be positive", path, time.Duration(a.Forward.Timeout))
		}
	}
	if a.Exec != nil {
		n++
		if len(a.Exec.Command) == 0 || a.Exec.Command[0] == "" {
			return fmt.Errorf("%s.exec.command: a program (and its arguments) is required", path)
		}
		if a.Exec.Timeout <= 0 {
			return fmt.Errorf("%s.exec.timeout: %s must be positive", path, time.Duration(a.Exec.Timeout))
		}
		if a.Exec.MaxProcs < 1 || a.Exec.MaxOutputBytes < 0 {
			return fmt.Errorf("%s.exec: max_procs and max_output_bytes must be positive", path)
		}
	}
	if a.Store != nil {
		n++
	}
	if n != 1 {
		return fmt.Errorf("%s: exactly one of forward, exec or store is required", path)
	}
	return nil
}

// timeout is how long one attempt of the action may run.
func (a *ActionConfig) timeout() time.Duration {
	switch {
	case a == nil:
		return 0
	case a.Forward != nil:
		return time.Duration(a.Forward.Timeout)
	case a.Exec != nil:
		return time.Duration(a.Exec.Timeout)
	}
	return 0
}

// build returns the action, nil for store. hide names environment
// variables an exec command does not inherit.
func (a *ActionConfig) build(hide []string) hooks.Action {
	switch {
	case a == nil, a.Store != nil:
		return nil
	case a.Forward != nil:
		return &hooks.Forward{URL: a.Forward.URL, Timeout: time.Duration(a.Forward.Timeout), PassHeaders: a.Forward.PassHeaders}
	}
	x := hooks.NewExec(a.Exec.Command, time.Duration(a.Exec.Timeout), a.Exec.MaxProcs)
	x.MaxOutput = a.Exec.MaxOutputBytes
	x.HideEnv = hide
	return x
}

// routes builds an endpoint's event routes; hide is as for build.
func (ep SvixEndpointConfig) routes(hide []string) (*hooks.EventRoutes, error) {
	m := make(map[string]hooks.Action, len(ep.Events))
	for pattern, r := range ep.Events {
		var a hooks.Action
		if r != nil {
			a = r.Action.build(hide)
		}
		m[pattern] = a
	}
	return hooks.NewEventRoutes(m)
}

// actions calls f with every action block and the key that names it.
func (c *Config) actions(f func(key string, a *ActionConfig)) {
	for name, h := range c.Bubblehouse.Hooks {
		if h.Action != nil {
			f("bubblehouse.hooks."+name+".action", h.Action)
		}
	}
	for name, ep := range c.Svix.Endpoints {
		for pattern, r := range ep.Events {
			if r != nil && r.Action != nil {
				f(fmt.Sprintf("svix.endpoints.%s.events[%q].action", name, pattern), r.Action)
			}
		}
	}
	for name, w := range c.Bloomreach.Webhooks {
		if w.Action != nil {
			f("bloomreach.webhooks."+name+".action", w.Action)
		}
	}
}

// longestAction is the longest timeout among the configured actions: the
// queue's lease must exceed it.
func (c *Config) longestAction() time.Duration {
	var longest time.Duration
	c.actions(func(_ string, a *ActionConfig) { longest = max(longest, a.timeout()) })
	return longest
}
