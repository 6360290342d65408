package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// full exercises every default that depends on a key being present: an
// action of each kind, each Bloomreach default, and the lease.
const full = `
bubblehouse:
  authorization: x
  hooks:
    CreateDiscount4: {action: {forward: {url: 'http://127.0.0.1:1/d'}}}
    SendEvent1: {action: {exec: {command: [cat]}}}
bloomreach:
  oauth2: {clients: [{id: a, secret: s}]}
  webhooks:
    sms: {methods: [post, Put], auth: {oauth2: {token_in: body}}, batch: {items: /m}, schema: {item: {type: object}}}
`

// Validate changes nothing: defaults come from ApplyDefaults alone, so
// that a config validated twice, or checked by a reader, stays as it was.
func TestValidate_Pure(t *testing.T) {
	decode := func() Config {
		c, err := Decode([]byte(full), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("OK", func(t *testing.T) {
		c, want := decode(), decode()
		c.ApplyDefaults()
		want.ApplyDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("Validate changed the config:\n got %+v\nwant %+v", c, want)
		}
	})
	t.Run("ErrWithoutDefaults", func(t *testing.T) {
		c, want := decode(), decode()
		if err := c.Validate(); err == nil {
			t.Fatal("a config without its defaults passed")
		}
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("Validate filled in a config without defaults:\n got %+v\nwant %+v", c, want)
		}
	})
}

// Every default is filled by ApplyDefaults, including those that depend
// on other keys, and applying them twice changes nothing.
func TestApplyDefaults(t *testing.T) {
	c, err := Decode([]byte(full), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	fwd := c.Bubblehouse.Hooks["CreateDiscount4"].Action.Forward
	exec := c.Bubblehouse.Hooks["SendEvent1"].Action.Exec
	if time.Duration(fwd.Timeout) != DefaultForwardTimeout || time.Duration(exec.Timeout) != DefaultExecTimeout || exec.MaxProcs != DefaultExecMaxProcs {
		t.Fatalf("action defaults: forward %+v exec %+v", fwd, exec)
	}
	if got, want := time.Duration(c.Queue.Lease), DefaultExecTimeout+30*time.Second; got != want {
		t.Fatalf("queue.lease=%s, want the longest action timeout plus 30s (%s)", got, want)
	}
	w := c.Bloomreach.Webhooks["sms"]
	if strings.Join(w.Methods, ",") != "POST,PUT" || w.RequestID.Header != DefaultRequestIDHeader || w.Batch.Max != hooks.BloomreachMaxBatch ||
		w.Auth.OAuth2.TokenIn != "body" || w.Auth.OAuth2.Field != DefaultTokenField {
		t.Fatalf("webhook defaults: %+v %+v %+v", w, w.Batch, w.Auth.OAuth2)
	}
	again := c
	again.ApplyDefaults()
	if !reflect.DeepEqual(again, c) {
		t.Fatal("ApplyDefaults twice changed the config")
	}
	t.Run("LeaseAtLeastAMinute", func(t *testing.T) {
		var c Config
		c.ApplyDefaults()
		if time.Duration(c.Queue.Lease) != time.Minute {
			t.Fatalf("queue.lease=%s, want 1m", time.Duration(c.Queue.Lease))
		}
	})
	t.Run("TLSFilesWhenFilesSet", func(t *testing.T) {
		c, err := Parse([]byte("server: {tls: {cert_file: c.pem, key_file: k.pem}}"), env(nil))
		if err != nil || c.Server.TLS.Mode != "files" {
			t.Fatalf("mode=%q %v, want files: the files are what was meant", c.Server.TLS.Mode, err)
		}
	})
}

// Finish compiles a webhook's schemas once, and the handlers get those:
// the schema file is read at start only.
func TestFinish_SchemasCompiledOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "item.json")
	if err := os.WriteFile(file, []byte(`{"type":"object","required":["phone"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte("bloomreach: {webhooks: {sms: {auth: {headers: {X-K: v}}, schema: {item_file: "+file+"}}}}"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	_, item, err := c.Schemas("sms")
	if err != nil || item == nil {
		t.Fatalf("schema after start: %v %v, want the one compiled by Finish", item, err)
	}
	if err := item.Validate(map[string]any{}); err == nil {
		t.Fatal("the compiled schema accepts an item without phone")
	}
	// A schema changed after Finish is compiled anew, not served stale.
	w := c.Bloomreach.Webhooks["sms"]
	w.Schema = SchemaConfig{Item: map[string]any{"type": "string"}}
	c.Bloomreach.Webhooks["sms"] = w
	if _, item, err := c.Schemas("sms"); err != nil || item.Validate("x") != nil {
		t.Fatalf("changed schema: %v", err)
	}
}

// server.trusted_proxies parse with net/netip; a 4-in-6 address is its
// IPv4 address (it used to become the IPv6 range ::/32).
func TestTrustedPrefixes(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":             "10.0.0.1/32",
		"::ffff:10.0.0.1":      "10.0.0.1/32",
		"::ffff:10.0.0.0/104":  "10.0.0.0/8",
		"10.1.2.3/8":           "10.0.0.0/8",
		"::1":                  "::1/128",
		"2001:db8::/32":        "2001:db8::/32",
		"::ffff:192.0.2.7/128": "192.0.2.7/32",
	} {
		got, err := ServerConfig{TrustedProxies: []string{in}}.TrustedPrefixes()
		if err != nil || len(got) != 1 || got[0] != netip.MustParsePrefix(want) {
			t.Errorf("%s: got %v %v, want %s", in, got, err, want)
		}
	}
}

// A sender is served when its section says so.
func TestConfig_Serves(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want [3]bool // bubblehouse, svix, bloomreach
	}{
		{"", [3]bool{}},
		{"bubblehouse: {path: /bh}", [3]bool{}},
		{"bubblehouse: {authorization: x}", [3]bool{true}},
		{"bubblehouse: {jwt_secret: x}", [3]bool{true}},
		{"bubblehouse: {hooks: {CreateDiscount4: {}}}", [3]bool{true}},
		{"svix: {endpoints: {bloom: {}}}", [3]bool{false, true}},
		{"bloomreach: {webhooks: {sms: {auth: {headers: {X-K: v}}}}}", [3]bool{false, false, true}},
	} {
		c, err := Parse([]byte(tt.yaml), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		got := [3]bool{c.Serves(hooks.SenderBubblehouse), c.Serves(hooks.SenderSvix), c.Serves(hooks.SenderBloomreach)}
		if got != tt.want {
			t.Errorf("%q: serves %v, want %v", tt.yaml, got, tt.want)
		}
	}
	c := Default()
	if !c.Serves(hooks.SenderBubblehouse) || !c.Serves(hooks.SenderSvix) {
		t.Fatal("dev mode does not serve Bubblehouse and Svix")
	}
}

// hookbay.yaml in the working directory is read when --config is not
// given.
func TestLocate(t *testing.T) {
	t.Chdir(t.TempDir())
	if p, implicit, err := Locate(""); p != "" || implicit || err != nil {
		t.Fatalf("no file: %q %v %v, want none", p, implicit, err)
	}
	if p, implicit, err := Locate("other.yaml"); p != "other.yaml" || implicit || err != nil {
		t.Fatalf("--config: %q %v %v", p, implicit, err)
	}
	if err := os.WriteFile(DefaultPath, []byte("queue: {workers: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, implicit, err := Locate(""); p != DefaultPath || !implicit || err != nil {
		t.Fatalf("with %s: %q %v %v", DefaultPath, p, implicit, err)
	}
	if p, _, _ := Locate("other.yaml"); p != "other.yaml" {
		t.Fatalf("--config loses to %s: %q", DefaultPath, p)
	}
}
