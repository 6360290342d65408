package config

import (
	"fmt"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is hookbay.yaml. Every key is documented in README.md.
type Config struct {
	Server      ServerConfig      `yaml:"server"`
	Idempotency IdempotencyConfig `yaml:"idempotency"`
	Queue       QueueConfig       `yaml:"queue"`
	Bubblehouse BubblehouseConfig `yaml:"bubblehouse"`
	Svix        SvixConfig        `yaml:"svix"`
	Bloomreach  BloomreachConfig  `yaml:"bloomreach"`
	Admin       AdminConfig       `yaml:"admin"`
	Log         LogConfig         `yaml:"log"`
	Store       StoreConfig       `yaml:"store"`

	// secretEnv names the environment variables the config's secret keys
	// refer to, kept from the commands of exec actions.
	secretEnv []string
	// schemas are the Bloomreach webhooks' JSON Schemas, compiled once by
	// Finish; Schemas compiles on a miss.
	schemas map[string]*compiledSchemas
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
	// proxies whose X-Forwarded-For is believed; by default none is. An
	// IPv4-mapped IPv6 address (::ffff:10.0.0.1) is its IPv4 address; see
	// TrustedPrefixes.
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
	// and KeyFile), acme (certificates obtained and renewed automatically,
	// ACME) or off (plain HTTP, for a TLS-terminating proxy or ngrok).
	// Default: files when CertFile or KeyFile is set, dev otherwise.
	Mode     string `yaml:"mode"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates, for webhooks with mtls.
	ClientCAFile string `yaml:"client_ca_file"`
	// ACME obtains and renews the certificate (mode acme).
	ACME ACMEConfig `yaml:"acme"`
}

// ACMEConfig is automatic certificates from an RFC 8555 CA (mode acme).
type ACMEConfig struct {
	// Hosts are the names the certificate is for; the CA must reach
	// hookbay at each of them on port 443 (TLS-ALPN-01) or 80 (HTTP-01).
	Hosts []string `yaml:"hosts"`
	// Email is the contact address given to the CA (optional).
	Email string `yaml:"email"`
	// DirectoryURL is the CA's directory: default Let's Encrypt
	// production; "staging" names Let's Encrypt's staging directory.
	DirectoryURL string `yaml:"directory_url"`
	// AcceptTOS states acceptance of the CA's terms of service; required.
	AcceptTOS bool `yaml:"accept_tos"`
	// HTTPListen is an optional listener (":80") that answers HTTP-01
	// challenges and otherwise redirects to HTTPS.
	HTTPListen string `yaml:"http_listen"`
	// CacheDir keeps certificates and the account key (default
	// <data_dir>/acme).
	CacheDir string `yaml:"cache_dir"`
	// CAFile holds the roots that verify a private CA's directory (a test
	// CA such as Pebble); empty for a public CA.
	CAFile string `yaml:"ca_file"`
	// RenewBefore is how long before expiry a certificate is renewed
	// (default 30 days, or a third of a shorter validity).
	RenewBefore Duration `yaml:"renew_before"`
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
	// Prefetch is how many jobs per worker are claimed ahead of the
	// workers, in a line in memory, so that claims and their transactions
	// take many jobs at once (default 8; 1 holds one job per worker).
	Prefetch int `yaml:"prefetch"`
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

// AdminConfig is the admin listener: the inspector, its API and /metrics.
type AdminConfig struct {
	// Listen is the admin listener's address; "off" disables it.
	Listen string `yaml:"listen"`
	// Token protects the admin surface; required when Listen is not a
	// loopback address.
	Token string `yaml:"token"`
}

// LogConfig is the log's format and level, and whether every request gets
// a line.
type LogConfig struct {
	// Format is text or json.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Requests logs one line per request at INFO (default true).
	Requests *bool `yaml:"requests"`
}

// StoreConfig picks the store: SQLite in the data directory unless
// postgres is set.
type StoreConfig struct {
	Postgres *PostgresConfig `yaml:"postgres"`
}

// PostgresConfig is a PostgreSQL store shared by several replicas.
type PostgresConfig struct {
	// URL is a libpq-style connection URL (postgres://user:pass@host/db).
	URL string `yaml:"url"`
	// MaxConns caps the connection pool (default 16).
	MaxConns int `yaml:"max_conns"`
}
