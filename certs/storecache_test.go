package certs_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"golang.org/x/crypto/acme/autocert"

	"github.com/hookbay/hookbay/certs"
	"github.com/hookbay/hookbay/certs/certstest"
)

// errNoEntry is mapStore's miss, as a store's own not-found error.
var errNoEntry = errors.New("no such entry")

// mapStore is a certs.CacheStore in memory; fail, when set, is what every
// call returns.
type mapStore struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail error
}

func newMapStore() *mapStore { return &mapStore{m: map[string][]byte{}} }

func (s *mapStore) CacheGet(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	data, ok := s.m[key]
	if !ok {
		return nil, errNoEntry
	}
	return slices.Clone(data), nil
}

func (s *mapStore) CachePut(_ context.Context, key string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.m[key] = slices.Clone(data)
	return nil
}

func (s *mapStore) CacheDelete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	delete(s.m, key)
	return nil
}

func (s *mapStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ks []string
	for k := range s.m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func isNoEntry(err error) bool { return errors.Is(err, errNoEntry) }

func TestStoreCache(t *testing.T) {
	ctx := context.Background()

	t.Run("ErrCacheMiss", func(t *testing.T) {
		c := certs.NewStoreCache(newMapStore(), isNoEntry)
		// autocert compares with ==: the sentinel itself, not wrapped.
		if _, err := c.Get(ctx, "hookbay.test"); err != autocert.ErrCacheMiss {
			t.Fatalf("get a missing entry: %v, want autocert.ErrCacheMiss itself", err)
		}
	})

	t.Run("OK", func(t *testing.T) {
		s := newMapStore()
		c := certs.NewStoreCache(s, isNoEntry)
		if err := c.Put(ctx, "acme_account+key", []byte("key")); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, "acme_account+key"); err != nil || string(got) != "key" {
			t.Fatalf("get: %q, %v; want key", got, err)
		}
		if err := c.Delete(ctx, "acme_account+key"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, "acme_account+key"); err != autocert.ErrCacheMiss {
			t.Fatalf("get after delete: %v, want autocert.ErrCacheMiss", err)
		}
	})

	t.Run("StoreDown", func(t *testing.T) {
		// Any other error is no miss: autocert must not order a
		// certificate because the store did not answer.
		down := errors.New("connection refused")
		s := newMapStore()
		s.fail = down
		c := certs.NewStoreCache(s, isNoEntry)
		if _, err := c.Get(ctx, "hookbay.test"); !errors.Is(err, down) || errors.Is(err, autocert.ErrCacheMiss) {
			t.Errorf("get: %v, want the store's error, not a miss", err)
		}
		if err := c.Put(ctx, "hookbay.test", []byte("x")); !errors.Is(err, down) {
			t.Errorf("put: %v, want the store's error", err)
		}
		if err := c.Delete(ctx, "hookbay.test"); !errors.Is(err, down) {
			t.Errorf("delete: %v, want the store's error", err)
		}
	})
}

// A manager on a store cache obtains a certificate, a first start's misses
// answered as autocert expects; a second manager on the same store (a
// replica) serves it without placing an order.
func TestACME_StoreCache(t *testing.T) {
	t.Parallel()
	ln1, port := listenLoopback(t)
	p := certstest.StartPebble(t, certstest.PebbleConfig{TLSPort: port, HTTPPort: certstest.ClosedPort(t)})
	s := newMapStore()
	withStore := func(o *certs.ACMEOptions) { o.Cache = certs.NewStoreCache(s, isNoEntry) }
	a1 := newTestACME(t, p, "", withStore)
	serveOn(t, ln1, a1.TLSConfig(), nil)
	ensure(t, a1)
	if got := s.keys(); !slices.Contains(got, "acme_account+key") || !slices.Contains(got, testHost) {
		t.Fatalf("store holds %q, want the account key and %s", got, testHost)
	}

	a2 := newTestACME(t, p, "", withStore)
	ln2, _ := listenLoopback(t)
	serveOn(t, ln2, a2.TLSConfig(), nil)
	took := ensure(t, a2)
	t.Logf("figures: a second manager was ready from the store cache in %v", took)
	if p.Orders() != 1 || a2.Status().Orders != 0 {
		t.Errorf("Pebble orders %d, second manager's %d: want 1 and 0", p.Orders(), a2.Status().Orders)
	}
	want := a1.Status().Hosts[0].Serial
	if leaf := verifiedLeaf(t, ln2.Addr().String(), p); leaf.SerialNumber.Text(16) != want {
		t.Errorf("second manager serves serial %s, want %s", leaf.SerialNumber.Text(16), want)
	}
}
