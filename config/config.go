// Package config reads hookbay.yaml into validated plain structs: types,
// defaults, ${ENV} expansion and errors that name the key at fault.
package config

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookbay/hookbay/hooks"
)

// Config is hookbay.yaml. Every key is documented in README.md.
type Config struct {
	Server      ServerConfig      `yaml:"server"`
	Idempotency IdempotencyConfig `yaml:"idempotency"`
	Queue       QueueConfig       `yaml:"queue"`
	Bubblehouse BubblehouseConfig `yaml:"bubblehouse"`
	Svix        SvixConfig        `yaml:"svix"`
	Bloomreach  BloomreachConfig  `yaml:"bloomreach"`

	// secretEnv names the environment variables the config's secret keys
	// refer to, kept from the commands of exec actions.
	secretEnv []string
}

// BloomreachConfig is the receiver of Bloomreach Engagement webhooks.
type BloomreachConfig struct {
	Path      string                    `yaml:"path"`
	OAuth2    OAuth2Config              `yaml:"oauth2"`
	Throttles map[string]ThrottleConfig `yaml:"throttles"`
	Webhooks  map[string]WebhookConfig  `yaml:"webhooks"`
}

// OAuth2Config is hookbay's own client-credentials token endpoint.
type OAuth2Config struct {
	TokenPath string         `yaml:"token_path"`
	TokenTTL  Duration       `yaml:"token_ttl"`
	Clients   []OAuth2Client `yaml:"clients"`
}

// OAuth2Client may obtain tokens.
type OAuth2Client struct {
	ID     string   `yaml:"id"`
	Secret string   `yaml:"secret"`
	Scopes []string `yaml:"scopes"`
}

// ThrottleConfig is a throughput policy: a rate, a burst and a cap on
// requests in flight; past them requests get Status (429 or 503).
type ThrottleConfig struct {
	Rate        float64 `yaml:"rate"`
	Burst       int     `yaml:"burst"`
	MaxInFlight int     `yaml:"max_in_flight"`
	Status      int     `yaml:"status"`
}

// ThrottleRef names a shared policy or holds an inline one.
type ThrottleRef struct {
	Name   string
	Inline *ThrottleConfig
}

// UnmarshalYAML accepts a policy name or an inline policy.
func (t *ThrottleRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		t.Name = n.Value
		return nil
	}
	if err := walk(n, reflect.TypeOf(ThrottleConfig{}), "throttle", func(_, _ string) (string, bool) { return "", false }); err != nil {
		return err
	}
	t.Inline = &ThrottleConfig{}
	return n.Decode(t.Inline)
}

// WebhookConfig is one Bloomreach webhook, served at {path}/<name>.
type WebhookConfig struct {
	Methods   []string        `yaml:"methods"`
	Auth      WebhookAuth     `yaml:"auth"`
	Batch     *BatchConfig    `yaml:"batch"`
	RequestID RequestIDConfig `yaml:"request_id"`
	Schema    SchemaConfig    `yaml:"schema"`
	Throttle  *ThrottleRef    `yaml:"throttle"`
	Inline    bool            `yaml:"inline"`
	Action    *ActionConfig   `yaml:"action"`
}

// WebhookAuth lists the schemes a request must pass: all of them.
type WebhookAuth struct {
	Basic   *BasicAuth        `yaml:"basic"`
	Headers map[string]string `yaml:"headers"`
	OAuth2  *OAuth2Auth       `yaml:"oauth2"`
	MTLS    *MTLSAuth         `yaml:"mtls"`
}

// BasicAuth is RFC 7617 credentials.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// OAuth2Auth says where Bloomreach puts the access token.
type OAuth2Auth struct {
	TokenIn string `yaml:"token_in"` // header | body | query
	Field   string `yaml:"field"`    // body or query field, default access_token
	// Scopes the token must have been granted; none: any token of a
	// configured client.
	Scopes []string `yaml:"scopes"`
}

// MTLSAuth requires a verified client certificate, optionally with one of
// these subject CNs or DNS SANs.
type MTLSAuth struct {
	Subjects []string `yaml:"subjects"`
}

// BatchConfig marks a batch webhook: Items points at the customers' array.
type BatchConfig struct {
	Items string `yaml:"items"`
	Max   int    `yaml:"max"`
}

// RequestIDConfig says where the request ID is, and each item's ID.
type RequestIDConfig struct {
	Header string `yaml:"header"`
	JSON   string `yaml:"json"`
	ItemID string `yaml:"item_id"`
}

// SchemaConfig holds JSON Schemas, inline or in files.
type SchemaConfig struct {
	Request     any    `yaml:"request"`
	Item        any    `yaml:"item"`
	RequestFile string `yaml:"request_file"`
	ItemFile    string `yaml:"item_file"`
}

// SvixConfig is the receiver of Svix-signed events (Bloom Enablement).
type SvixConfig struct {
	Path      string                        `yaml:"path"`
	Endpoints map[string]SvixEndpointConfig `yaml:"endpoints"`
}

// SvixEndpointConfig is one endpoint, served at {path}/<name>.
type SvixEndpointConfig struct {
	// Secrets are whsec_ signing secrets; several are accepted at once
	// while one is rotated. Keys are per endpoint.
	Secrets []string `yaml:"secrets"`
	// Events maps event types ("user.created"), prefixes ("tradeline.*")
	// or "*" to an action; unrouted types are accepted and stored.
	Events map[string]*EventRouteConfig `yaml:"events"`
}

// EventRouteConfig routes matching events to an action (none: store).
type EventRouteConfig struct {
	Action *ActionConfig `yaml:"action"`
}

// ServerConfig holds the listener, storage and TLS settings.
type ServerConfig struct {
	Listen     string `yaml:"listen"`
	PublicHost string `yaml:"public_host"`
	// TrustedProxies are the addresses (CIDRs or IPs) of TLS-terminating
	// proxies whose X-Forwarded-For is believed; by default none is.
	TrustedProxies []string `yaml:"trusted_proxies"`
	DataDir        string   `yaml:"data_dir"`
	MaxBodyBytes   int64    `yaml:"max_body_bytes"`
	// RecordRetention is how long request records, their jobs and attempts
	// are kept; a request with a job still to deliver is kept regardless.
	// A negative value keeps them forever.
	RecordRetention Duration       `yaml:"record_retention"`
	TLS             TLSConfig      `yaml:"tls"`
	Timeouts        TimeoutsConfig `yaml:"timeouts"`
}

// TLSConfig selects how hookbay serves HTTPS.
type TLSConfig struct {
	// Mode is dev (a generated local CA and certificate), files (CertFile
	// and KeyFile) or off (plain HTTP, for a TLS-terminating proxy or ngrok).
	Mode     string `yaml:"mode"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates, for webhooks with mtls.
	ClientCAFile string `yaml:"client_ca_file"`
}

// TimeoutsConfig bounds every connection so that slow or stalled clients
// cannot hold the server. Write must exceed the 30 s inline hook limit.
type TimeoutsConfig struct {
	ReadHeader Duration `yaml:"read_header"`
	Read       Duration `yaml:"read"`
	Write      Duration `yaml:"write"`
	Idle       Duration `yaml:"idle"`
}

// IdempotencyConfig sets how long answers are kept for replay.
type IdempotencyConfig struct {
	Retention Duration `yaml:"retention"`
}

// QueueConfig sizes the worker pool and sets its retry policy.
type QueueConfig struct {
	Workers int `yaml:"workers"`
	// Lease is how long a claimed job is held before it is considered
	// abandoned (its process died) and run again: it must exceed every
	// action's timeout. Default: the longest timeout plus 30 s.
	Lease       Duration      `yaml:"lease"`
	MaxAttempts int           `yaml:"max_attempts"`
	MaxAge      Duration      `yaml:"max_age"`
	Backoff     BackoffConfig `yaml:"backoff"`
}

// BackoffConfig bounds the exponential delay between attempts.
type BackoffConfig struct {
	Initial Duration `yaml:"initial"`
	Max     Duration `yaml:"max"`
}

// BubblehouseConfig is the Bubblehouse Hooks API receiver.
type BubblehouseConfig struct {
	Path          string                `yaml:"path"`
	Authorization string                `yaml:"authorization"`
	JWTSecret     string                `yaml:"jwt_secret"`
	Hooks         map[string]HookConfig `yaml:"hooks"`
}

// HookConfig is one subscribed Bubblehouse hook.
type HookConfig struct {
	// Inline runs the hook while Bubblehouse waits whatever the urgency,
	// for a private hook whose answer carries a business result.
	Inline bool `yaml:"inline"`
	// Action delivers the hook to the integrator's code; none means store.
	Action *ActionConfig `yaml:"action"`
}

// ActionConfig names one action: forward, exec or store.
type ActionConfig struct {
	Forward *ForwardConfig `yaml:"forward"`
	Exec    *ExecConfig    `yaml:"exec"`
	Store   *struct{}      `yaml:"store"`
}

// ForwardConfig POSTs the body to an internal URL.
type ForwardConfig struct {
	URL         string   `yaml:"url"`
	Timeout     Duration `yaml:"timeout"`
	PassHeaders []string `yaml:"pass_headers"`
}

// ExecConfig runs a command with the body on stdin.
type ExecConfig struct {
	Command        []string `yaml:"command"`
	Timeout        Duration `yaml:"timeout"`
	MaxProcs       int      `yaml:"max_procs"`
	MaxOutputBytes int64    `yaml:"max_output_bytes"`
}

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

// MinRetention is the shortest idempotency retention: the longest retry
// window among the senders, Bubblehouse's 48 h for regular hooks (Svix's
// schedule spans about 27.6 h, Bloomreach's minutes).
const MinRetention = 48 * time.Hour

// Policy is the queue's retry policy.
func (q QueueConfig) Policy() hooks.RetryPolicy {
	return hooks.RetryPolicy{
		MaxAttempts: q.MaxAttempts,
		MaxAge:      time.Duration(q.MaxAge),
		Initial:     time.Duration(q.Backoff.Initial),
		Max:         time.Duration(q.Backoff.Max),
	}
}

// Default action timeouts.
const (
	DefaultForwardTimeout = 10 * time.Second
	DefaultExecTimeout    = 30 * time.Second
)

// validate checks one action block; path names it in errors.
func (a *ActionConfig) validate(path string) error {
	n := 0
	if a.Forward != nil {
		n++
		u, err := url.Parse(a.Forward.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.forward.url: %q is not an http(s) URL", path, a.Forward.URL)
		}
		setDuration(&a.Forward.Timeout, DefaultForwardTimeout)
	}
	if a.Exec != nil {
		n++
		if len(a.Exec.Command) == 0 || a.Exec.Command[0] == "" {
			return fmt.Errorf("%s.exec.command: a program (and its arguments) is required", path)
		}
		setDuration(&a.Exec.Timeout, DefaultExecTimeout)
		if a.Exec.MaxProcs == 0 {
			a.Exec.MaxProcs = 4
		}
		if a.Exec.MaxProcs < 0 || a.Exec.MaxOutputBytes < 0 {
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

// Duration is a time.Duration written as "72h", "1m30s".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 72h", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Default returns the configuration used without a config file: dev
// mode, every catalogue hook subscribed so that a first try shows them.
func Default() Config {
	c := Config{}
	c.ApplyDefaults()
	c.Bubblehouse.Hooks = map[string]HookConfig{}
	for _, name := range hooks.CatalogueHooks() {
		c.Bubblehouse.Hooks[name] = HookConfig{}
	}
	// One Svix endpoint that stores every event; its secret is generated.
	c.Svix.Endpoints = map[string]SvixEndpointConfig{"bloom": {Events: map[string]*EventRouteConfig{"*": nil}}}
	return c
}

// ApplyDefaults fills every key left unset with its default (README,
// "Configuration").
func (c *Config) ApplyDefaults() {
	s := &c.Server
	if s.TLS.Mode == "" {
		s.TLS.Mode = "dev"
	}
	if s.Listen == "" {
		s.Listen = ":8443"
		if s.TLS.Mode == "off" {
			s.Listen = ":8080"
		}
	}
	if s.DataDir == "" {
		s.DataDir = "hookbay-data"
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = 1 << 20
	}
	setDuration(&s.Timeouts.ReadHeader, 10*time.Second)
	setDuration(&s.Timeouts.Read, time.Minute)
	setDuration(&s.Timeouts.Write, time.Minute)
	setDuration(&s.Timeouts.Idle, 2*time.Minute)
	setDuration(&c.Idempotency.Retention, hooks.DefaultRetention)
	setDuration(&s.RecordRetention, 30*24*time.Hour)
	if c.Queue.Workers == 0 {
		c.Queue.Workers = 8
	}
	if c.Queue.MaxAttempts == 0 {
		c.Queue.MaxAttempts = hooks.DefaultRetryPolicy.MaxAttempts
	}
	setDuration(&c.Queue.MaxAge, hooks.DefaultRetryPolicy.MaxAge)
	setDuration(&c.Queue.Backoff.Initial, hooks.DefaultRetryPolicy.Initial)
	setDuration(&c.Queue.Backoff.Max, hooks.DefaultRetryPolicy.Max)
	if c.Bubblehouse.Path == "" {
		c.Bubblehouse.Path = "/bubblehouse"
	}
	if c.Svix.Path == "" {
		c.Svix.Path = "/svix"
	}
	b := &c.Bloomreach
	if b.Path == "" {
		b.Path = "/bloomreach"
	}
	if b.OAuth2.TokenPath == "" {
		b.OAuth2.TokenPath = "/oauth/token"
	}
	setDuration(&b.OAuth2.TokenTTL, time.Hour)
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// Validate checks values that parsing alone cannot, naming the key at fault.
// Secrets are checked by the serve command, which may generate dev ones.
func (c *Config) Validate() error {
	s := c.Server
	switch s.TLS.Mode {
	case "dev", "off":
	case "files":
		if s.TLS.CertFile == "" || s.TLS.KeyFile == "" {
			return fmt.Errorf("server.tls.cert_file and server.tls.key_file are required when server.tls.mode is files")
		}
	default:
		return fmt.Errorf("server.tls.mode: %q is not one of dev, files, off", s.TLS.Mode)
	}
	for i, p := range s.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return fmt.Errorf("server.trusted_proxies[%d]: %q is not an IP address or CIDR", i, p)
		}
	}
	if s.PublicHost != "" {
		if err := hooks.CheckHost(s.PublicHost); err != nil {
			return fmt.Errorf("server.public_host: %w", err)
		}
	}
	if s.MaxBodyBytes < 1024 {
		return fmt.Errorf("server.max_body_bytes: %d is too small (at least 1024)", s.MaxBodyBytes)
	}
	if time.Duration(s.Timeouts.Write) <= hooks.BubblehouseCallLimit {
		return fmt.Errorf("server.timeouts.write: %s leaves no room for a 30s inline hook", time.Duration(s.Timeouts.Write))
	}
	if time.Duration(c.Idempotency.Retention) < MinRetention {
		return fmt.Errorf("idempotency.retention: %s is shorter than Bubblehouse's 48 h retry window: a retry after the purge would run again", time.Duration(c.Idempotency.Retention))
	}
	if r := time.Duration(s.RecordRetention); r > 0 && r < time.Duration(c.Idempotency.Retention) {
		return fmt.Errorf("server.record_retention: %s is shorter than idempotency.retention (%s): repeats would lose their original", r, time.Duration(c.Idempotency.Retention))
	}
	if c.Queue.Workers < 1 || c.Queue.Workers > 1024 {
		return fmt.Errorf("queue.workers: %d is not between 1 and 1024", c.Queue.Workers)
	}
	if c.Queue.MaxAttempts < 1 {
		return fmt.Errorf("queue.max_attempts: %d must be at least 1", c.Queue.MaxAttempts)
	}
	if c.Queue.Backoff.Initial > c.Queue.Backoff.Max {
		return fmt.Errorf("queue.backoff.initial: %s is longer than queue.backoff.max", time.Duration(c.Queue.Backoff.Initial))
	}
	longest := time.Duration(0)
	for name, h := range c.Bubblehouse.Hooks {
		if h.Action != nil {
			if err := h.Action.validate("bubblehouse.hooks." + name + ".action"); err != nil {
				return err
			}
			longest = max(longest, h.Action.timeout())
		}
	}
	if err := checkPath("bubblehouse.path", c.Bubblehouse.Path); err != nil {
		return err
	}
	if _, err := c.Bubblehouse.HookSet(); err != nil {
		return fmt.Errorf("bubblehouse.hooks: %s", hooks.ErrorMessage(err))
	}
	if err := checkPath("svix.path", c.Svix.Path); err != nil {
		return err
	}
	if c.Svix.Path == c.Bubblehouse.Path {
		return fmt.Errorf("svix.path: %q is also bubblehouse.path", c.Svix.Path)
	}
	for name, ep := range c.Svix.Endpoints {
		if !endpointNameRE.MatchString(name) {
			return fmt.Errorf("svix.endpoints.%s: a name is letters, digits, '-' and '_'", name)
		}
		for i, sec := range ep.Secrets {
			if _, err := hooks.ParseSvixSecret(sec); err != nil {
				return fmt.Errorf("svix.endpoints.%s.secrets[%d]: %v", name, i, err)
			}
		}
		for pattern, r := range ep.Events {
			if r != nil && r.Action != nil {
				if err := r.Action.validate(fmt.Sprintf("svix.endpoints.%s.events[%q].action", name, pattern)); err != nil {
					return err
				}
				longest = max(longest, r.Action.timeout())
			}
		}
		if _, err := ep.routes(nil); err != nil {
			return fmt.Errorf("svix.endpoints.%s.events: %v", name, err)
		}
	}
	bl, err := c.Bloomreach.validate(c.Server.TLS)
	if err != nil {
		return err
	}
	longest = max(longest, bl)
	if c.Bloomreach.Path == c.Bubblehouse.Path || c.Bloomreach.Path == c.Svix.Path {
		return fmt.Errorf("bloomreach.path: %q is also another sender's path", c.Bloomreach.Path)
	}
	if c.Queue.Lease == 0 {
		c.Queue.Lease = Duration(max(longest+30*time.Second, time.Minute))
	}
	if time.Duration(c.Queue.Lease) <= longest {
		return fmt.Errorf("queue.lease: %s must exceed the longest action timeout (%s), or a slow action would run twice", time.Duration(c.Queue.Lease), longest)
	}
	return nil
}

var endpointNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)

func checkPath(key, p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, ":*") {
		return fmt.Errorf("%s: %q must start with / and not end with / (for example /bubblehouse)", key, p)
	}
	return nil
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

// HookSet turns the hooks map into the domain's hook set.
func (b BubblehouseConfig) HookSet() (*hooks.BubblehouseHooks, error) {
	m := make(map[string]hooks.HookSettings, len(b.Hooks))
	for name, h := range b.Hooks {
		m[name] = hooks.HookSettings{Inline: h.Inline}
	}
	return hooks.NewBubblehouseHooks(m)
}

// Load reads a YAML config file, expands ${ENV_VAR} references in its
// values, rejects unknown keys and applies defaults.
func Load(path string) (Config, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(buf, os.LookupEnv)
}

// Parse parses config text; lookup resolves ${NAME} references.
func Parse(buf []byte, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(&root); err != nil && err.Error() != "EOF" {
		return c, fmt.Errorf("config is not valid YAML: %w", err)
	}
	var used []string
	recorded := func(path, name string) (string, bool) {
		if secretKey(path) && !slices.Contains(used, name) {
			used = append(used, name)
		}
		return lookup(name)
	}
	if len(root.Content) > 0 {
		if err := walk(root.Content[0], reflect.TypeOf(c), "", recorded); err != nil {
			return c, err
		}
		if err := root.Content[0].Decode(&c); err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
	}
	c.secretEnv = used
	c.ApplyDefaults()
	return c, c.Validate()
}

// secretKey reports whether a config key holds a secret: its ${VARS} are
// kept from exec commands' environment.
func secretKey(path string) bool {
	if strings.Contains(path, ".auth.headers.") {
		return true // a Bloomreach webhook's credential header values
	}
	key := path[strings.LastIndex(path, ".")+1:]
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i] // svix.endpoints.bloom.secrets[0]
	}
	switch key {
	case "authorization", "jwt_secret", "secret", "secrets", "password":
		return true
	}
	return false
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// walk checks a YAML node against the Go type it will be decoded into:
// unknown keys and values of the wrong kind are reported with their key
// path, and ${ENV_VAR} references in scalars are expanded in place.
func walk(n *yaml.Node, t reflect.Type, path string, lookup func(path, name string) (string, bool)) error {
	name := path
	if name == "" {
		name = "the top level"
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	switch {
	case t == reflect.TypeOf(Duration(0)):
		if err := expand(n, path, lookup); err != nil {
			return err
		}
		if _, err := time.ParseDuration(n.Value); err != nil || n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: %q is not a duration such as 30s or 72h (line %d)", name, n.Value, n.Line)
		}
		return nil
	case t.Kind() == reflect.Pointer:
		return walk(n, t.Elem(), path, lookup)
	case t.Kind() == reflect.Interface, reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()):
		// Free-form (a JSON Schema) or self-checking: expand ${VARS} only.
		return expandAll(n, path, lookup)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: expected a mapping of keys (line %d)", name, n.Line)
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			fields[strings.Split(f.Tag.Get("yaml"), ",")[0]] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d)", join(path, key), n.Content[i].Line)
			}
			if err := walk(n.Content[i+1], ft, join(path, key), lookup); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: expected a mapping (line %d)", name, n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), lookup); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s: expected a list (line %d)", name, n.Line)
		}
		for i, c := range n.Content {
			if err := walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lookup); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s: expected a single value (line %d)", name, n.Line)
	}
	if err := expand(n, path, lookup); err != nil {
		return err
	}
	if t.Kind() == reflect.String && n.Tag == "" {
		n.Tag = "!!str" // an expanded secret of digits is still a string
	}
	var err error
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		_, err = strconv.ParseInt(n.Value, 10, 64)
	case reflect.Bool:
		_, err = strconv.ParseBool(n.Value)
	}
	if err != nil {
		return fmt.Errorf("%s: %q is not a valid %s (line %d)", name, n.Value, t.Kind(), n.Line)
	}
	return nil
}

// expandAll expands ${VARS} in every scalar under n.
func expandAll(n *yaml.Node, path string, lookup func(path, name string) (string, bool)) error {
	if n.Kind == yaml.ScalarNode {
		return expand(n, path, lookup)
	}
	for _, c := range n.Content {
		if err := expandAll(c, path, lookup); err != nil {
			return err
		}
	}
	return nil
}

// expand replaces ${NAME} in a scalar with the environment's value. A
// missing variable is an error naming the key, so that a secret left unset
// stops start-up instead of becoming an empty password.
func expand(n *yaml.Node, path string, lookup func(path, name string) (string, bool)) error {
	var missing string
	v := envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		val, ok := lookup(path, name)
		if !ok && missing == "" {
			missing = name
		}
		return val
	})
	if missing != "" {
		return fmt.Errorf("%s: environment variable %s is not set (line %d)", path, missing, n.Line)
	}
	if v != n.Value {
		n.Value, n.Tag, n.Style = v, "", 0 // re-resolved on decode
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
