package hooks_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hookbay/hookbay/hooks"
)

// firstNonSpace returns the first byte of b that is not JSON whitespace.
func firstNonSpace(b []byte) (byte, bool) {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 {
		return 0, false
	}
	return t[0], true
}

func FuzzCheckObject(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, ` {"a":1} `, "\n\t{\"bhid\":\"evt-1\",\"points\":10}\r\n",
		`[]`, `"s"`, `1`, `-0.5e10`, `null`, `true`, `false`,
		`{`, `{}x`, `{}{}`, `{"a":}`, `{"a":1,}`, "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}",
		`{"code":"SAVE10","title":"10% off","amount":{"amount":"10.00","currency":"USD"},"max_uses":1}`,
		`{"reward_identifier":"r1","reward_title":"Mug","unlock_time":"2025-06-01T12:00:00Z","customer":{"id":"c1"}}`,
		"{\"\xc3\":1}", "{\"a\":\"caf\xc3\xa9\"}", "{\"a\":\"\xed\xa0\x80\"}", `{"a":"\ud800"}`,
		`{"a":` + strings.Repeat("[", hooks.MaxJSONDepth-1) + strings.Repeat("]", hooks.MaxJSONDepth-1) + `}`,
		`{"a":` + strings.Repeat("[", hooks.MaxJSONDepth) + strings.Repeat("]", hooks.MaxJSONDepth) + `}`,
		`{"a":"` + strings.Repeat("[", hooks.MaxJSONDepth+1) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := hooks.CheckObject(body)
		c, nonEmpty := firstNonSpace(body)
		// RFC 8259: one value, UTF-8 (section 8.1); and what encoding/json
		// can decode again, within hookbay's one nesting limit.
		isObject := json.Valid(body) && utf8.Valid(body) && nonEmpty && c == '{' && nesting(body) <= hooks.MaxJSONDepth
		if err == nil && !isObject {
			t.Fatalf("CheckObject(%q): got nil, want an error: not one JSON object", body)
		}
		if err != nil {
			if isObject {
				t.Fatalf("CheckObject(%q): got %v, want nil: a JSON object", body, err)
			}
			if got, want := hooks.ErrorCode(err), hooks.EINVALID; got != want {
				t.Fatalf("CheckObject(%q): code got %q, want %q", body, got, want)
			}
		}
	})
}

// nesting is the deepest nesting of arrays and objects in a valid JSON
// body, read with encoding/json's tokenizer.
func nesting(body []byte) int {
	d := json.NewDecoder(bytes.NewReader(body))
	depth, deepest := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

func FuzzHello1Answer(f *testing.F) {
	for _, s := range []string{
		`{"magic":"abc"}`,
		`{"magic":"6f1c2a7e-9b3d-4c1a-8e2f-0a1b2c3d4e5f"}`,
		` { "magic" : "x" , "other" : [1, 2] } `,
		`{"magic":"esc \" \\ \/ \u00e9 \ud83d\ude00 \n"}`,
		`{"magic":""}`,
		`{"magic":1}`,
		`{"magic":null}`,
		`{"magic":{"a":"b"}}`,
		`{"Magic":"case"}`,
		`{"magic":"a","magic":"b"}`,
		`{}`, `[]`, `null`, ``, `{"magic":"abc"`, `{"magic":"abc"}x`,
		"{\"magic\":\"\xff\xfe\"}",
		`{"magic":"a","MAGIC":"b"}`, `{"MAGIC":"b","magic":"a"}`, `{"Magic":1,"magic":"a"}`,
		// Found by this fuzzer before befad99: json.Marshal re-escaped
		// <, >, & and U+2028/U+2029 in the magic.
		`{"mAgiC":"&"}`,
		"{\"magic\":\"<a&b>\u2028\u2029\"}",
	} {
		f.Add([]byte(s))
	}
	h := mustHooks(f, map[string]hooks.HookSettings{"SendEvent1": {}, "CreateDiscount4": {}})
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := h.Hello1Answer(body)
		if err != nil {
			if got, want := hooks.ErrorCode(err), hooks.EINVALID; got != want {
				t.Fatalf("Hello1Answer(%q): code got %q (%v), want %q", body, got, err, want)
			}
			if out != nil {
				t.Fatalf("Hello1Answer(%q): got output %q with an error", body, out)
			}
			return
		}
		// Bubblehouse's Hooks API reference, Hello1: the same magic string
		// back and the hooks array; the answer is one JSON object that any
		// reader can decode (valid UTF-8).
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("Hello1Answer(%q): got invalid JSON %q", body, out)
		}
		if err := hooks.CheckObject(body); err != nil {
			t.Fatalf("Hello1Answer(%q): accepted input that CheckObject refuses: %v", body, err)
		}
		// The member named exactly magic (a map decodes names exactly and
		// keeps the last repeat); "Magic" is another member.
		var members map[string]json.RawMessage
		if err := json.Unmarshal(body, &members); err != nil {
			t.Fatalf("Hello1Answer(%q): accepted input that does not decode: %v", body, err)
		}
		in := struct{ Magic json.RawMessage }{members["magic"]}
		if len(in.Magic) == 0 || in.Magic[0] != '"' {
			t.Fatalf("Hello1Answer(%q): accepted a magic that is not a string: %s", body, in.Magic)
		}
		var got struct {
			Magic json.RawMessage `json:"magic"`
			Hooks []string        `json:"hooks"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("Hello1Answer(%q): answer %q: %v", body, out, err)
		}
		if !bytes.Equal(got.Magic, in.Magic) {
			t.Fatalf("Hello1Answer(%q): magic got %s, want %s (verbatim)", body, got.Magic, in.Magic)
		}
		if !slices.Equal(got.Hooks, h.Names()) {
			t.Fatalf("Hello1Answer(%q): hooks got %q, want %q", body, got.Hooks, h.Names())
		}
	})
}

func FuzzParseUrgency(f *testing.F) {
	for _, s := range []string{
		"real-time", "urgent", "regular", "Real-Time", "URGENT", " regular ", "\turgent\r\n",
		"", " ", "realtime", "high", "urgent,regular", "real-tİme", "regulaR\u00a0",
	} {
		f.Add(s)
	}
	known := []hooks.Urgency{hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular}
	f.Fuzz(func(t *testing.T, s string) {
		u, ok := hooks.ParseUrgency(s)
		if !slices.Contains(known, u) {
			t.Fatalf("ParseUrgency(%q): got %q, want one of %q", s, u, known)
		}
		if !ok {
			if u != hooks.UrgencyRegular {
				t.Fatalf("ParseUrgency(%q): got %q, false; want regular for an unknown value", s, u)
			}
			return
		}
		// The value parsed round-trips, in any ASCII case.
		for _, v := range []string{string(u), strings.ToUpper(string(u)), " " + string(u) + "\t"} {
			if got, gotOK := hooks.ParseUrgency(v); got != u || !gotOK {
				t.Fatalf("ParseUrgency(%q) = %q, true, but ParseUrgency(%q) = %q, %v", s, u, v, got, gotOK)
			}
		}
		// Bubblehouse "Hooks API": a case-insensitive comparison. For
		// ASCII input (HTTP header values) that is exactly EqualFold.
		if isASCII(s) && !strings.EqualFold(strings.TrimSpace(s), string(u)) {
			t.Fatalf("ParseUrgency(%q): got %q, true; want false: not a case variant", s, u)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// validHS256 reports, independently of the code under test, whether
// header is "Bearer <JWT>" (the scheme in any case) with an HS256 token signed with secret whose
// time claims hold at now within the leeway. Segments are decoded as the
// JWT library does by default: unpadded base64url, lenient.
func validHS256(header string, secret []byte, now time.Time) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return false
	}
	dec := base64.RawURLEncoding
	rawHeader, err1 := dec.DecodeString(parts[0])
	rawClaims, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	var head struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(rawHeader, &head) != nil || head.Alg != "HS256" {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return false
	}
	var claims map[string]any
	if json.Unmarshal(rawClaims, &claims) != nil {
		return false
	}
	at := func(name string) (time.Time, bool, bool) {
		v, present := claims[name]
		if !present {
			return time.Time{}, false, true
		}
		n, isNum := v.(float64)
		return time.Unix(int64(n), 0), true, isNum
	}
	leeway := hooks.JWTLeeway
	if exp, present, ok := at("exp"); !ok || present && !now.Before(exp.Add(leeway)) {
		return false
	}
	for _, name := range []string{"nbf", "iat"} {
		if t, present, ok := at(name); !ok || present && now.Before(t.Add(-leeway)) {
			return false
		}
	}
	return true
}

func FuzzBubblehouseAuth(f *testing.F) {
	now := authNow
	a := &hooks.BubblehouseAuth{Authorization: testAuthValue, JWTSecret: testJWTSecret, Now: fixedClock(now)}
	valid := signJWT(f, jwt.SigningMethodHS256, testJWTSecret, validClaims(now))
	expired := signJWT(f, jwt.SigningMethodHS256, testJWTSecret, jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})
	future := signJWT(f, jwt.SigningMethodHS256, testJWTSecret, jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()})
	noClaims := signJWT(f, jwt.SigningMethodHS256, testJWTSecret, jwt.MapClaims{})
	wrong := signJWT(f, jwt.SigningMethodHS256, []byte("another-s3cret-0123456789abcdef00"), validClaims(now))
	hs384 := signJWT(f, jwt.SigningMethodHS384, testJWTSecret, validClaims(now))
	none := signJWT(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(now))
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		testAuthValue,
		testAuthValue + " ",
		strings.ToLower(testAuthValue),
		"Bearer " + valid,
		"Bearer  " + valid + " ",
		"Bearer " + valid + "x",
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + parts[0] + "." + parts[1] + "." + flipFirst(parts[2]),
		"bearer " + valid,
		valid,
		"Bearer " + expired,
		"Bearer " + future,
		"Bearer " + noClaims,
		"Bearer " + wrong,
		"Bearer " + hs384,
		"Bearer " + none,
		"Bearer a.b.c",
		"Basic dXNlcjpwYXNzd29yZA==",
		"",
	} {
		f.Add(s)
	}
	secrets := []string{testAuthValue, strings.TrimPrefix(testAuthValue, "Bearer "), string(testJWTSecret)}
	f.Fuzz(func(t *testing.T, header string) {
		err := a.Check(header)
		if err == nil {
			if header != testAuthValue && !validHS256(header, testJWTSecret, now) {
				t.Fatalf("Check(%q): got nil, want EUNAUTHORIZED: neither the configured value nor a valid HS256 JWT", header)
			}
			return
		}
		if got, want := hooks.ErrorCode(err), hooks.EUNAUTHORIZED; got != want {
			t.Fatalf("Check(%q): code got %q (%v), want %q", header, got, err, want)
		}
		if header == testAuthValue {
			t.Fatalf("Check(configured value): got %v, want nil", err)
		}
		// The header and its token are checked only when they contain a
		// dot: no message wording does, so a match can only be a leak.
		leaks := secrets
		token, _ := strings.CutPrefix(header, "Bearer ")
		for _, s := range []string{header, strings.TrimSpace(token)} {
			if len(s) >= 12 && strings.Contains(s, ".") {
				leaks = append(leaks, s)
			}
		}
		for _, s := range leaks {
			for _, text := range []string{err.Error(), hooks.ErrorMessage(err), hooks.ErrorHint(err)} {
				if strings.Contains(text, s) {
					t.Fatalf("Check(%q): error %q repeats %q", header, text, s)
				}
			}
		}
	})
}

func FuzzDedupKey(f *testing.F) {
	for _, s := range []string{
		`{"bhid":"evt-1"}`,
		`{"bhid":"bh_01HZY3V5K8J2","type":"points_earned","customer":{"id":"c1"},"points":120}`,
		`{"bhid":12345}`, `{"bhid":-1}`, `{"bhid":1.5e3}`, `{"bhid":0}`,
		`{"bhid":""}`, `{"bhid":null}`, `{"bhid":true}`, `{"bhid":["x"]}`, `{"bhid":{"id":"x"}}`,
		`{"bhid":"\u0065vt"}`, `{"bhid":"a","bhid":"b"}`, `{"BHID":"x"}`,
		`{}`, `[]`, `null`, ``, `not json`, `{"bhid":"x"`, `{"bhid":"x"} {}`,
		"{\"bhid\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	h := mustHooks(f, catalogueSettings())
	send := mustLookupHook(f, h, "SendEvent1")
	disc := mustLookupHook(f, h, "CreateDiscount4")
	const prefix = "SendEvent1/bhid:"
	f.Fuzz(func(t *testing.T, body []byte) {
		if key, err := disc.DedupKey(body); key != "" || err != nil {
			t.Fatalf("CreateDiscount4.DedupKey(%q): got %q, %v; want \"\", nil", body, key, err)
		}
		key, err := send.DedupKey(body)
		again, err2 := send.DedupKey(body)
		if key != again || (err == nil) != (err2 == nil) {
			t.Fatalf("DedupKey(%q): got %q, %v then %q, %v; want the same", body, key, err, again, err2)
		}

		// The expectation, decoded independently.
		var in map[string]any
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		decodeErr := d.Decode(&in)
		if decodeErr == nil && d.More() {
			decodeErr = errTrailing
		}
		if decodeErr == nil {
			// Decoder.More misses trailing garbage that is not a value.
			if !json.Valid(body) {
				decodeErr = errTrailing
			}
		}

		if err != nil {
			if got, want := hooks.ErrorCode(err), hooks.EINVALID; got != want {
				t.Fatalf("DedupKey(%q): code got %q (%v), want %q", body, got, err, want)
			}
			if key != "" {
				t.Fatalf("DedupKey(%q): got key %q with an error", body, key)
			}
			// A present, non-empty string bhid in a valid object is a key.
			if s, ok := in["bhid"].(string); decodeErr == nil && ok && s != "" {
				t.Fatalf("DedupKey(%q): got %v, want key %q", body, err, prefix+s)
			}
			return
		}
		if decodeErr != nil {
			t.Fatalf("DedupKey(%q): got key %q for a body that is not a JSON object (%v)", body, key, decodeErr)
		}
		switch v := in["bhid"].(type) {
		case string:
			if got, want := key, prefix+v; got != want || v == "" {
				t.Fatalf("DedupKey(%q): got %q, want %q", body, got, want)
			}
		case json.Number:
			if got, want := key, prefix+v.String(); got != want {
				t.Fatalf("DedupKey(%q): got %q, want %q", body, got, want)
			}
		default:
			t.Fatalf("DedupKey(%q): got key %q for bhid %#v, want an error", body, key, v)
		}
	})
}

// errTrailing marks a body with data after its first JSON value.
var errTrailing = jsonTrailingError{}

type jsonTrailingError struct{}

func (jsonTrailingError) Error() string { return "data after the JSON value" }

// FuzzSvixEventType checks SvixEventType against decoding the whole event
// into a map, which it replaces on the hot path.
func FuzzSvixEventType(f *testing.F) {
	for _, s := range []string{
		`{"type":"customer.created","data":{"type":"inner"}}`, `{"eventType":"a"}`, `{"event_type":"b","type":""}`,
		`{"type":1,"eventType":"c"}`, `{"type":"x","type":"y"}`, `{"\u0074ype":"escaped"}`, `[{"type":"x"}]`,
		`null`, `{"type":"x"`, `{"type":"x","a":[}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want := ""
		var p map[string]json.RawMessage
		if json.Unmarshal(body, &p) == nil {
			for _, field := range []string{"type", "eventType", "event_type"} {
				var s string
				if json.Unmarshal(p[field], &s) == nil && s != "" {
					want = s
					break
				}
			}
		}
		if got := hooks.SvixEventType(body); got != want {
			t.Fatalf("SvixEventType(%q) = %q, decoding into a map gives %q", body, got, want)
		}
	})
}

// expRE finds a number literal's exponent digits.
var expRE = regexp.MustCompile(`[eE][+-]?0*([0-9]*)$`)

// FuzzCheckNumbers checks CheckNumbers against reading every number token
// of the decoded document with encoding/json's tokenizer: it refuses
// exactly the documents with a
// literal over MaxNumberLength characters or an exponent beyond
// MaxNumberExponent, and names where.
func FuzzCheckNumbers(f *testing.F) {
	for _, s := range []string{
		`{"n":1,"f":-1.5e300}`, `[1e400,1e-400,1E+401]`, `{"a":[{"b":` + strings.Repeat("9", 101) + `}]}`,
		`{"n":1e00000000000000000000400}`, `{"n":1e-1000000000}`, `"` + strings.Repeat("9", 200) + `"`, `0`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		var doc any
		if !json.Valid(body) || d.Decode(&doc) != nil {
			return // one JSON value only: CheckNumbers reads decoded documents
		}
		// The decoded document, written out again (a json.Number keeps its
		// literal; of repeated names only the last member is left).
		again, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("re-encode %q: %v", body, err)
		}
		want := false
		tokens := json.NewDecoder(bytes.NewReader(again))
		tokens.UseNumber()
		for {
			tok, err := tokens.Token()
			if err != nil {
				break
			}
			n, ok := tok.(json.Number)
			if !ok {
				continue
			}
			if len(n) > hooks.MaxNumberLength {
				want = true
			}
			if m := expRE.FindStringSubmatch(string(n)); m != nil {
				exp, _ := new(big.Int).SetString("0"+m[1], 10)
				want = want || exp.Cmp(big.NewInt(hooks.MaxNumberExponent)) > 0
			}
		}
		err = hooks.CheckNumbers(doc)
		if (err != nil) != want {
			t.Fatalf("CheckNumbers(%q) = %v, want an error: %v", body, err, want)
		}
		if err != nil && hooks.ErrorCode(err) != hooks.EINVALID {
			t.Fatalf("CheckNumbers(%q): code %q, want invalid", body, hooks.ErrorCode(err))
		}
	})
}
