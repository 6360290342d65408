package storetest

import (
	"slices"
	"testing"
	"time"
)

func testTokens(t *testing.T, b Backend) {
	e := newEnv(t, b)
	ctx := t.Context()
	live, expired := []byte("live-token-hash"), []byte("expired-token-hash")
	if err := e.s.SaveToken(ctx, expired, "old-client", []string{"a"}, e.now().Add(-time.Hour), e.now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveToken(ctx, live, "client-1", []string{"bloomreach:send", "bloomreach:read"}, e.now().Add(time.Hour), e.now()); err != nil {
		t.Fatal(err)
	}
	client, scopes, err := e.s.TokenClient(ctx, live, e.now())
	if err != nil || client != "client-1" || !slices.Equal(scopes, []string{"bloomreach:send", "bloomreach:read"}) {
		t.Fatalf("live token: got %q %q, %v; want client-1 with its scopes", client, scopes, err)
	}
	for name, hash := range map[string][]byte{"expired": expired, "unknown": []byte("nope")} {
		if client, scopes, err := e.s.TokenClient(ctx, hash, e.now()); err != nil || client != "" || scopes != nil {
			t.Errorf("%s token: got %q %q, %v; want no client", name, client, scopes, err)
		}
	}
}
