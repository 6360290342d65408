package cli

// Bloomreach webhook authentication end to end, with real clients: the
// OAuth 2.0 client-credentials flow through golang.org/x/oauth2 and the
// store (tokens survive a restart, expire, are stored as hashes), mTLS
// through a real TLS handshake, and header secrets that never reach the
// database. The schemes' status tables are tested at the handlers' layer
// (handlers/bloomreach_auth_test.go, handlers/oauth2_test.go). The
// contract is Bloomreach Engagement's public "Webhooks" ("Webhook
// authentication") and "Creating API endpoint for webhooks".

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
)

// Custom header values are secrets: whatever the request (accepted,
// refused, to a mistyped webhook name), no byte of the database holds
// them. The status table is tested at the handlers' layer.
func TestBloomreachAuth_HeadersNotStored(t *testing.T) {
	const apiKey, tenant = "k-9f2c61e0-api-key-secret", "t-tenant-0042-secret"
	m := brMain(t, map[string]config.WebhookConfig{"sms": {Auth: config.WebhookAuth{Headers: map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}}}}, nil)
	creds := map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}
	for _, r := range []struct {
		req  brReq
		want int
	}{
		{brReq{name: "sms", id: "hdr-good", auth: "-", header: creds, body: `{"phone":"+1"}`}, 200},
		{brReq{name: "sms", id: "hdr-wrong", auth: "-", header: map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant + "0"}, body: `{}`}, 401},
		{brReq{name: "smss", id: "hdr-typo", auth: "-", header: creds, body: `{}`}, 404},
		{brReq{name: "smss/auth-test", auth: "-", header: creds, ctype: "-"}, 404},
	} {
		if a := brSend(t, m, r.req); a.status != r.want {
			t.Fatalf("%s: got %d %s, want %d", r.req.name, a.status, a.body, r.want)
		}
	}
	if recs := requests(t, m, hooks.RequestFilter{Sender: hooks.SenderBloomreach, Limit: 100}); len(recs) != 4 {
		t.Fatalf("records=%d, want every request recorded", len(recs))
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
	if recs := requests(t, m, hooks.RequestFilter{Sender: hooks.SenderBloomreach, Name: "mtls"}); len(recs) != 4 {
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
