package handlers_test

// The four authentication schemes of Bloomreach webhooks, one layer deep.
// Bloomreach's public "Webhooks", "Webhook authentication": HTTP Basic
// (RFC 7617), custom headers (secret ones "won't be displayed to anyone"),
// OAuth 2.0 client credentials (the token in the "Auth Header", "Body" or
// "Query Parameter") and mTLS. "Creating API endpoint for webhooks": "401
// Unauthorized: credentials are not provided or are invalid".

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

func TestBloomreachAuth_Basic(t *testing.T) {
	g := &Guard{}
	e, _ := newBloomreach(g, brHook("sms", brBasic()))
	t.Run("Good", func(t *testing.T) {
		if a := serve(e, brReq{name: "sms", body: `{"phone":"+1"}`}.request()); a.status != 200 {
			t.Fatalf("got %d %s, want 200", a.status, a.body)
		}
	})
	for _, tt := range []struct{ name, auth string }{
		{"ErrWrongPassword", basic(brUser, brPass+"x")},
		{"ErrPrefixOfPassword", basic(brUser, brPass[:len(brPass)-1])},
		{"ErrWrongUser", basic("Bloomreach", brPass)},
		{"ErrMissing", "-"},
		{"ErrBearer", "Bearer " + brPass},
		{"ErrNotBase64", "Basic " + brPass},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(e, brReq{name: "sms", id: "basic-" + tt.name, auth: tt.auth, body: `{"phone":"+1"}`}.request())
			if a.status != 401 || a.code(t) != hooks.EUNAUTHORIZED || a.header.Get("WWW-Authenticate") != `Basic realm="hookbay", charset="UTF-8"` {
				t.Fatalf("got %d WWW-Authenticate=%q %s, want 401 with a Basic challenge", a.status, a.header.Get("WWW-Authenticate"), a.body)
			}
			rec := g.last(t)
			if rec.Status != 401 || rec.RequestID != "basic-"+tt.name {
				t.Fatalf("record %d %q, want the refusal recorded with its request ID", rec.Status, rec.RequestID)
			}
			if got := rec.Header.Get("Authorization"); got != "" && !strings.HasSuffix(got, " [redacted]") {
				t.Fatalf("recorded Authorization=%q, want it redacted", got)
			}
		})
	}
}

// basic is an HTTP Basic Authorization value.
func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// Custom headers: every configured header must match; their values are
// secrets, redacted in every record of every Bloomreach route.
func TestBloomreachAuth_Headers(t *testing.T) {
	const apiKey, tenant = "k-9f2c61e0-api-key-secret", "t-tenant-0042-secret"
	g := &Guard{}
	e, _ := newBloomreach(g, brHook("sms", handlers.WebhookAuth{Headers: map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}}))
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
			a := serve(e, brReq{name: "sms", id: "hdr-" + tt.name, auth: "-", header: tt.header, body: `{"phone":"+1"}`}.request())
			if a.status != tt.want || (tt.want == 401 && a.code(t) != hooks.EUNAUTHORIZED) {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tt.want)
			}
		})
	}
	// The auth-test route checks the same headers.
	creds := map[string]string{"X-Api-Key": apiKey, "X-Tenant": tenant}
	if a := serve(e, brReq{name: "sms/auth-test", ctype: "-", auth: "-", header: creds}.request()); a.status != 200 {
		t.Fatalf("auth-test: %d %s", a.status, a.body)
	}
	// A mistyped webhook name (404), on its own route or its auth-test
	// route, may carry the credentials too.
	for _, name := range []string{"smss", "smss/auth-test"} {
		if a := serve(e, brReq{name: name, auth: "-", header: creds, body: `{"phone":"+1"}`}.request()); a.status != 404 {
			t.Fatalf("%s: got %d %s, want 404", name, a.status, a.body)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.records) != 9 {
		t.Fatalf("records=%d, want every request recorded", len(g.records))
	}
	for _, rec := range g.records {
		for _, h := range []string{"X-Api-Key", "X-Tenant"} {
			if v := rec.Header.Get(h); v != "" && v != "[redacted]" {
				t.Fatalf("%s: recorded %s=%q, want it redacted", rec.Name, h, v)
			}
		}
	}
}

// tokens is an in-memory TokenStore: hash to client and scopes. It sees
// only hashes, as the real store does.
func tokens(issued map[string][]string) *TokenStore {
	return &TokenStore{TokenClientFn: func(_ context.Context, hash []byte, _ time.Time) (string, []string, error) {
		for token, scopes := range issued {
			if sum := sha256.Sum256([]byte(token)); string(sum[:]) == string(hash) {
				return "bloomreach", scopes, nil
			}
		}
		return "", nil, nil
	}}
}

// OAuth 2.0: the access token where the webhook says Bloomreach puts it
// (Authorization: Bearer, a query parameter, a JSON or form body field),
// with the scopes the webhook requires.
func TestBloomreachAuth_OAuth2(t *testing.T) {
	const tok, narrow = "tok-5b0e9a-valid-access-token", "tok-narrow-scope-only"
	oauth := func(name, in string, scopes ...string) *handlers.BloomreachWebhook {
		return brHook(name, handlers.WebhookAuth{OAuth2: true, TokenIn: in, TokenField: "access_token", Scopes: scopes})
	}
	g := &Guard{}
	e, h := newBloomreach(g, oauth("hdr", "header"), oauth("qry", "query"), oauth("bdy", "body"), oauth("crm", "header", "crm"))
	h.Tokens = tokens(map[string][]string{tok: {"webhooks", "crm"}, narrow: {"webhooks"}})
	for _, tt := range []struct {
		name      string
		r         brReq
		want      int
		challenge string // WWW-Authenticate of a 401
	}{
		{"Header", brReq{name: "hdr", auth: "Bearer " + tok, body: `{}`}, 200, ""},
		{"HeaderLowerCaseScheme", brReq{name: "hdr", auth: "bearer " + tok, body: `{}`}, 200, ""},
		{"ErrHeaderMissing", brReq{name: "hdr", auth: "-", body: `{}`}, 401, `Bearer realm="hookbay"`},
		{"ErrHeaderMadeUp", brReq{name: "hdr", auth: "Bearer bm90LWEtdG9rZW4", body: `{}`}, 401, `Bearer realm="hookbay", error="invalid_token"`},
		{"ErrHeaderBasic", brReq{name: "hdr", body: `{}`}, 401, `Bearer realm="hookbay"`},
		{"Query", brReq{name: "qry", auth: "-", query: "access_token=" + url.QueryEscape(tok), body: `{}`}, 200, ""},
		{"ErrQueryOtherName", brReq{name: "qry", auth: "-", query: "token=" + tok, body: `{}`}, 401, `Bearer realm="hookbay"`},
		// A Bearer header is not where this webhook reads the token.
		{"ErrQueryInHeader", brReq{name: "qry", auth: "Bearer " + tok, body: `{}`}, 401, `Bearer realm="hookbay"`},
		{"JSONBody", brReq{name: "bdy", auth: "-", body: `{"access_token":"` + tok + `","phone":"+1"}`}, 200, ""},
		{"ErrJSONBodyMadeUp", brReq{name: "bdy", auth: "-", body: `{"access_token":"made-up","phone":"+1"}`}, 401, `Bearer realm="hookbay", error="invalid_token"`},
		{"ErrJSONBodyNested", brReq{name: "bdy", auth: "-", body: `{"data":{"access_token":"` + tok + `"}}`}, 401, `Bearer realm="hookbay"`},
		// "Bloomreach supports any content type in requests": a form body
		// carries the token as a form field.
		{"FormBody", brReq{name: "bdy", auth: "-", ctype: "application/x-www-form-urlencoded", body: "phone=%2B1&access_token=" + url.QueryEscape(tok)}, 200, ""},
		{"Scope", brReq{name: "crm", auth: "Bearer " + tok, body: `{}`}, 200, ""},
		{"ErrScopeMissing", brReq{name: "crm", auth: "Bearer " + narrow, body: `{}`}, 401, `Bearer realm="hookbay", error="insufficient_scope", scope="crm"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(e, tt.r.request())
			if a.status != tt.want || a.header.Get("WWW-Authenticate") != tt.challenge {
				t.Fatalf("got %d WWW-Authenticate=%q %s, want %d %q", a.status, a.header.Get("WWW-Authenticate"), a.body, tt.want, tt.challenge)
			}
			if strings.Contains(string(a.body), tok) {
				t.Fatalf("answer repeats the token: %s", a.body)
			}
		})
	}
	t.Run("AuthTest", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if a := serve(e, brReq{method: method, name: "hdr/auth-test", ctype: "-", auth: "Bearer " + tok}.request()); a.status != 200 {
				t.Fatalf("%s auth-test: %d %s", method, a.status, a.body)
			}
			if a := serve(e, brReq{method: method, name: "hdr/auth-test", ctype: "-", auth: "-"}.request()); a.status != 401 {
				t.Fatalf("%s auth-test without a token: %d", method, a.status)
			}
		}
	})
	// A store that cannot answer is not a wrong token: 503, retried.
	h.Tokens = &TokenStore{TokenClientFn: func(context.Context, []byte, time.Time) (string, []string, error) {
		return "", nil, hooks.Errorf(hooks.EUNAVAILABLE, "the store is not reachable")
	}}
	if a := serve(e, brReq{name: "hdr", auth: "Bearer " + tok, body: `{}`}.request()); a.status != 503 {
		t.Fatalf("store down: got %d %s, want 503", a.status, a.body)
	}
}

// mTLS: the handshake (tested end to end in cli) verified the chain; the
// webhook then requires a certificate with an allowed subject, as common
// name or DNS name.
func TestBloomreachAuth_MTLS(t *testing.T) {
	g := &Guard{}
	e, _ := newBloomreach(g, brHook("mtls", handlers.WebhookAuth{MTLS: true, MTLSSubjects: []string{"bloomreach-prod"}}),
		brHook("any", handlers.WebhookAuth{MTLS: true}), brHook("basic", brBasic()))
	leaf := func(cn string, dns ...string) *tls.ConnectionState {
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
		return &tls.ConnectionState{HandshakeComplete: true, VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
	for _, tt := range []struct {
		name, hook string
		tls        *tls.ConnectionState
		auth       string
		want       int
	}{
		{"Valid", "mtls", leaf("bloomreach-prod"), "-", 200},
		{"ValidDNSName", "mtls", leaf("bloomreach", "bloomreach-prod"), "-", 200},
		{"AnySubject", "any", leaf("whoever"), "-", 200},
		{"ErrOtherSubject", "mtls", leaf("bloomreach-staging"), "-", 401},
		{"ErrSubjectPrefix", "mtls", leaf("bloomreach-prod-2"), "-", 401},
		{"ErrNoCertificate", "mtls", &tls.ConnectionState{HandshakeComplete: true}, "-", 401},
		{"ErrPlainHTTP", "mtls", nil, "-", 401},
		// A webhook without mtls needs no certificate on the same listener.
		{"OtherWebhookNoCertificate", "basic", &tls.ConnectionState{HandshakeComplete: true}, "", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := brReq{name: tt.hook, auth: tt.auth, body: `{"phone":"+1"}`}.request()
			req.TLS = tt.tls
			if a := serve(e, req); a.status != tt.want {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tt.want)
			}
		})
	}
	req := brReq{method: http.MethodGet, name: "mtls/auth-test", ctype: "-", auth: "-"}.request()
	req.TLS = leaf("bloomreach-prod")
	if a := serve(e, req); a.status != 200 {
		t.Fatalf("auth-test with the certificate: %d %s", a.status, a.body)
	}
	if !slices.ContainsFunc(g.records, func(r *hooks.Request) bool { return r.Status == 401 && r.Name == "mtls" }) {
		t.Fatal("refused mTLS requests are not recorded")
	}
}
