package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParse(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		c, err := Parse(nil, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Server.Listen != ":8443" || c.Server.TLS.Mode != "dev" || c.Server.MaxBodyBytes != 1<<20 ||
			time.Duration(c.Idempotency.Retention) != 72*time.Hour || c.Queue.Workers != 8 || c.Bubblehouse.Path != "/bubblehouse" {
			t.Fatalf("defaults: %+v", c)
		}
	})
	t.Run("OffListensOn8080", func(t *testing.T) {
		c, err := Parse([]byte("server: {tls: {mode: off}}"), env(nil))
		if err != nil || c.Server.Listen != ":8080" {
			t.Fatalf("got %q %v, want :8080", c.Server.Listen, err)
		}
	})
	t.Run("Full", func(t *testing.T) {
		c, err := Parse([]byte(`
server:
  listen: 127.0.0.1:9443
  data_dir: /var/lib/hookbay
  max_body_bytes: 262144
  tls: {mode: files, cert_file: /etc/hookbay/cert.pem, key_file: /etc/hookbay/key.pem}
  timeouts: {read_header: 5s, read: 30s, write: 45s, idle: 90s}
idempotency: {retention: 96h}
queue: {workers: 4}
bubblehouse:
  path: /hooks/bh
  authorization: ${BH_AUTH}
  jwt_secret: "${BH_JWT}"
  hooks:
    CreateDiscount4:
    SendEvent1: {}
    PrivatePromo2: {inline: true}
`), env(map[string]string{"BH_AUTH": "Bearer s3cret", "BH_JWT": "123456"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Bubblehouse.Authorization != "Bearer s3cret" || c.Bubblehouse.JWTSecret != "123456" {
			t.Fatalf("secrets not expanded: %q %q", c.Bubblehouse.Authorization, c.Bubblehouse.JWTSecret)
		}
		if !c.Bubblehouse.Hooks["PrivatePromo2"].Inline || len(c.Bubblehouse.Hooks) != 3 {
			t.Fatalf("hooks: %+v", c.Bubblehouse.Hooks)
		}
		if time.Duration(c.Server.Timeouts.Write) != 45*time.Second || c.Queue.Workers != 4 || c.Server.MaxBodyBytes != 262144 {
			t.Fatalf("values: %+v", c)
		}
	})
	for _, tt := range []struct{ name, yaml, says string }{
		{"ErrUnknownTopKey", "sever: {}", "sever: unknown key"},
		{"ErrUnknownNestedKey", "server: {tls: {moed: dev}}", "server.tls.moed: unknown key"},
		{"ErrUnknownHookKey", "bubblehouse: {hooks: {CreateDiscount4: {inlin: true}}}", "bubblehouse.hooks.CreateDiscount4.inlin: unknown key"},
		{"ErrTLSMode", "server: {tls: {mode: on}}", "server.tls.mode"},
		{"ErrFilesWithoutCert", "server: {tls: {mode: files}}", "server.tls.cert_file"},
		{"ErrWorkers", "queue: {workers: many}", "queue.workers"},
		{"ErrWorkersRange", "queue: {workers: -1}", "queue.workers: -1 is not between 1 and 1024"},
		{"ErrPrefetchRange", "queue: {prefetch: 65}", "queue.prefetch: 65 is not between 1 and 64"},
		{"ErrRetention", "idempotency: {retention: 3 days}", "idempotency.retention"},
		{"ErrRetentionShort", "idempotency: {retention: 10m}", "idempotency.retention"},
		{"ErrRetentionUnderBubblehouseWindow", "idempotency: {retention: 24h}", "shorter than Bubblehouse's 48 h retry window"},
		{"ErrBodyTooSmall", "server: {max_body_bytes: 10}", "server.max_body_bytes"},
		{"ErrWriteTimeout", "server: {timeouts: {write: 10s}}", "server.timeouts.write"},
		{"ErrPublicHostPort", "server: {public_host: 'hooks.example.com:8443'}", "server.public_host: host \"hooks.example.com:8443\""},
		{"ErrPath", "bubblehouse: {path: hooks}", "bubblehouse.path"},
		{"ErrHello1Listed", "bubblehouse: {hooks: {Hello1: {}}}", "bubblehouse.hooks"},
		{"ErrHello2Listed", "bubblehouse: {hooks: {Hello2: {}}}", "Hello family"},
		{"ErrHookName", "bubblehouse: {hooks: {'Create Discount': {}}}", "bubblehouse.hooks"},
		{"ErrMissingEnv", "bubblehouse: {authorization: '${NOPE}'}", "bubblehouse.authorization: environment variable NOPE is not set"},
		{"ErrNotMapping", "server: [1, 2]", "server: expected a mapping"},
		{"ErrYAML", "server: {listen: [}", "not valid YAML"},
		{"ErrSvixSecret", "svix: {endpoints: {bloom: {secrets: ['whsec_not base64!']}}}", "svix.endpoints.bloom.secrets[0]: not a whsec_ secret"},
		{"ErrSvixSecretIsSignature", "svix: {endpoints: {bloom: {secrets: ['v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=']}}}", "is a signature (v1,...), not a signing secret"},
		{"ErrSvixPattern", "svix: {endpoints: {bloom: {secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], events: {'trade*line': {}}}}}", "svix.endpoints.bloom.events"},
		{"ErrSvixEndpointName", "svix: {endpoints: {'a/b': {}}}", "svix.endpoints.a/b"},
		{"ErrSvixPathClash", "svix: {path: /bubblehouse}", "svix.path"},
		{"ErrBRNoAuth", "bloomreach: {webhooks: {sms: {}}}", "bloomreach.webhooks.sms.auth: at least one of basic, headers, oauth2 or mtls is required"},
		{"ErrBRMethod", "bloomreach: {webhooks: {sms: {methods: [TRACE], auth: {headers: {X-K: v}}}}}", "bloomreach.webhooks.sms.methods"},
		{"ErrBRBatchMax", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, batch: {items: /m, max: 1001}}}}", "bloomreach.webhooks.b.batch.max"},
		{"ErrBRBatchPointer", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, batch: {items: m}}}}", "bloomreach.webhooks.b.batch.items"},
		{"ErrBRItemIDWithoutBatch", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, request_id: {item_id: /id}}}}", "only a batch webhook has items"},
		{"ErrBROAuthNoClients", "bloomreach: {webhooks: {b: {auth: {oauth2: {}}}}}", "bloomreach.oauth2.clients"},
		{"ErrBRTokenIn", "bloomreach: {oauth2: {clients: [{id: a, secret: b}]}, webhooks: {b: {auth: {oauth2: {token_in: cookie}}}}}", "token_in"},
		{"ErrBRMTLSNoCA", "bloomreach: {webhooks: {b: {auth: {mtls: {}}}}}", "server.tls.client_ca_file"},
		{"ErrBRThrottleName", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, throttle: nope}}}", "no policy named \"nope\""},
		{"ErrBRThrottleStatus", "bloomreach: {throttles: {t: {rate: 1, status: 400}}}", "bloomreach.throttles.t.status"},
		{"ErrBRInlineThrottleKey", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, throttle: {rte: 1}}}}", "throttle.rte: unknown key"},
		{"ErrBRSchema", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, schema: {item: {type: 12}}}}}", "bloomreach.webhooks.b.schema.item: not a valid JSON Schema"},
		{"ErrBRSchemaFile", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, schema: {item_file: /nonexistent.json}}}}", "schema.item_file"},
		{"ErrBRInlineBatch", "bloomreach: {webhooks: {b: {auth: {headers: {X-K: v}}, batch: {items: /m}, inline: true}}}", "cannot run its action inline"},
		{"ErrBRClient", "bloomreach: {oauth2: {clients: [{id: a}]}}", "bloomreach.oauth2.clients[0]"},
		{"ErrRecordRetentionShort", "server: {record_retention: 24h}", "server.record_retention"},
		{"ErrNestedPaths", "bubblehouse: {path: /hooks}\nsvix: {path: /hooks/svix}", `svix.path "/hooks/svix" is inside bubblehouse.path "/hooks"`},
		{"ErrNestedPathsReversed", "bloomreach: {path: /in/br/x}\nsvix: {path: /in/br}", `bloomreach.path "/in/br/x" is inside svix.path "/in/br"`},
		{"ErrSamePaths", "bloomreach: {path: /svix}", "bloomreach.path and svix.path are both \"/svix\""},
		{"ErrDevTLSWithFiles", "server: {tls: {mode: dev, cert_file: c.pem, key_file: k.pem}}", "server.tls.cert_file and server.tls.key_file: read only when server.tls.mode is files"},
		{"ErrDevTLSWithKeyFile", "server: {tls: {mode: dev, key_file: k.pem}}", "server.tls.key_file: read only when server.tls.mode is files"},
		{"ErrTrustedProxy", "server: {trusted_proxies: [10.0.0.1, proxy.example]}", `server.trusted_proxies[1]: "proxy.example" is not an IP address or CIDR`},
		{"ErrTrustedProxyZone", "server: {trusted_proxies: ['fe80::1%eth0']}", "server.trusted_proxies[0]: \"fe80::1%eth0\" has an IPv6 zone"},
		{"ErrTrustedProxyMappedShort", "server: {trusted_proxies: ['::ffff:0:0/80']}", "not an IPv4 range"},
		{"ErrForwardTimeout", "bubblehouse: {hooks: {CreateDiscount4: {action: {forward: {url: 'http://x.test', timeout: -1s}}}}}", "bubblehouse.hooks.CreateDiscount4.action.forward.timeout: -1s must be positive"},
		{"ErrLeaseShort", "queue: {lease: 5s}\nbubblehouse: {hooks: {CreateDiscount4: {action: {forward: {url: 'http://x.test', timeout: 10s}}}}}", "queue.lease"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err=%v, want one mentioning %q", err, tt.says)
			}
		})
	}
	t.Run("BloomreachDefaults", func(t *testing.T) {
		c, err := Parse([]byte(`
bloomreach:
  throttles: {crm: {rate: 5, burst: 10}}
  webhooks:
    sms: {auth: {basic: {username: u, password: "${PW}"}}, throttle: crm}
    inl: {auth: {headers: {X-K: v}}, throttle: {rate: 2, max_in_flight: 3, status: 503}}
    b: {auth: {oauth2: {}}, batch: {items: /messages}}
  oauth2: {clients: [{id: a, secret: s}]}
`), env(map[string]string{"PW": "pw"}))
		if err != nil {
			t.Fatal(err)
		}
		b := c.Bloomreach
		if b.Path != "/bloomreach" || b.OAuth2.TokenPath != "/oauth/token" || time.Duration(b.OAuth2.TokenTTL) != time.Hour {
			t.Fatalf("defaults: %+v", b)
		}
		if w := b.Webhooks["sms"]; w.Methods[0] != "POST" || w.RequestID.Header != "X-Request-ID" || w.Auth.Basic.Password != "pw" || w.Throttle.Name != "crm" {
			t.Fatalf("sms: %+v", w)
		}
		if w := b.Webhooks["inl"]; w.Throttle.Inline == nil || w.Throttle.Inline.MaxInFlight != 3 || w.Throttle.Inline.Status != 503 {
			t.Fatalf("inline throttle: %+v", w.Throttle)
		}
		if w := b.Webhooks["b"]; w.Batch.Max != 1000 || w.Auth.OAuth2.TokenIn != "header" || w.Auth.OAuth2.Field != "access_token" {
			t.Fatalf("batch: %+v %+v", w.Batch, w.Auth.OAuth2)
		}
	})
	t.Run("DefaultSubscribesCatalogue", func(t *testing.T) {
		c := Default()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(mustHookSet(t, c).Names(), ","); got != "CreateDiscount4,DeliverCustomReward1,SendEvent1" {
			t.Fatalf("dev hooks=%s", got)
		}
	})
}

// FuzzParse: whatever the file says, parsing ends in a config or an
// error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("server: {listen: ':8443', tls: {mode: dev}}\nbubblehouse: {authorization: '${X}', hooks: {CreateDiscount4: {inline: true}}}"))
	f.Add([]byte("queue: {workers: 3}\nidempotency: {retention: 72h}"))
	f.Add([]byte("a: &x {b: *x}"))
	f.Add([]byte("server: !!binary aGVsbG8="))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, env(map[string]string{"X": "v"}))
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate refuses: %v", verr)
			}
		}
	})
}

// secretKey picks the keys whose ${VARS} are hookbay's secrets.
func TestSecretKey(t *testing.T) {
	for path, want := range map[string]bool{
		"bubblehouse.authorization":                            true,
		"bubblehouse.jwt_secret":                               true,
		"svix.endpoints.bloom.secrets[1]":                      true,
		"bloomreach.oauth2.clients[0].secret":                  true,
		"bloomreach.webhooks.sms.auth.basic.password":          true,
		"bloomreach.webhooks.sms.auth.headers.X-Api-Key":       true,
		"bloomreach.webhooks.sms.auth.basic.username":          false,
		"server.data_dir":                                      false,
		"store.postgres.url":                                   true,
		"admin.token":                                          true,
		"bubblehouse.hooks.CreateDiscount4.action.forward.url": false,
	} {
		if got := secretKey(path); got != want {
			t.Errorf("secretKey(%q)=%v, want %v", path, got, want)
		}
	}
}

func TestValidate_Ops(t *testing.T) {
	for _, tt := range []struct {
		yaml, want string
	}{
		{"admin: {listen: \"0.0.0.0:8081\"}", "admin.token must be set"},
		{"admin: {listen: \":8081\"}", "admin.token must be set"},
		{"admin: {listen: \"nonsense\"}", "admin.listen"},
		{"admin: {listen: \":8081\", token: short}", "admin.token: at least 16"},
		{"log: {format: xml}", "log.format"},
		{"log: {level: loud}", "log.level"},
		{"store: {postgres: {url: \"mysql://x\"}}", "store.postgres.url"},
		{"store: {postgres: {url: \"postgres://h/db\", max_conns: -1}}", "store.postgres.max_conns"},
	} {
		_, err := Parse([]byte(tt.yaml+"\nsvix: {endpoints: {bloom: {secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]}}}"), env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err=%v, want one naming %q", tt.yaml, err, tt.want)
		}
	}
	for _, ok := range []string{"admin: {listen: \"127.0.0.1:8081\"}", "admin: {listen: \"[::1]:8081\"}",
		"admin: {listen: \"localhost:0\"}", "admin: {listen: off}", "admin: {listen: \":8081\", token: 0123456789abcdef}",
		"store: {postgres: {url: \"postgres://u:p@h:5432/db\"}}"} {
		c, err := Parse([]byte(ok+"\nsvix: {endpoints: {bloom: {secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]}}}"), env(nil))
		if err != nil {
			t.Errorf("%s: %v", ok, err)
		} else if c.Log.Format != "json" || c.Log.Level != "info" || !*c.Log.Requests {
			t.Errorf("%s: log defaults %+v", ok, c.Log)
		}
	}
}

func mustHookSet(t *testing.T, c Config) interface{ Names() []string } {
	t.Helper()
	h, err := c.Bubblehouse.HookSet()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// ${file:PATH} reads a secret from a file (Docker and Kubernetes secrets):
// the content without its final line break, in any key; a file that
// cannot be read stops the config naming the key and the file.
func TestDecode_FileSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	jwt := write("bh_jwt", "0123456789abcdef0123456789abcdef\n")
	auth := write("bh_auth", "Bearer from-a-file\r\n")
	pw := write("br_pw", "no-newline-at-all")
	twoLines := write("two_lines", "first\nsecond\n\n")

	t.Run("OK", func(t *testing.T) {
		c, err := Parse([]byte(fmt.Sprintf(`
bubblehouse:
  authorization: ${file:%s}
  jwt_secret: "${file:%s}"
  hooks: {CreateDiscount4: {}}
bloomreach:
  webhooks:
    sms: {auth: {basic: {username: u, password: "${file:%s}"}}}
`, auth, jwt, pw)), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.Bubblehouse.JWTSecret, "0123456789abcdef0123456789abcdef"; got != want {
			t.Errorf("jwt_secret %q, want %q (the final newline dropped)", got, want)
		}
		if got, want := c.Bubblehouse.Authorization, "Bearer from-a-file"; got != want {
			t.Errorf("authorization %q, want %q (the final CRLF dropped)", got, want)
		}
		if got, want := c.Bloomreach.Webhooks["sms"].Auth.Basic.Password, "no-newline-at-all"; got != want {
			t.Errorf("password %q, want %q", got, want)
		}
	})
	t.Run("OnlyTheFinalLineBreak", func(t *testing.T) {
		c, err := Decode([]byte(fmt.Sprintf("bubblehouse: {authorization: '${file:%s}'}", twoLines)), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.Bubblehouse.Authorization, "first\nsecond\n"; got != want {
			t.Errorf("value %q, want %q", got, want)
		}
	})
	for _, tc := range []struct {
		name, file, says string
	}{
		{"ErrMissing", filepath.Join(dir, "missing"), "no such file or directory"},
		{"ErrDirectory", dir, "is a directory"},
		{"ErrTooLarge", write("huge", strings.Repeat("x", 65<<10)), "larger than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(fmt.Sprintf("bubblehouse:\n  hooks: {CreateDiscount4: {}}\n  jwt_secret: ${file:%s}\n", tc.file)), env(nil))
			want := "bubblehouse.jwt_secret: secret file " + tc.file + ": "
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "(line 3)") {
				t.Fatalf("err=%v, want one starting %q and saying %q at line 3", err, want, tc.says)
			}
		})
	}
	t.Run("ErrUnreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads a file whatever its mode")
		}
		locked := write("locked", "secret\n")
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Decode([]byte(fmt.Sprintf("admin: {token: '${file:%s}'}", locked)), env(nil))
		if err == nil || !strings.Contains(err.Error(), "admin.token: secret file "+locked+": permission denied") {
			t.Fatalf("err=%v, want admin.token named with permission denied", err)
		}
	})
}

// An exec command does not inherit the environment variables the config's
// secrets came from; a secret read from a file is in no variable, so
// nothing is hidden for it, and a variable used only outside secret keys
// stays visible.
func TestDecode_SecretEnvScrubbed(t *testing.T) {
	jwt := filepath.Join(t.TempDir(), "bh_jwt")
	if err := os.WriteFile(jwt, []byte(strings.Repeat("k", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(fmt.Sprintf(`
bubblehouse:
  authorization: ${BH_AUTH}
  jwt_secret: ${file:%s}
  hooks:
    CreateDiscount4: {action: {exec: {command: ["${TOOL}", "--from", "hookbay"]}}}
`, jwt)), env(map[string]string{"BH_AUTH": "Bearer env-secret", "TOOL": "/usr/bin/true"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.secretEnv, ","); got != "BH_AUTH" {
		t.Errorf("hidden variables %q, want BH_AUTH only (not the file, not TOOL)", got)
	}
	d, err := c.Dispatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	act := d.For(&hooks.Job{Sender: hooks.SenderBubblehouse, Name: "CreateDiscount4", Source: "CreateDiscount4"})
	x, ok := act.(*hooks.Exec)
	if !ok {
		t.Fatalf("action %T, want *hooks.Exec", act)
	}
	if got := strings.Join(x.HideEnv, ","); got != "BH_AUTH" {
		t.Errorf("exec hides %q, want BH_AUTH", got)
	}
}

// Warnings names each weak secret's key and length, never the secret,
// sorted; strong ones give none.
func TestConfig_Warnings(t *testing.T) {
	c, err := Parse([]byte(`
bubblehouse:
  jwt_secret: short-jwt-secret
  hooks: {CreateDiscount4: {}}
bloomreach:
  webhooks:
    sms: {auth: {basic: {username: u, password: pw-7char}}}
    crm: {auth: {oauth2: {}}}
  oauth2: {clients: [{id: exponea, secret: s3cr3t}, {id: other, secret: 0123456789abcdef}]}
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Warnings()
	want := []string{
		"bloomreach.oauth2.clients[0].secret: 6 characters is short; use at least 16 random ones",
		"bloomreach.webhooks.sms.auth.basic.password: 8 characters is short; use at least 12 random ones",
		"bubblehouse.jwt_secret: 16 bytes is short for an HS256 key; use at least 32 random bytes",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range got {
		for _, secret := range []string{"short-jwt-secret", "pw-7char", "s3cr3t"} {
			if strings.Contains(w, secret) {
				t.Errorf("warning %q shows the secret", w)
			}
		}
	}

	strong, err := Parse([]byte(`
bubblehouse:
  authorization: Bearer x
  jwt_secret: 0123456789abcdef0123456789abcdef
  hooks: {CreateDiscount4: {}}
bloomreach:
  webhooks: {sms: {auth: {basic: {username: u, password: 0123456789ab}}}}
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if w := strong.Warnings(); len(w) != 0 {
		t.Errorf("strong secrets warned about: %v", w)
	}
}
