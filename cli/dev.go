package cli

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// Dev mode listens on loopback only: a laptop tool is reached by local
// senders and tunnels (ngrok) over loopback. --listen :8443 listens wider.
const (
	DevListen     = "127.0.0.1:8443"
	DevListenHTTP = "127.0.0.1:8080" // with --http
)

// Credentials are the secrets generated in dev mode.
type Credentials struct {
	BubblehouseAuthorization string `json:"bubblehouse_authorization"`
	SvixSecret               string `json:"svix_secret"`
	BloomreachUser           string `json:"bloomreach_user"`
	BloomreachPassword       string `json:"bloomreach_password"`
	// AdminToken opens the inspector and the admin API (admin.token).
	AdminToken string `json:"admin_token"`
}

// loadSecrets checks that every sender served can authenticate. In dev
// mode, missing credentials are generated once and kept in the data
// directory; otherwise a missing one stops start-up, naming the key, and
// so does a config that serves no sender at all.
func (m *Main) loadSecrets() error {
	b := &m.Config.Bubblehouse
	needBH := b.Authorization == "" && b.JWTSecret == ""
	var needSvix []string
	for name, ep := range m.Config.Svix.Endpoints {
		if len(ep.Secrets) == 0 {
			needSvix = append(needSvix, name)
		}
	}
	if !m.Dev {
		c := &m.Config
		if !c.Serves(hooks.SenderBubblehouse) && !c.Serves(hooks.SenderSvix) && !c.Serves(hooks.SenderBloomreach) {
			return fmt.Errorf("no sender is configured: set bubblehouse.authorization (or bubblehouse.jwt_secret) and bubblehouse.hooks, svix.endpoints, or bloomreach.webhooks")
		}
		if needBH && c.Serves(hooks.SenderBubblehouse) {
			return fmt.Errorf("bubblehouse.authorization or bubblehouse.jwt_secret must be set to serve bubblehouse.hooks (use ${ENV_VAR} to keep it out of the file)")
		}
		if len(needSvix) > 0 {
			return fmt.Errorf("svix.endpoints.%s.secrets: at least one whsec_ signing secret is required", needSvix[0])
		}
		return nil
	}
	if err := m.devCredentials(); err != nil {
		return err
	}
	if needBH {
		b.Authorization = m.credentials.BubblehouseAuthorization
	}
	if m.Config.Admin.Token == "" {
		m.Config.Admin.Token = m.credentials.AdminToken
	}
	for _, name := range needSvix {
		ep := m.Config.Svix.Endpoints[name]
		ep.Secrets = []string{m.credentials.SvixSecret}
		m.Config.Svix.Endpoints[name] = ep
	}
	if len(m.Config.Bloomreach.Webhooks) == 0 {
		// A per-customer webhook that stores what it gets, for a first try.
		m.Config.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sample": {
			Methods:   []string{http.MethodPost},
			Auth:      config.WebhookAuth{Basic: &config.BasicAuth{Username: m.credentials.BloomreachUser, Password: m.credentials.BloomreachPassword}},
			RequestID: config.RequestIDConfig{Header: "X-Request-ID"},
		}}
	}
	return nil
}

// devCredentials reads credentials.json, generating what it lacks.
func (m *Main) devCredentials() error {
	path := filepath.Join(m.Config.Server.DataDir, "credentials.json")
	buf, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(buf, &m.credentials); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	c := &m.credentials
	changed := false
	if c.BubblehouseAuthorization == "" {
		c.BubblehouseAuthorization = "Bearer hb_" + base64.RawURLEncoding.EncodeToString(randomBytes(32))
		changed = true
	}
	if c.SvixSecret == "" {
		c.SvixSecret = "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(24))
		changed = true
	}
	if c.BloomreachPassword == "" {
		c.BloomreachUser, c.BloomreachPassword = "bloomreach", base64.RawURLEncoding.EncodeToString(randomBytes(18))
		changed = true
	}
	if c.AdminToken == "" {
		c.AdminToken = "hba_" + base64.RawURLEncoding.EncodeToString(randomBytes(24))
		changed = true
	}
	if !changed {
		return nil
	}
	out, _ := json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// printBanner tells a developer everything needed for a first hook.
func (m *Main) printBanner() {
	cfg := m.Config
	scheme, curlTLS := "https", ""
	if cfg.Server.TLS.Mode == "off" {
		scheme = "http"
	}
	_, port, _ := net.SplitHostPort(m.Addr())
	host := "localhost"
	if h := cfg.Server.PublicHost; h != "" {
		host = h // what the certificate covers for sure
	}
	base := fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(strings.Trim(host, "[]"), port))
	var b strings.Builder
	fmt.Fprintf(&b, "\nhookbay (version %s) is running in dev mode, data in %s\n", Version(), cfg.Server.DataDir)
	fmt.Fprintf(&b, "config: none (write %s here, or pass --config FILE, to configure)\n\n", config.DefaultPath)
	fmt.Fprintf(&b, "  Bubblehouse hook URL:  %s%s/:name\n", base, cfg.Bubblehouse.Path)
	if a := m.credentials.BubblehouseAuthorization; a != "" {
		fmt.Fprintf(&b, "  Authorization value:   %s\n", a)
		fmt.Fprintf(&b, "                         (paste it into Bubblehouse's API settings page)\n")
	}
	if m.devCerts.CA != "" {
		ca, _ := filepath.Abs(m.devCerts.CA)
		fmt.Fprintf(&b, "  CA certificate:        %s (trust it to call hookbay over HTTPS)\n", ca)
		curlTLS = fmt.Sprintf("--cacert '%s' ", ca)
	}
	if h, _, _ := net.SplitHostPort(cfg.Server.Listen); h != "" && isLoopback(h) {
		fmt.Fprintf(&b, "  Listening on:          %s only (loopback); to accept other machines: hookbay serve --listen :%s\n", h, port)
	}
	if cfg.Server.TLS.Mode == "off" {
		fmt.Fprintf(&b, "  Plain HTTP: put ngrok in front (ngrok http %s) and give Bubblehouse the https URL it prints.\n", port)
	}
	fmt.Fprintf(&b, "  Subscribed hooks:      %s\n", strings.Join(mustHooks(cfg).Names(), ", "))
	for name, w := range cfg.Bloomreach.Webhooks {
		fmt.Fprintf(&b, "  Bloomreach webhook:    %s%s/%s", base, cfg.Bloomreach.Path, name)
		if w.Auth.Basic != nil && m.credentials.BloomreachPassword == w.Auth.Basic.Password {
			fmt.Fprintf(&b, " (Basic auth %s / %s)", w.Auth.Basic.Username, w.Auth.Basic.Password)
		}
		b.WriteString("\n")
	}
	for name := range cfg.Svix.Endpoints {
		fmt.Fprintf(&b, "  Svix endpoint URL:     %s%s/%s\n", base, cfg.Svix.Path, name)
		if m.credentials.SvixSecret != "" {
			fmt.Fprintf(&b, "  Svix signing secret:   %s\n", m.credentials.SvixSecret)
		}
	}
	if u := m.AdminURL(); u != "" {
		fmt.Fprintf(&b, "  Inspector:             %s (admin token %s)\n", u, m.Config.Admin.Token)
		fmt.Fprintf(&b, "                         or log in at once: %slogin#token=%s\n", u, m.Config.Admin.Token)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Try Hello1:\n  curl %s-H 'Authorization: %s' -H 'Content-Type: application/json' -H 'X-BH-Urgency: real-time' -H \"X-Request-ID: hello-$(date +%%s)\" -d '{\"magic\":\"xyzzy\"}' %s%s/Hello1\n\n",
		curlTLS, cfg.Bubblehouse.Authorization, base, cfg.Bubblehouse.Path)
	fmt.Fprint(m.Stdout, b.String())
}

// isLoopback reports whether a listen host is a loopback address or
// localhost.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func mustHooks(cfg config.Config) *hooks.BubblehouseHooks {
	h, err := cfg.Bubblehouse.HookSet()
	if err != nil {
		panic(err) // validated before Run
	}
	return h
}
