package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hookbay/hookbay/config"
)

// Each weak secret is logged at WARN with its key, and the secret never
// appears in the log.
func TestSecret_WarnWeak(t *testing.T) {
	const jwt, password, client = "short-jwt-secret", "pw-7chars", "s3cr3t"
	env := map[string]string{"JWT": jwt, "PW": password, "CS": client}
	cfg, err := config.Parse([]byte(`
bubblehouse:
  jwt_secret: ${JWT}
  hooks: {CreateDiscount4: {}}
bloomreach:
  webhooks:
    sms: {auth: {basic: {username: bloomreach, password: "${PW}"}}}
    crm: {auth: {oauth2: {}}}
  oauth2: {clients: [{id: exponea, secret: "${CS}"}]}
`), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m := NewMain(cfg)
	m.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	m.warnWeakSecrets()

	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level, Msg, Key, Why string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Level != "WARN" || rec.Msg != "weak secret" || rec.Why == "" {
			t.Errorf("log line %q: want a WARN weak secret with a reason", line)
		}
		keys = append(keys, rec.Key)
	}
	want := []string{"bloomreach.oauth2.clients[0].secret", "bloomreach.webhooks.sms.auth.basic.password", "bubblehouse.jwt_secret"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("warned about %v, want %v", keys, want)
	}
	for _, secret := range []string{jwt, password, client} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log shows the secret %q:\n%s", secret, buf.String())
		}
	}

	// Strong secrets: nothing is logged.
	cfg.Bubblehouse.JWTSecret = strings.Repeat("k", 32)
	cfg.Bloomreach.Webhooks["sms"].Auth.Basic.Password = strings.Repeat("p", 12)
	cfg.Bloomreach.OAuth2.Clients[0].Secret = strings.Repeat("c", 16)
	buf.Reset()
	m = NewMain(cfg)
	m.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	m.warnWeakSecrets()
	if buf.Len() != 0 {
		t.Errorf("strong secrets logged:\n%s", buf.String())
	}
}
