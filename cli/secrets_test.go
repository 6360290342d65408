package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

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

// The container's example config is valid with its secrets read from
// files, none of them weak; compose.yaml mounts it where the image's
// command and health check read it, and hands hookbay every secret file it
// names.
func TestSecret_DockerExample(t *testing.T) {
	example, err := os.ReadFile("../deploy/docker/hookbay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	values := map[string]string{
		"postgres_url":              "postgres://hookbay:0123456789abcdef@postgres:5432/hookbay?sslmode=disable",
		"admin_token":               "hba_0123456789abcdef0123456789abcdef",
		"bubblehouse_authorization": "Bearer hb_0123456789abcdef0123456789abcdef",
		"svix_secret":               "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"bloomreach_password":       "0123456789abcdef",
	}
	named := regexp.MustCompile(`\$\{file:/run/secrets/([a-z_]+)\}`).FindAllStringSubmatch(string(example), -1)
	var used []string
	for _, m := range named {
		v, ok := values[m[1]]
		if !ok {
			t.Fatalf("the example reads /run/secrets/%s, which this test does not know", m[1])
		}
		used = append(used, m[1])
		if err := os.WriteFile(filepath.Join(dir, m[1]), []byte(v+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.ReplaceAll(string(example), "/run/secrets/", dir+"/")
	cfg, err := config.Parse([]byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("deploy/docker/hookbay.yaml: %v", err)
	}
	if w := cfg.Warnings(); len(w) > 0 {
		t.Errorf("warnings: %v", w)
	}
	if cfg.Store.Postgres == nil || cfg.Store.Postgres.URL != values["postgres_url"] || cfg.Server.TLS.Mode != "acme" {
		t.Errorf("store %+v, tls %q: want PostgreSQL from the secret file and ACME", cfg.Store.Postgres, cfg.Server.TLS.Mode)
	}

	var compose struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
			Secrets []string `yaml:"secrets"`
			Ports   []string `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "../compose.yaml")), &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	hb := compose.Services["hookbay"]
	const configPath, dataDir = "/etc/hookbay/hookbay.yaml", "/var/lib/hookbay"
	if !slices.Contains(hb.Volumes, "./deploy/docker/hookbay.yaml:"+configPath+":ro") || !slices.Contains(hb.Volumes, "hookbay-data:"+dataDir) {
		t.Errorf("compose mounts %v: want the example at %s and the volume at %s", hb.Volumes, configPath, dataDir)
	}
	for _, s := range used {
		if !slices.Contains(hb.Secrets, s) {
			t.Errorf("compose does not give hookbay the secret %s", s)
		}
	}
	if _, ok := compose.Services["postgres"]; !ok {
		t.Error("compose has no postgres service")
	}

	dockerfile := readFile(t, "../Dockerfile")
	for _, want := range []string{
		`CMD ["serve", "--config", "` + configPath + `", "--data", "` + dataDir + `"]`,
		`CMD ["hookbay", "healthcheck", "--config", "` + configPath + `", "--data", "` + dataDir + `"]`,
		"HEALTHCHECK ",
		"VOLUME " + dataDir,
		"USER hookbay",
		`ENTRYPOINT ["/usr/bin/tini", "--", "hookbay"]`,
		"-X github.com/hookbay/hookbay/cli.version=",
	} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
