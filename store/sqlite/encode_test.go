package sqlite

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzAppendHeaderJSON checks the header encoder against json.Marshal, byte
// for byte: stored records written before it must read the same.
func FuzzAppendHeaderJSON(f *testing.F) {
	f.Add("Content-Type", "application/json", "X-Request-Id", "req-1", "")
	f.Add("Authorization", "Bearer [redacted]", "X-Note", "a \"quoted\" <tag> & \\ back", "\x00\xff\u2028é")
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, v3 string) {
		for _, h := range []http.Header{
			nil, {}, {k1: nil}, {k1: {}}, {k1: {v1}}, {k1: {v1, v2}, k2: {v3}}, {k2: {v1}, k1: {v2, v3, v1}, "A": {""}},
		} {
			want, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendHeaderJSON(nil, h); string(got) != string(want) {
				t.Fatalf("appendHeaderJSON(%q) = %s, json.Marshal gives %s", h, got, want)
			}
		}
	})
}
