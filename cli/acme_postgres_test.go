package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/certs/certstest"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// acmePostgresYAML is acmeYAML on the PostgreSQL store at url, with
// cacheDir as server.tls.acme.cache_dir when it is not empty.
func acmePostgresYAML(port int, dataDir string, p *certstest.Pebble, apiRoot, url, cacheDir string) string {
	y := acmeYAML(port, dataDir, p, apiRoot)
	if cacheDir != "" {
		y = strings.Replace(y, "      accept_tos: true\n", fmt.Sprintf("      accept_tos: true\n      cache_dir: %s\n", cacheDir), 1)
	}
	return y + fmt.Sprintf("store: {postgres: {url: %q}}\n", url)
}

// acmeCacheKeys returns the keys of the schema's ACME cache table.
func acmeCacheKeys(t *testing.T, s *pgtest.Schema) []string {
	t.Helper()
	rows, err := s.Conn(t).Query(context.Background(), `SELECT key FROM acme_cache ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Two hookbay replicas on one PostgreSQL store, each with a data directory
// of its own, share one certificate: the first obtains it from the CA
// (Pebble) and keeps it in the store, not in its data directory; the
// second, started while the first serves, serves the same certificate to a
// client that trusts only the CA's root, without a new order.
func TestACME_PostgresSharedCache(t *testing.T) {
	t.Parallel()
	schema := pgtest.New(t)
	port1 := freeLoopbackPort(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port1, HTTPPort: certstest.ClosedPort(t), CommonName: true})
	apiRoot := p.APIRootFile(t)

	data1 := t.TempDir()
	log1 := newLogSink(t)
	_, took := runMainFromFile(t, writeHookbayYAML(t, acmePostgresYAML(port1, data1, p, apiRoot, schema.URL(), "")), log1)
	t.Logf("figures: a hookbay on PostgreSQL started with a new certificate in %v", took)
	if got := p.Orders(); got != 1 {
		t.Fatalf("Pebble orders %d after the first start, want 1", got)
	}
	if !strings.Contains(log1.String(), "ACME cache in the PostgreSQL store") || !strings.Contains(log1.String(), "from=CA") {
		t.Errorf("the first log does not say the cache is the store and the certificate came from the CA:\n%s", log1)
	}
	if keys := acmeCacheKeys(t, schema); !slices.Contains(keys, "acme_account+key") || !slices.Contains(keys, acmeTestHost) {
		t.Fatalf("acme_cache holds %q, want the account key and %s", keys, acmeTestHost)
	}
	if _, err := os.Stat(filepath.Join(data1, "acme")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the data directory has an acme directory (%v); the cache is the store", err)
	}

	// The second replica: another port, another empty data directory.
	port2 := freeLoopbackPort(t)
	data2 := t.TempDir()
	log2 := newLogSink(t)
	m2, took := runMainFromFile(t, writeHookbayYAML(t, acmePostgresYAML(port2, data2, p, apiRoot, schema.URL(), "")), log2)
	t.Logf("figures: a second replica on the same PostgreSQL store was ready from the shared certificate in %v", took)
	if got := p.Orders(); got != 1 {
		t.Errorf("Pebble orders %d after the second start, want still 1", got)
	}
	if st := m2.acme.Status(); st.Orders != 0 || !st.Ready {
		t.Errorf("second replica's status %+v: want ready, no order", st)
	}
	if !strings.Contains(log2.String(), "from=stored") {
		t.Errorf("the second log does not say the certificate was stored:\n%s", log2)
	}
	if _, err := os.Stat(filepath.Join(data2, "acme")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the second data directory has an acme directory (%v); the cache is the store", err)
	}

	// Both serve it, verified against Pebble's root alone.
	resp1, _ := acmeGet(t, tlsClient(port1, p.Roots), "/readyz")
	resp2, body := acmeGet(t, tlsClient(port2, p.Roots), "/readyz")
	if resp2.StatusCode != 200 || !strings.Contains(body, `"certificate":"ok"`) {
		t.Errorf("/readyz of the second replica: %d %s", resp2.StatusCode, body)
	}
	chain := resp2.TLS.VerifiedChains[0]
	if !chain[len(chain)-1].Equal(p.Root) {
		t.Errorf("the second replica's chain ends at %q, want Pebble's root", chain[len(chain)-1].Subject)
	}
	leaf1, leaf2 := resp1.TLS.PeerCertificates[0], resp2.TLS.PeerCertificates[0]
	if !leaf2.Equal(leaf1) {
		t.Errorf("second replica serves serial %s, first %s: want one certificate", leaf2.SerialNumber.Text(16), leaf1.SerialNumber.Text(16))
	}
}

// With PostgreSQL, a cache_dir in the config is kept, with a warning that
// replicas do not share it: the certificate is kept in that directory and
// none in the store.
func TestACME_PostgresCacheDir(t *testing.T) {
	t.Parallel()
	schema := pgtest.New(t)
	port := freeLoopbackPort(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t)})
	cacheDir := filepath.Join(t.TempDir(), "certs")

	log := newLogSink(t)
	runMainFromFile(t, writeHookbayYAML(t, acmePostgresYAML(port, t.TempDir(), p, p.APIRootFile(t), schema.URL(), cacheDir)), log)
	if got := p.Orders(); got != 1 {
		t.Fatalf("Pebble orders %d, want 1", got)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "not in the PostgreSQL store") {
		t.Errorf("no warning that the cache directory is not shared:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(cacheDir, acmeTestHost)); err != nil {
		t.Errorf("the certificate is not in cache_dir: %v", err)
	}
	if keys := acmeCacheKeys(t, schema); len(keys) != 0 {
		t.Errorf("acme_cache holds %q, want nothing", keys)
	}
	if resp, _ := acmeGet(t, tlsClient(port, p.Roots), "/readyz"); resp.StatusCode != 200 {
		t.Errorf("/readyz: %d", resp.StatusCode)
	}
}
