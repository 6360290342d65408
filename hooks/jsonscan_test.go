package hooks

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestObjectMember(t *testing.T) {
	for _, tt := range []struct {
		body, key, want string
	}{
		{`{"code":"SAVE10"}`, "code", `"SAVE10"`},
		{` { "title" : "t" , "code" : "A\"B" } `, "code", `"A\"B"`},
		{`{"a":{"code":"inner"},"b":["code",{"code":1}],"code":"outer"}`, "code", `"outer"`},
		{`{"a":{"code":"inner"}}`, "code", ``},
		{`{"code":"first","code":"last"}`, "code", `"last"`},
		{`{"\u0063ode":"escaped key"}`, "code", `"escaped key"`},
		{"{\"\xff\":1}", "\ufffd", `1`},
		{`{"code":12.5e3}`, "code", `12.5e3`},
		{`{"code":null,"x":true}`, "code", `null`},
		{`{"code":{"nested":"}"}}`, "code", `{"nested":"}"}`},
		{`{"s":"a \\\" { [ ","code":[1,[2]]}`, "code", `[1,[2]]`},
		{`{}`, "code", ``},
		{`[{"code":"x"}]`, "code", ``},
		{`{"code":"x"`, "code", ``},
		{`{"code" "x"}`, "code", ``},
		{`{"code":}`, "code", ``},
		{`{"code":"unterminated}`, "code", ``},
		{``, "code", ``},
	} {
		if got := objectMember([]byte(tt.body), tt.key); string(got) != tt.want {
			t.Errorf("objectMember(%s, %q) = %q, want %q", tt.body, tt.key, got, tt.want)
		}
	}
}

// FuzzObjectMember checks the top-level scanner against encoding/json: on
// every valid object it finds what decoding into a map finds, and on any
// input it neither panics nor reads out of bounds.
func FuzzObjectMember(f *testing.F) {
	for _, s := range []string{
		`{"code":"SAVE10","title":"10% off","amount":{"amount":"10.00","currency":"USD"},"max_uses":1}`,
		`{"a":[{"code":"x"}],"code":"y"}`, `{"code":"a","code":"b"}`, `{"\u0063ode":1}`, `{}`, `[]`, `{"a":"\\"}`,
		`{"code":"x"`, `{"a":[}`, " {\"code\" : \"\\u00e9\" } ",
	} {
		f.Add([]byte(s), "code")
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		got := objectMember(body, key)
		t0 := bytes.TrimLeft(body, " \t\r\n")
		if !json.Valid(body) || len(t0) == 0 || t0[0] != '{' {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("valid object did not decode: %v", err)
		}
		if want := m[key]; !bytes.Equal(got, want) {
			t.Fatalf("objectMember(%q, %q) = %q, encoding/json finds %q", body, key, got, want)
		}
	})
}
