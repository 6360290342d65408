package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/store/sqlite"
)

// An injected answer's record redacts the webhook's secret headers and
// keeps the request ID from the webhook's own header, like an accepted one.
func TestFaults_BloomreachRecordRedacted(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) {
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"w": {
			Auth:      config.WebhookAuth{Headers: map[string]string{"X-Br-Token": "supersecret"}},
			RequestID: config.RequestIDConfig{Header: "X-Campaign-Req"},
		}}
	})
	runCmd(t, "faults", "add", "--data", m.Config.Server.DataDir, "--sender", "bloomreach", "--status", "503")
	time.Sleep(700 * time.Millisecond)
	req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/bloomreach/w", strings.NewReader(`{}`))
	req.Header.Set("X-Br-Token", "supersecret")
	req.Header.Set("X-Campaign-Req", "camp-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("injected: %v %v", resp, err)
	}
	resp.Body.Close()
	recs := requests(t, m, sqlite.RequestFilter{RequestID: "camp-1"})
	if len(recs) != 1 || recs[0].Header.Get("X-Br-Token") != "[redacted]" {
		t.Fatalf("injected record: %+v", recs)
	}
}

// The token endpoint takes client credentials from the body or a Basic
// header, never from the URL (RFC 6749 section 2.3.1).
func TestOAuth2_NoCredentialsInURL(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) {
		c.Bloomreach.OAuth2.Clients = []config.OAuth2Client{{ID: "bloomreach", Secret: "s3cret"}}
	})
	resp, err := http.Post("http://"+m.Addr()+"/oauth/token?client_id=bloomreach&client_secret=s3cret&grant_type=client_credentials",
		"application/x-www-form-urlencoded", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("credentials in the URL: %d, want 401", resp.StatusCode)
	}
}

// A webhook may require scopes: a token granted only others is refused.
func TestOAuth2_WebhookScopes(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) {
		c.Bloomreach.OAuth2.Clients = []config.OAuth2Client{{ID: "a", Secret: "s", Scopes: []string{"webhooks", "crm"}}}
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"crm": {Auth: config.WebhookAuth{OAuth2: &config.OAuth2Auth{Scopes: []string{"crm"}}}}}
	})
	token := func(scope string) string {
		resp, err := http.Post("http://"+m.Addr()+"/oauth/token", "application/x-www-form-urlencoded",
			strings.NewReader("grant_type=client_credentials&client_id=a&client_secret=s&scope="+scope))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		return tok.AccessToken
	}
	for scope, want := range map[string]int{"crm": 200, "webhooks": 401} {
		req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/bloomreach/crm", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token(scope))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("token with scope %s: %d, want %d", scope, resp.StatusCode, want)
		}
	}
}
