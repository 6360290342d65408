package hooks

import (
	"encoding/json"
	"net/http"
	"reflect"
	"runtime"
	"strings"
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
			got := AppendHeaderJSON(nil, h)
			if string(got) != string(want) {
				t.Fatalf("AppendHeaderJSON(%q) = %s, json.Marshal gives %s", h, got, want)
			}
			// Read back as json.Unmarshal reads it (invalid UTF-8 was
			// written as U+FFFD, so that is what comes back).
			var back http.Header
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if dec, err := DecodeHeaderJSON(string(got)); err != nil || !reflect.DeepEqual(dec, back) {
				t.Fatalf("DecodeHeaderJSON(%s) = %#v, %v; json.Unmarshal gives %#v", got, dec, err, back)
			}
		}
	})
}

// FuzzDecodeHeaderJSON checks the header decoder against json.Unmarshal on
// any input: the same headers (nil and empty told apart) or an error from
// both.
func FuzzDecodeHeaderJSON(f *testing.F) {
	for _, seed := range []string{
		`null`, `{}`, `{"A":null}`, `{"A":[]}`, `{"A":["b"],"C":["d","e"]}`, `{"A":["b"],"A":["c"]}`,
		`{"A":["b"]} `, `{"A":["b"]}x`, `{"A":["b",]}`, `{"A":["b"],}`, `{"A":nul}`, `{"A":["b"]`, `{"A" :["b"]}`,
		`{"A":["\u003c"]}`, `{"A":["\u00e9"]}`, `{"A":["<>&"]}`, "{\"A\":[\"\xff\"]}", "{\"A\":[\"\t\"]}",
		`{"A":"b"}`, `[]`, `""`, `{"A":[null]}`, `{"A":[1]}`, `{`, `}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Add(AppendHeaderJSON(nil, http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r-1"}, "Accept": {"*/*", "x"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want http.Header
		werr := json.Unmarshal(b, &want)
		got, err := DecodeHeaderJSON(string(b))
		switch {
		case (err == nil) != (werr == nil):
			t.Fatalf("DecodeHeaderJSON(%q): error %v, json.Unmarshal: %v", b, err, werr)
		case err == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("DecodeHeaderJSON(%q) = %#v, json.Unmarshal gives %#v", b, got, want)
		}
	})
}

// TestDecodeHeaderJSON_HostileValue: a value full of `":` (a sender's
// header, stored escaped, so off the fast path) must not size the decoded
// map by its count: without the cap this took 13 times the bytes
// json.Unmarshal takes.
func TestDecodeHeaderJSON_HostileValue(t *testing.T) {
	s := string(AppendHeaderJSON(nil, http.Header{"X-Note": {strings.Repeat(`":`, 4096)}}))
	perCall := func(f func()) uint64 {
		const n = 20
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range n {
			f()
		}
		runtime.ReadMemStats(&m1)
		return (m1.TotalAlloc - m0.TotalAlloc) / n
	}
	ours := perCall(func() {
		if _, err := DecodeHeaderJSON(s); err != nil {
			t.Fatal(err)
		}
	})
	theirs := perCall(func() {
		var h http.Header
		if err := json.Unmarshal([]byte(s), &h); err != nil {
			t.Fatal(err)
		}
	})
	if ours > 3*theirs {
		t.Errorf("DecodeHeaderJSON allocates %d bytes a call for a value of 4,096 `\":`, json.Unmarshal %d", ours, theirs)
	}
}

// storedHeaders is what a forwarded hook's record typically holds.
var storedHeaders = AppendHeaderJSON(nil, http.Header{
	"Accept-Encoding": {"gzip"}, "Authorization": {"[redacted]"}, "Content-Length": {"612"},
	"Content-Type": {"application/json"}, "User-Agent": {"Go-http-client/1.1"}, "X-Bh-Urgency": {"urgent"},
	"X-Request-Id": {"pace-1733500000000000000-123456"}, "X-Forwarded-For": {"203.0.113.7"},
})

// BenchmarkDecodeHeaders compares DecodeHeaderJSON with json.Unmarshal on
// a record's headers as SQLite's driver returns them, bytes.
func BenchmarkDecodeHeaders(b *testing.B) {
	b.Run("DecodeHeaderJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeHeaderJSON(string(storedHeaders)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var h http.Header
			if err := json.Unmarshal(storedHeaders, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
