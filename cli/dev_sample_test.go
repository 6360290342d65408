package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// trustingClient is an HTTPS client that trusts the CA certificate in the
// file at path (dev mode's generated CA), and nothing else.
func trustingClient(t *testing.T, path string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", path)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
		Timeout: 10 * time.Second}
}

// bannerBloomreach finds the sample webhook's URL and generated Basic
// credentials in the dev banner.
var bannerBloomreach = regexp.MustCompile(`Bloomreach webhook:\s+(\S+) \(Basic auth (\S+) / (\S+)\)`)

// Dev mode's sample Bloomreach webhook, reached over HTTPS that trusts the
// generated CA, accepts a customer sent with the generated Basic
// credentials, with the contract's 200 success reply, and refuses one
// without them, or with a wrong password, with 401 (Bloomreach "Creating
// API endpoint for webhooks", "Response codes").
func TestServe_DevBloomreachSample(t *testing.T) {
	dir := t.TempDir()
	out, stop := startServe(t, "--data", dir, "--listen", "127.0.0.1:0")
	defer stop()
	banner := out.String()
	hook, ca := bannerBloomreach.FindStringSubmatch(banner), bannerCA.FindStringSubmatch(banner)
	if hook == nil || ca == nil {
		t.Fatalf("banner lacks the Bloomreach sample webhook or the CA:\n%s", banner)
	}
	base, ok := strings.CutSuffix(hook[1], brPath+"/sample")
	if !ok || !strings.HasPrefix(base, "https://localhost:") {
		t.Fatalf("sample webhook URL=%s, want https://localhost:PORT%s/sample", hook[1], brPath)
	}
	var creds Credentials
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "credentials.json"))), &creds); err != nil {
		t.Fatal(err)
	}
	if creds.BloomreachUser == "" || creds.BloomreachPassword == "" || hook[2] != creds.BloomreachUser || hook[3] != creds.BloomreachPassword {
		t.Fatalf("banner prints Basic auth %s / %s, credentials.json holds %q / %q", hook[2], hook[3], creds.BloomreachUser, creds.BloomreachPassword)
	}

	client := trustingClient(t, ca[1])
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	do := func(r brReq) answer {
		t.Helper()
		a, err := brDo(client, base, r)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	body := `{"phone":"+420777000111","text":"hello from the sample"}`
	a := do(brReq{name: "sample", id: "dev-br-1", body: body, auth: basic(creds.BloomreachUser, creds.BloomreachPassword)})
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("with the generated credentials: got %d (%s) %s, want 200 JSON", a.status, a.header.Get("Content-Type"), a.body)
	}
	if r := a.brReply(t); !r.Success || len(r.Errors) != 0 || r.Result["status"] != "accepted" || r.Result["request_id"] != "dev-br-1" {
		t.Fatalf("reply %s: want success with the request ID of X-Request-ID", a.body)
	}

	for _, tt := range []struct{ name, auth string }{
		{"NoAuth", "-"},
		{"WrongPassword", basic(creds.BloomreachUser, creds.BloomreachPassword+"x")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := do(brReq{name: "sample", id: "dev-br-" + tt.name, body: body, auth: tt.auth})
			if a.status != http.StatusUnauthorized || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("got %d (WWW-Authenticate %q) %s, want 401 with a Basic challenge", a.status, a.header.Get("WWW-Authenticate"), a.body)
			}
			if r := a.brReply(t); r.Success {
				t.Fatalf("refusal reads as a success: %s", a.body)
			}
		})
	}
}
