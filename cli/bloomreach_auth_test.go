package cli

// The four authentication schemes of Bloomreach webhooks, each exercised
// with a real client. bloomreach-webhooks.txt, "Webhook authentication":
// HTTP Basic (RFC 7617), custom headers ("Pairs marked as secret ... won't
// be displayed to anyone"), OAuth 2.0 client credentials (token in the
// "Auth Header", "Body" or "Query Parameter") and mTLS (a client
// certificate "verified by the server endpoint during mTLS handshake").
// bloomreach-endpoint-requirements.txt: "401 Unauthorized: credentials are
// not provided or are invalid" (a 4xx that fails the campaign event, but
// is not one of 400, 404, 410, 412, 413, 418 that stop the webhook).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
)

func TestBloomreachAuth_Basic(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{"sms": {Auth: brBasic()}}, nil)
	base := "http://" + m.Addr()
	post := func(t *testing.T, u string, set func(*http.Request)) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(`{"phone":"+1"}`))
		req.Header.Set("Content-Type", "application/json")
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	t.Run("Good", func(t *testing.T) {
		if resp := post(t, base+"/bloomreach/sms", func(r *http.Request) { r.SetBasicAuth(brUser, brPass) }); resp.StatusCode != 200 {
			t.Fatalf("status=%d, want 200", resp.StatusCode)
		}
		// Credentials in the URL, as some senders configure them.
		u, _ := url.Parse(base + "/bloomreach/sms")
		u.User = url.UserPassword(brUser, brPass)
		if resp := post(t, u.String(), nil); resp.StatusCode != 200 {
			t.Fatalf("userinfo in URL: status=%d, want 200", resp.StatusCode)
		}
	})
	for _, tt := range []struct {
		name string
		set  func(*http.Request)
	}{
		{"ErrWrongPassword", func(r *http.Request) { r.SetBasicAuth(brUser, brPass+"x") }},
		{"ErrPrefixOfPassword", func(r *http.Request) { r.SetBasicAuth(brUser, brPass[:len(brPass)-1]) }},
		{"ErrWrongUser", func(r *http.Request) { r.SetBasicAuth("Bloomreach", brPass) }},
		{"ErrMissing", nil},
		{"ErrBearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+brPass) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, base+"/bloomreach/sms", tt.set)
			if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("status=%d WWW-Authenticate=%q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	for _, r := range requests(t, m, sqlite.RequestFilter{Name: "sms"}) {
		if got := r.Header.Get("Authorization"); got != "" && got != "Basic [redacted]" && got != "Bearer [redacted]" {
			t.Fatalf("stored Authorization=%q, want it redacted", got)
		}
	}
}

// Custom headers: every configured header must match; their values are
// secrets and never stored.
func TestBloomreachAuth_Headers(t *testing.T) {
	const apiKey, tenant = "k-9f2c61e0-api-key-secret", "t-tenant-0042-secret"
	m := brMain(t, map[string]config.WebhookConfig{"sms": {Auth: config.WebhookAuth{Headers: map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}}}}, nil)
	for _, tt := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"Good", map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}, 200},
		{"GoodLowerCaseNames", map[string]string{"x-api-key": apiKey, "x-tenant": tenant}, 200},
		{"ErrNoTenant", map[string]string{"X-Api-Key": apiKey}, 401},
		{"ErrNoKey", map[string]string{"X-Tenant": tenant}, 401},
		{"ErrWrongKey", map[string]string{"X-Api-Key": apiKey + "0", "X-Tenant": tenant}, 401},
		{"ErrNone", nil, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := brSend(t, m, brReq{name: "sms", id: "hdr-" + tt.name, auth: "-", header: tt.header, body: `{"phone":"+1"}`})
			if a.status != tt.want {
				t.Fatalf("status=%d %s, want %d", a.status, a.body, tt.want)
			}
			if tt.want == 401 && a.json(t)["code"] != "unauthorized" {
				t.Fatalf("body=%s", a.body)
			}
		})
	}
	// The auth-test route checks the same headers.
	if a := brSend(t, m, brReq{name: "sms/auth-test", ctype: "-", auth: "-", header: map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}}); a.status != 200 {
		t.Fatalf("auth-test: %d %s", a.status, a.body)
	}
	recs := requests(t, m, sqlite.RequestFilter{RequestID: "hdr-Good"})
	if len(recs) != 1 || recs[0].Header.Get("X-Api-Key") != "[redacted]" || recs[0].Header.Get("X-Tenant") != "[redacted]" {
		t.Fatalf("stored headers %v, want X-Api-Key and X-Tenant [redacted]", recs[0].Header)
	}
	// Refused requests carry the secret too, and are recorded as well.
	recs = requests(t, m, sqlite.RequestFilter{Name: "sms", Limit: 1000})
	if len(recs) < 6 {
		t.Fatalf("records=%d, want every request recorded", len(recs))
	}
	// A mistyped webhook name (404), on its own route or its auth-test
	// route, may carry the credentials as well: every configured auth
	// header is redacted on every Bloomreach route.
	for _, name := range []string{"smss", "smss/auth-test"} {
		creds := map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}
		if a := brSend(t, m, brReq{name: name, id: "hdr-typo", auth: "-", header: creds, body: `{"phone":"+1"}`}); a.status != 404 {
			t.Fatalf("%s: status=%d %s, want 404", name, a.status, a.body)
		}
	}
	recs = requests(t, m, sqlite.RequestFilter{Sender: hooks.SenderBloomreach, Limit: 1000})
	typos := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Name, "smss") {
			typos++
			if r.Header.Get("X-Api-Key") != "[redacted]" || r.Header.Get("X-Tenant") != "[redacted]" {
				t.Fatalf("%s: stored headers %v, want X-Api-Key and X-Tenant [redacted]", r.Name, r.Header)
			}
		}
	}
	if typos != 2 {
		t.Fatalf("records of mistyped names=%d, want 2", typos)
	}
	for _, suffix := range []string{"", "-wal"} {
		buf, _ := os.ReadFile(filepath.Join(m.Config.Server.DataDir, "hookbay.db"+suffix))
		for _, secret := range []string{apiKey, tenant} {
			if bytes.Contains(buf, []byte(secret)) {
				t.Fatalf("hookbay.db%s contains a header secret", suffix)
			}
		}
	}
}

// brOAuth is hookbay's OAuth 2.0 client configuration for the tests.
func brOAuth(c *config.Config) {
	c.Bloomreach.OAuth2.Clients = []config.OAuth2Client{
		{ID: "bloomreach", Secret: "s3cret", Scopes: []string{"webhooks"}},
		// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
		{ID: "special", Secret: "p+ss/w=rd&x y%zz", Scopes: []string{"webhooks"}},
	}
}

func brOAuthHooks() map[string]config.WebhookConfig {
	return map[string]config.WebhookConfig{
		"hdr": {Auth: config.WebhookAuth{OAuth2: &config.OAuth2Auth{}}},
		"qry": {Auth: config.WebhookAuth{OAuth2: &config.OAuth2Auth{TokenIn: "query"}}},
		"bdy": {Auth: config.WebhookAuth{OAuth2: &config.OAuth2Auth{TokenIn: "body"}}},
	}
}

func brCredentials(m *Main, id, secret string, style oauth2.AuthStyle, scopes ...string) *clientcredentials.Config {
	if scopes == nil {
		scopes = []string{"webhooks"}
	}
	return &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: "http://" + m.Addr() + "/oauth/token",
		Scopes: scopes, AuthStyle: style}
}

// oauthErrorBody is an OAuth 2.0 error answer (RFC 6749 §5.2).
type oauthErrorBody struct {
	Error string `json:"error"`
	Desc  string `json:"error_description"`
}

// oauthError reads and closes an OAuth 2.0 error answer.
func oauthError(t *testing.T, resp *http.Response) oauthErrorBody {
	t.Helper()
	defer resp.Body.Close()
	var got oauthErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("%d answer is not JSON: %v", resp.StatusCode, err)
	}
	return got
}

// The token endpoint answers bad input in RFC 6749 §5.2's format, which
// OAuth clients parse: a body that is not a form gets 400 invalid_request,
// an oversized one 413 invalid_request.
func TestBloomreachAuth_TokenBadInput(t *testing.T) {
	m := brMain(t, brOAuthHooks(), brOAuth)
	for _, tt := range []struct {
		name, ctype, body string
		want              int
		wantDesc          string
	}{
		{"ErrTooLarge", "application/x-www-form-urlencoded", "grant_type=client_credentials&pad=" + strings.Repeat("x", 70<<10), 413, "65536-byte limit"},
		{"ErrBadEscape", "application/x-www-form-urlencoded", "grant_type=%zz", 400, "application/x-www-form-urlencoded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/oauth/token", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			req.SetBasicAuth("bloomreach", "s3cret")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := oauthError(t, resp)
			if resp.StatusCode != tt.want || got.Error != "invalid_request" || !strings.Contains(got.Desc, tt.wantDesc) {
				t.Fatalf("answer %d %+v, want %d invalid_request naming %q", resp.StatusCode, got, tt.want, tt.wantDesc)
			}
		})
	}
}

func TestBloomreachAuth_OAuth2(t *testing.T) {
	m := brMain(t, brOAuthHooks(), brOAuth)
	ctx := context.Background()
	base := "http://" + m.Addr()

	t.Run("TokenEndpointAnswer", func(t *testing.T) {
		resp, err := http.PostForm(base+"/oauth/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {"bloomreach"}, "client_secret": {"s3cret"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int    `json:"expires_in"`
			Scope       string `json:"scope"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		// RFC 6749 §5.1: no-store, token_type, expires_in.
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || tok.TokenType != "Bearer" ||
			tok.AccessToken == "" || tok.ExpiresIn != 3600 || tok.Scope != "webhooks" {
			t.Fatalf("token answer %d Cache-Control=%q %+v", resp.StatusCode, resp.Header.Get("Cache-Control"), tok)
		}
		// Only the token's hash is stored.
		for _, suffix := range []string{"", "-wal"} {
			buf, _ := os.ReadFile(filepath.Join(m.Config.Server.DataDir, "hookbay.db"+suffix))
			if bytes.Contains(buf, []byte(tok.AccessToken)) {
				t.Fatalf("hookbay.db%s holds the access token in clear", suffix)
			}
		}
	})
	for _, style := range []struct {
		name string
		s    oauth2.AuthStyle
	}{{"InHeader", oauth2.AuthStyleInHeader}, {"InParams", oauth2.AuthStyleInParams}} {
		t.Run("TokenInHeader"+style.name, func(t *testing.T) {
			cc := brCredentials(m, "bloomreach", "s3cret", style.s)
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 50*time.Minute {
				t.Fatalf("token type=%q expiry in %s", tok.TokenType, time.Until(tok.Expiry))
			}
			client := cc.Client(ctx)
			resp, err := client.Post(base+"/bloomreach/hdr", "application/json", strings.NewReader(`{"phone":"+1"}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("webhook with the token: %d %s", resp.StatusCode, body)
			}
			// The stored record keeps the scheme, not the token.
			if got := brLatest(t, m, "hdr").Header.Get("Authorization"); got != "Bearer [redacted]" {
				t.Fatalf("stored Authorization=%q", got)
			}
		})
	}
	cc := brCredentials(m, "bloomreach", "s3cret", oauth2.AuthStyleInHeader)
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("TokenInQuery", func(t *testing.T) {
		a := brSend(t, m, brReq{name: "qry", auth: "-", query: "access_token=" + url.QueryEscape(tok.AccessToken), body: `{"phone":"+1"}`})
		if a.status != 200 {
			t.Fatalf("got %d %s", a.status, a.body)
		}
		for _, q := range []string{"", "access_token=made-up", "token=" + url.QueryEscape(tok.AccessToken)} {
			if a := brSend(t, m, brReq{name: "qry", auth: "-", query: q, body: `{}`}); a.status != 401 {
				t.Fatalf("query %q: got %d, want 401", q, a.status)
			}
		}
		// A Bearer header is not where this webhook reads the token.
		if a := brSend(t, m, brReq{name: "qry", auth: "Bearer " + tok.AccessToken, body: `{}`}); a.status != 401 {
			t.Fatalf("header on a query webhook: got %d, want 401", a.status)
		}
	})
	t.Run("TokenInJSONBody", func(t *testing.T) {
		a := brSend(t, m, brReq{name: "bdy", auth: "-", body: `{"access_token":"` + tok.AccessToken + `","phone":"+1"}`})
		if a.status != 200 {
			t.Fatalf("got %d %s", a.status, a.body)
		}
		if a := brSend(t, m, brReq{name: "bdy", auth: "-", body: `{"access_token":"made-up","phone":"+1"}`}); a.status != 401 {
			t.Fatalf("made-up token in body: got %d, want 401", a.status)
		}
	})
	// Bloomreach "supports any content type in requests"; a form-encoded
	// payload carries the token as a form field.
	t.Run("TokenInFormBody", func(t *testing.T) {
		a := brSend(t, m, brReq{name: "bdy", auth: "-", ctype: "application/x-www-form-urlencoded",
			body: "phone=%2B1&access_token=" + url.QueryEscape(tok.AccessToken)})
		if a.status != 200 {
			t.Fatalf("got %d %s, want 200", a.status, a.body)
		}
	})
	t.Run("ErrMadeUpToken", func(t *testing.T) {
		a := brSend(t, m, brReq{name: "hdr", auth: "Bearer bm90LWEtdG9rZW4tYXQtYWxs", body: `{}`})
		if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("got %d WWW-Authenticate=%q, want 401 invalid_token", a.status, a.header.Get("WWW-Authenticate"))
		}
		if a := brSend(t, m, brReq{name: "hdr", auth: "-", body: `{}`}); a.status != 401 || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("no token: got %d WWW-Authenticate=%q", a.status, a.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("AuthTest", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if a := brSend(t, m, brReq{method: method, name: "hdr/auth-test", ctype: "-", auth: "Bearer " + tok.AccessToken}); a.status != 200 {
				t.Fatalf("%s auth-test: %d %s", method, a.status, a.body)
			}
			if a := brSend(t, m, brReq{method: method, name: "hdr/auth-test", ctype: "-", auth: "-"}); a.status != 401 {
				t.Fatalf("%s auth-test without token: %d", method, a.status)
			}
		}
	})
	// RFC 6749 §5.2 errors, through the real client.
	retrieveError := func(t *testing.T, err error, status int, code string) {
		t.Helper()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != status || re.ErrorCode != code {
			t.Fatalf("err=%v, want %d %s", err, status, code)
		}
		if re.Response.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("error answer Cache-Control=%q", re.Response.Header.Get("Cache-Control"))
		}
	}
	t.Run("ErrWrongSecret", func(t *testing.T) {
		for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
			_, err := brCredentials(m, "bloomreach", "s3cretX", style).Token(ctx)
			retrieveError(t, err, 401, "invalid_client")
		}
		_, err := brCredentials(m, "nobody", "s3cret", oauth2.AuthStyleInParams).Token(ctx)
		retrieveError(t, err, 401, "invalid_client")
	})
	t.Run("ErrScopeNotGranted", func(t *testing.T) {
		_, err := brCredentials(m, "bloomreach", "s3cret", oauth2.AuthStyleInHeader, "webhooks", "admin").Token(ctx)
		retrieveError(t, err, 400, "invalid_scope")
	})
	t.Run("ErrGrantPassword", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(url.Values{
			"grant_type": {"password"}, "username": {"u"}, "password": {"p"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("bloomreach", "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode != 400 || e.Error != "unsupported_grant_type" {
			t.Fatalf("got %d %q, want 400 unsupported_grant_type", resp.StatusCode, e.Error)
		}
	})
	// The real client form-urlencodes id and secret before Basic
	// (RFC 6749 §2.3.1); a secret with reserved characters must still work.
	t.Run("SecretWithReservedCharsInHeader", func(t *testing.T) {
		if _, err := brCredentials(m, "special", "p+ss/w=rd&x y%zz", oauth2.AuthStyleInParams).Token(ctx); err != nil {
			t.Fatalf("in params: %v", err)
		}
		if _, err := brCredentials(m, "special", "p+ss/w=rd&x y%zz", oauth2.AuthStyleInHeader).Token(ctx); err != nil {
			t.Fatalf("in header (form-urlencoded per RFC 6749 §2.3.1): %v", err)
		}
	})
}

// An access token stops working when it expires (bloomreach.oauth2.token_ttl).
func TestBloomreachAuth_OAuth2Expired(t *testing.T) {
	m := brMain(t, brOAuthHooks(), func(c *config.Config) {
		brOAuth(c)
		c.Bloomreach.OAuth2.TokenTTL = config.Duration(time.Second)
	})
	tok, err := brCredentials(m, "bloomreach", "s3cret", oauth2.AuthStyleInHeader).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a := brSend(t, m, brReq{name: "hdr", auth: "Bearer " + tok.AccessToken, body: `{}`}); a.status != 200 {
		t.Fatalf("fresh token: %d %s", a.status, a.body)
	}
	time.Sleep(1100 * time.Millisecond)
	a := brSend(t, m, brReq{name: "hdr", auth: "Bearer " + tok.AccessToken, body: `{}`})
	if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("expired token: %d %s, want 401 invalid_token", a.status, a.body)
	}
}

// Tokens are kept in the store: a restart does not log Bloomreach out.
func TestBloomreachAuth_OAuth2Restart(t *testing.T) {
	dir := t.TempDir()
	mutate := func(c *config.Config) {
		c.Bloomreach.Webhooks = brOAuthHooks()
		brOAuth(c)
		c.Server.DataDir = dir
	}
	// The first run is closed by hand: MustRunMain's cleanup would close it
	// a second time.
	cfg := config.Config{}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.TLS.Mode = "off"
	cfg.Bubblehouse.Authorization = testAuth
	mutate(&cfg)
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	first := NewMain(cfg)
	first.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, err := brCredentials(first, "bloomreach", "s3cret", oauth2.AuthStyleInHeader).Token(context.Background())
	closeErr := first.Close(context.Background())
	if err != nil || closeErr != nil {
		t.Fatalf("token: %v; close: %v", err, closeErr)
	}

	m := MustRunMain(t, mutate)
	if a := brSend(t, m, brReq{name: "hdr", auth: "Bearer " + tok.AccessToken, body: `{}`}); a.status != 200 {
		t.Fatalf("token after restart: %d %s, want 200", a.status, a.body)
	}
	if a := brSend(t, m, brReq{name: "hdr", auth: "Bearer " + tok.AccessToken + "x", body: `{}`}); a.status != 401 {
		t.Fatalf("altered token after restart: %d, want 401", a.status)
	}
}

// brCA is a certificate authority for client certificates.
type brCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func brNewCA(t *testing.T, cn string) brCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return brCA{cert, key}
}

func (ca brCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// client issues a client certificate valid from notBefore to notAfter.
func (ca brCA) client(t *testing.T, cn string, dns []string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mTLS: the handshake verifies an offered certificate against
// server.tls.client_ca_file; the webhook then requires one, with an
// allowed subject. HTTPS as the contract requires, over HTTP/2.
func TestBloomreachAuth_MTLS(t *testing.T) {
	ca, other := brNewCA(t, "Bloomreach client CA"), brNewCA(t, "someone else's CA")
	caFile := filepath.Join(t.TempDir(), "client-ca.pem")
	if err := os.WriteFile(caFile, ca.pem(), 0o600); err != nil {
		t.Fatal(err)
	}
	m := brMain(t, map[string]config.WebhookConfig{
		"mtls":  {Auth: config.WebhookAuth{MTLS: &config.MTLSAuth{Subjects: []string{"bloomreach-prod"}}}},
		"basic": {Auth: brBasic()},
	}, func(c *config.Config) {
		c.Server.TLS.Mode = "dev"
		c.Server.TLS.ClientCAFile = caFile
	})
	serverCA, err := os.ReadFile(filepath.Join(m.Config.Server.DataDir, "certs", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(serverCA) {
		t.Fatal("dev CA is not PEM")
	}
	now := time.Now()
	good := ca.client(t, "bloomreach-prod", nil, now.Add(-time.Hour), now.Add(time.Hour))
	for _, tt := range []struct {
		name    string
		hook    string
		cert    *tls.Certificate
		auth    string
		want    int  // status, when the handshake passes
		errWant bool // the handshake fails
	}{
		{"Valid", "mtls", &good, "-", 200, false},
		{"ValidDNSName", "mtls", brPtr(ca.client(t, "bloomreach", []string{"bloomreach-prod"}, now.Add(-time.Hour), now.Add(time.Hour))), "-", 200, false},
		{"ErrOtherSubject", "mtls", brPtr(ca.client(t, "bloomreach-staging", nil, now.Add(-time.Hour), now.Add(time.Hour))), "-", 401, false},
		{"ErrNoCertificate", "mtls", nil, "-", 401, false},
		{"ErrExpired", "mtls", brPtr(ca.client(t, "bloomreach-prod", nil, now.Add(-48*time.Hour), now.Add(-time.Hour))), "-", 0, true},
		{"ErrNotYetValid", "mtls", brPtr(ca.client(t, "bloomreach-prod", nil, now.Add(time.Hour), now.Add(48*time.Hour))), "-", 0, true},
		{"ErrOtherCA", "mtls", brPtr(other.client(t, "bloomreach-prod", nil, now.Add(-time.Hour), now.Add(time.Hour))), "-", 0, true},
		// A webhook without mtls needs no client certificate on the same
		// listener.
		{"OtherWebhookNoCertificate", "basic", nil, "", 200, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := &tls.Config{RootCAs: roots}
			if tt.cert != nil {
				// Always present it: Go's client otherwise silently sends
				// none when the certificate's issuer is not among the CAs
				// the server lists, and the server would never see it.
				tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return tt.cert, nil }
			}
			tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			a, proto, err := brDoProto(client, "https://"+m.Addr(), brReq{name: tt.hook, auth: tt.auth, body: `{"phone":"+1"}`})
			if tt.errWant {
				if err == nil {
					t.Fatalf("got %d %s, want the TLS handshake to fail", a.status, a.body)
				}
				// The HTTP/2 client hides the cause: see it on a bare TLS
				// connection (in TLS 1.3 the server's alert arrives on the
				// first read).
				if perr := brTLSProbe(m.Addr(), tc); perr == nil || !strings.Contains(perr.Error(), "certificate") {
					t.Fatalf("client error %v; bare TLS: %v, want the server to refuse the certificate", err, perr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.cert != nil {
				if perr := brTLSProbe(m.Addr(), tc); perr != nil {
					t.Fatalf("bare TLS with an accepted certificate: %v", perr)
				}
			}
			if a.status != tt.want || proto != "HTTP/2.0" {
				t.Fatalf("got %s %d %s, want HTTP/2.0 %d", proto, a.status, a.body, tt.want)
			}
		})
	}
	t.Run("AuthTest", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		a, _, err := brDoProto(&http.Client{Transport: tr}, "https://"+m.Addr(), brReq{method: http.MethodGet, name: "mtls/auth-test", ctype: "-", auth: "-"})
		if err != nil || a.status != 200 {
			t.Fatalf("auth-test with the certificate: %v %d %s", err, a.status, a.body)
		}
	})
	if recs := requests(t, m, sqlite.RequestFilter{Sender: hooks.SenderBloomreach, Name: "mtls"}); len(recs) != 4 {
		t.Fatalf("records=%d, want the 4 requests that passed the handshake", len(recs))
	}
}

// brTLSProbe connects with tc, sends a request and reads the first byte of
// the answer: a refused client certificate shows as the server's alert.
func brTLSProbe(addr string, tc *tls.Config) error {
	tc = tc.Clone()
	tc.NextProtos = []string{"http/1.1"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}

func brPtr[T any](v T) *T { return &v }

// brDoProto is brDo that also reports the protocol used.
func brDoProto(client *http.Client, base string, r brReq) (answer, string, error) {
	var proto string
	inner := client.Transport
	c := *client
	c.Transport = brRoundTrip(func(req *http.Request) (*http.Response, error) {
		resp, err := inner.RoundTrip(req)
		if resp != nil {
			proto = resp.Proto
		}
		return resp, err
	})
	a, err := brDo(&c, base, r)
	return a, proto, err
}

type brRoundTrip func(*http.Request) (*http.Response, error)

func (f brRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
