package handlers_test

// hookbay's OAuth 2.0 token endpoint for Bloomreach's OAuth 2.0
// authentication integration: the client-credentials grant (RFC 6749
// section 4.4), answers and errors in RFC 6749 sections 5.1 and 5.2.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/handlers"
)

// tokenServer serves the token endpoint for two clients; saved collects
// what the store is given.
func tokenServer(t *testing.T) (*echo.Echo, *[]savedToken) {
	t.Helper()
	var saved []savedToken
	g := &Guard{}
	e, h := newBloomreach(g)
	h.Clients = map[string]handlers.OAuthClient{
		"bloomreach": {Secret: "s3cret", Scopes: []string{"webhooks", "crm"}},
		// RFC 6749 section 2.3.1: id and secret are form-urlencoded before Basic.
		"special": {Secret: "p+ss/w=rd&x y%zz", Scopes: []string{"webhooks"}},
	}
	h.Tokens = &TokenStore{SaveTokenFn: func(_ context.Context, hash []byte, client string, scopes []string, expires, now time.Time) error {
		saved = append(saved, savedToken{hash: hash, client: client, scopes: scopes, ttl: expires.Sub(now)})
		return nil
	}}
	return e, &saved
}

type savedToken struct {
	hash   []byte
	client string
	scopes []string
	ttl    time.Duration
}

// tokenRequest is a POST to the token endpoint.
func tokenRequest(query, ctype, body string, basicID, basicSecret string) *http.Request {
	u := "/oauth/token"
	if query != "" {
		u += "?" + query
	}
	req := httptest.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	return req
}

const formType = "application/x-www-form-urlencoded"

func TestOAuth2_Token(t *testing.T) {
	e, saved := tokenServer(t)
	for _, tt := range []struct {
		name, ctype, body string
		basicID, secret   string
		scope             string
	}{
		{"InBody", formType, "grant_type=client_credentials&client_id=bloomreach&client_secret=s3cret", "", "", "webhooks crm"},
		{"InBasic", formType, "grant_type=client_credentials", "bloomreach", "s3cret", "webhooks crm"},
		{"NarrowerScope", formType, "grant_type=client_credentials&scope=crm", "bloomreach", "s3cret", "crm"},
		{"ReservedCharsInBasic", formType, "grant_type=client_credentials", "special", "p+ss/w=rd&x y%zz", "webhooks"},
		{"ReservedCharsInBody", formType + "; charset=utf-8", "grant_type=client_credentials&client_id=special&client_secret=" + url.QueryEscape("p+ss/w=rd&x y%zz"), "", "", "webhooks"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(e, tokenRequest("", tt.ctype, tt.body, tt.basicID, tt.secret))
			var tok struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
				Scope       string `json:"scope"`
			}
			json.Unmarshal(a.body, &tok)
			// RFC 6749 section 5.1: no-store, token_type, expires_in.
			if a.status != 200 || a.header.Get("Cache-Control") != "no-store" || tok.TokenType != "Bearer" || tok.AccessToken == "" ||
				tok.ExpiresIn != 3600 || tok.Scope != tt.scope {
				t.Fatalf("got %d Cache-Control=%q %s, want 200 no-store Bearer scope %q", a.status, a.header.Get("Cache-Control"), a.body, tt.scope)
			}
			// Only the token's hash reaches the store.
			last := (*saved)[len(*saved)-1]
			if sum := sha256.Sum256([]byte(tok.AccessToken)); string(last.hash) != string(sum[:]) || last.ttl != time.Hour || strings.Join(last.scopes, " ") != tt.scope {
				t.Fatalf("saved %+v, want the token's SHA-256, an hour, scope %q", last, tt.scope)
			}
		})
	}
	n := len(*saved)
	for _, tt := range []struct {
		name            string
		query           string
		ctype, body     string
		basicID, secret string
		status          int
		code, says      string
	}{
		{"ErrWrongSecret", "", formType, "grant_type=client_credentials", "bloomreach", "s3cretX", 401, "invalid_client", ""},
		{"ErrWrongSecretInBody", "", formType, "grant_type=client_credentials&client_id=bloomreach&client_secret=x", "", "", 401, "invalid_client", ""},
		{"ErrUnknownClient", "", formType, "grant_type=client_credentials&client_id=nobody&client_secret=s3cret", "", "", 401, "invalid_client", ""},
		// Credentials only from the body or Basic, never from the URL,
		// which ends up in access logs (RFC 6749 section 2.3.1).
		{"ErrCredentialsInURL", "client_id=bloomreach&client_secret=s3cret&grant_type=client_credentials", formType, "", "", "", 401, "invalid_client", ""},
		{"ErrGrantPassword", "", formType, "grant_type=password&username=u&password=p", "bloomreach", "s3cret", 400, "unsupported_grant_type", ""},
		{"ErrScopeNotGranted", "", formType, "grant_type=client_credentials&scope=webhooks+admin", "bloomreach", "s3cret", 400, "invalid_scope", "admin"},
		{"ErrBadEscape", "", formType, "grant_type=%zz", "bloomreach", "s3cret", 400, "invalid_request", formType},
		{"ErrTooLarge", "", formType, "grant_type=client_credentials&pad=" + strings.Repeat("x", 70<<10), "bloomreach", "s3cret", 413, "invalid_request", "65536-byte limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(e, tokenRequest(tt.query, tt.ctype, tt.body, tt.basicID, tt.secret))
			var got struct {
				Error string `json:"error"`
				Desc  string `json:"error_description"`
			}
			if err := json.Unmarshal(a.body, &got); err != nil {
				t.Fatalf("%d answer is not JSON: %q", a.status, a.body)
			}
			// RFC 6749 section 5.2's format, which OAuth clients parse.
			if a.status != tt.status || got.Error != tt.code || !strings.Contains(got.Desc, tt.says) || a.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("got %d %s, want %d %s naming %q", a.status, a.body, tt.status, tt.code, tt.says)
			}
			if tt.status == 401 && a.header.Get("WWW-Authenticate") != `Basic realm="hookbay"` {
				t.Fatalf("WWW-Authenticate=%q, want a Basic challenge", a.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(a.body), "s3cret") {
				t.Fatalf("answer repeats the secret: %s", a.body)
			}
		})
	}
	if len(*saved) != n {
		t.Fatalf("refused token requests saved %d tokens", len(*saved)-n)
	}
}
