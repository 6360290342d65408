package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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

func TestMember(t *testing.T) {
	for _, tt := range []struct {
		body, key, want string
	}{
		{`{"success":true}`, "success", `true`},
		{`{"SUCCESS":true}`, "success", ``},
		{`{"Success":false,"success":true}`, "success", `true`},
		{`{"success":true} trailing`, "success", ``},
		{`{"success":tru}`, "success", ``},
		{`[{"success":true}]`, "success", ``},
		{`{"a":{"success":true}}`, "success", ``},
		{``, "success", ``},
	} {
		if got := Member([]byte(tt.body), tt.key); string(got) != tt.want {
			t.Errorf("Member(%s, %q) = %q, want %q", tt.body, tt.key, got, tt.want)
		}
	}
}

func TestCheckText(t *testing.T) {
	for _, tt := range []struct {
		body string
		at   int // -1: valid
	}{
		{`{"a":"caf\u00e9"}`, -1},
		{"{\"a\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", -1},
		{"{\"a\":\"\xff\"}", 6},
		{"{\"a\":\"caf\xc3\"}", 9},
		{"\xed\xa0\x80", 0}, // an encoded surrogate is not UTF-8
		{"", -1},
	} {
		err := CheckText([]byte(tt.body))
		if tt.at < 0 {
			if err != nil {
				t.Errorf("CheckText(%q) = %v, want nil", tt.body, err)
			}
			continue
		}
		if ErrorCode(err) != EINVALID || !bytes.Contains([]byte(ErrorMessage(err)), []byte(fmt.Sprintf("byte %d", tt.at))) {
			t.Errorf("CheckText(%q) = %v, want EINVALID naming byte %d", tt.body, err, tt.at)
		}
	}
}

func TestCheckNumbers(t *testing.T) {
	long := strings.Repeat("7", MaxNumberLength)
	for _, tt := range []struct {
		body string
		ok   bool
		says string
	}{
		{`{"n":1,"f":-1.5e300,"z":0,"s":"` + strings.Repeat("9", 5000) + `"}`, true, ""},
		{`{"n":` + long + `}`, true, ""},
		{`{"n":` + long + `1}`, false, "/n"},
		{`{"a":[1,{"b~/c":` + long + `1}]}`, false, "/a/1/b~0~1c"},
		{`{"n":1e400}`, true, ""},
		{`{"n":1e-400}`, true, ""},
		{`{"n":1E+401}`, false, "exponent"},
		{`{"n":1e-1000000000}`, false, "exponent"},
		{`{"n":1e00000000000000000000400}`, true, ""},
		{`[` + long + `1]`, false, "/0"},
		{long + `1`, false, "the body"},
	} {
		doc := decodeNumbers(t, tt.body)
		err := CheckNumbers(doc)
		if tt.ok {
			if err != nil {
				t.Errorf("CheckNumbers(%.60s) = %v, want nil", tt.body, err)
			}
			continue
		}
		if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), tt.says) {
			t.Errorf("CheckNumbers(%.60s) = %v, want EINVALID naming %q", tt.body, err, tt.says)
		}
	}
}

// decodeNumbers decodes as the JSON Schema library does: numbers as
// json.Number.
func decodeNumbers(t *testing.T, body string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPointerValueAndReplace(t *testing.T) {
	doc := decodeNumbers(t, `{"a":{"b/c":[1,{"d~":"x"}]},"m":[]}`)
	for _, tt := range []struct {
		ptr  string
		want string
		ok   bool
	}{
		{"", `{"a":{"b/c":[1,{"d~":"x"}]},"m":[]}`, true},
		{"/a/b~1c/1/d~0", `"x"`, true},
		{"/a/b~1c/0", `1`, true},
		{"/a/b~1c/2", ``, false},
		{"/a/x", ``, false},
		{"a", ``, false},
	} {
		v, ok := PointerValue(doc, tt.ptr)
		got, _ := json.Marshal(v)
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("PointerValue(%q) = %s, %v; want %s, %v", tt.ptr, got, ok, tt.want, tt.ok)
		}
	}
	old, ok := ReplacePointer(doc, "/a/b~1c", []any{})
	if b, _ := json.Marshal(doc); !ok || string(b) != `{"a":{"b/c":[]},"m":[]}` {
		t.Fatalf("ReplacePointer: %s, %v", b, ok)
	}
	ReplacePointer(doc, "/a/b~1c", old)
	if b, _ := json.Marshal(doc); string(b) != `{"a":{"b/c":[1,{"d~":"x"}]},"m":[]}` {
		t.Fatalf("put back: %s", b)
	}
	if _, ok := ReplacePointer(doc, "/m/0", 1); ok {
		t.Fatal("ReplacePointer past an array's end succeeded")
	}
	if _, ok := ReplacePointer(doc, "", 1); ok {
		t.Fatal("ReplacePointer of the root succeeded")
	}
}

// decodedPointer resolves a pointer by decoding, level by level, into maps
// and slices of json.RawMessage: the reading RawPointer and RawItems must
// agree with.
func decodedPointer(doc []byte, ptr string) (json.RawMessage, bool) {
	toks, ok := pointerTokens(ptr)
	if !ok {
		return nil, false
	}
	cur := json.RawMessage(doc)
	for _, tok := range toks {
		var obj map[string]json.RawMessage
		if json.Unmarshal(cur, &obj) == nil {
			next, ok := obj[tok]
			if !ok {
				return nil, false
			}
			cur = next
			continue
		}
		var arr []json.RawMessage
		if json.Unmarshal(cur, &arr) != nil {
			return nil, false
		}
		i, err := strconv.Atoi(tok)
		if err != nil || i < 0 || i >= len(arr) {
			return nil, false
		}
		cur = arr[i]
	}
	return cur, true
}

// decodedItems splits the array a pointer points at by decoding.
func decodedItems(doc []byte, ptr string) ([]json.RawMessage, bool) {
	raw, ok := decodedPointer(doc, ptr)
	var items []json.RawMessage
	if !ok || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) || json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	return items, true
}

func TestRawItems(t *testing.T) {
	for _, tt := range []struct {
		body, ptr string
		want      []string // nil: not found or not an array
	}{
		{`{"messages":[{"id":1}, "x" ,2,null,[],{"a":"]"}]}`, "/messages", []string{`{"id":1}`, `"x"`, `2`, `null`, `[]`, `{"a":"]"}`}},
		{` { "m" : [ ] } `, "/m", []string{}},
		{`{"m":[1],"m":[2,3]}`, "/m", []string{`2`, `3`}},
		{`{"a":{"b/c":[{"m":["x","y"]}]}}`, "/a/b~1c/0/m", []string{`"x"`, `"y"`}},
		{`{"a":[[1],[2,[3]]]}`, "/a/1", []string{`2`, `[3]`}},
		{`{"a":[[1],[2]]}`, "/a/+1", []string{`2`}},
		{`{"a":[[1],[2]]}`, "/a/2", nil},
		{`{"a":[[1],[2]]}`, "/a/-1", nil},
		{`{"m":{"0":1}}`, "/m", nil},
		{`{"m":"[1]"}`, "/m", nil},
		{`{"m":null}`, "/m", nil},
		{`{"x":[1]}`, "/m", nil},
		{`[[1]]`, "/m", nil},
		{`{"\u006d":[1]}`, "/m", []string{`1`}},
		{`{"m":[1]}`, "m", nil},
	} {
		got, at, ok := RawItems([]byte(tt.body), tt.ptr)
		if ok != (tt.want != nil) || len(got) != len(tt.want) || len(at) != len(got) {
			t.Errorf("RawItems(%s, %q) = %q, %v, %v; want %q", tt.body, tt.ptr, got, at, ok, tt.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Errorf("RawItems(%s, %q)[%d] = %q, want %q", tt.body, tt.ptr, i, got[i], tt.want[i])
			}
			if a := at[i]; a < 0 || a+len(got[i]) > len(tt.body) || tt.body[a:a+len(got[i])] != string(got[i]) {
				t.Errorf("RawItems(%s, %q): item %d %q said to start at %d", tt.body, tt.ptr, i, got[i], a)
			}
		}
	}
	// The items share the body; appending to one must not write over the next.
	body := []byte(`{"m":[1,2]}`)
	items, _, _ := RawItems(body, "/m")
	_ = append(items[0], 'x')
	if string(body) != `{"m":[1,2]}` || string(items[1]) != `2` {
		t.Fatalf("append to an item wrote into the body: %s", body)
	}
}

// FuzzRawItems checks the scanning RawItems and RawPointer against
// decoding: on valid JSON they find the same bytes; RawPointer refuses
// what is not valid JSON; neither panics on any input.
func FuzzRawItems(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"id":1,"phone":"+1"},"x",2,null]}`, `{"m":[1],"m":[2]}`, `{"a":{"b/c":[[1,2]]}}`,
		`{"m":[ "\"]" , {"a":[]} ]}`, "{\"\xff\":[1]}", `{"m":[1,]}`, `{"m":[`, `[]`, ` {"m" : [] } `,
	} {
		f.Add([]byte(s), "/m")
	}
	f.Add([]byte(`{"a":{"b/c":[[1,2]]}}`), "/a/b~1c/0")
	f.Fuzz(func(t *testing.T, body []byte, ptr string) {
		got, gotOK := RawPointer(body, ptr)
		want, wantOK := decodedPointer(body, ptr)
		if gotOK != wantOK || !bytes.Equal(got, want) {
			t.Fatalf("RawPointer(%q, %q) = %q, %v; decoding finds %q, %v", body, ptr, got, gotOK, want, wantOK)
		}
		items, at, ok := RawItems(body, ptr)
		for i := range items {
			// Where each item starts, on any input.
			if a := at[i]; a < 0 || a+len(items[i]) > len(body) || !bytes.Equal(body[a:a+len(items[i])], items[i]) {
				t.Fatalf("RawItems(%q, %q): item %d %q said to start at %d", body, ptr, i, items[i], a)
			}
		}
		if !json.Valid(body) {
			return
		}
		wantItems, wantOK := decodedItems(body, ptr)
		if ok != wantOK || len(items) != len(wantItems) {
			t.Fatalf("RawItems(%q, %q) = %q, %v; decoding finds %q, %v", body, ptr, items, ok, wantItems, wantOK)
		}
		for i := range items {
			if !bytes.Equal(items[i], wantItems[i]) {
				t.Fatalf("RawItems(%q, %q)[%d] = %q; decoding finds %q", body, ptr, i, items[i], wantItems[i])
			}
		}
	})
}
