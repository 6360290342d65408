package hooks_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/hookbay/hookbay/hooks"
)

// The example delivery of Bloom "Enablement Webhooks", "Signature Verification":
// its secret, message id, timestamp and payload. Signatures are never copied
// from it: every test signs at test time.
const (
	svixTestSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	svixTestID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	svixTestBody   = `{"test": 2432232314}`
)

var (
	// svixTestNow is the example's svix-timestamp; the verifier's clock
	// reads it unless a test says otherwise.
	svixTestNow = time.Unix(1614265330, 0)
	// svixTestOldSecret is the secret being rotated out.
	svixTestOldSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("hookbay-old-secret-before-rotation"))
	// svixTestWrongSecret is some other endpoint's secret (keys are per
	// endpoint: Bloom "Enablement Webhooks", "Missing the secret key").
	svixTestWrongSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-endpoint-secret-0123456"))
)

// svixClock returns a clock that always reads t.
func svixClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// svixHMAC signs independently of the svix library: "v1," followed by
// base64(HMAC-SHA256(key, id + "." + unix + "." + body)), the key being the
// base64-decoded secret without its whsec_ prefix.
func svixHMAC(tb testing.TB, secret, id string, ts int64, body []byte) string {
	tb.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		tb.Fatalf("decode secret: %v", err)
	}
	return "v1," + svixMAC(key, id, strconv.FormatInt(ts, 10), body)
}

// svixMAC is the base64 HMAC of a message, without the version.
func svixMAC(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// svixLibrarySign signs with the svix library's own signer.
func svixLibrarySign(tb testing.TB, secret, id string, ts int64, body []byte) string {
	tb.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		tb.Fatalf("svix.NewWebhook: %v", err)
	}
	sig, err := wh.Sign(id, time.Unix(ts, 0), body)
	if err != nil {
		tb.Fatalf("svix Sign: %v", err)
	}
	return sig
}

// svixSigners are the two ways every vector is signed.
var svixSigners = []struct {
	name string
	sign func(tb testing.TB, secret, id string, ts int64, body []byte) string
}{
	{"library", svixLibrarySign},
	{"hmac", svixHMAC},
}

// svixHeader builds a header from name, value pairs; an empty value is
// left out.
func svixHeader(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			h.Set(kv[i], kv[i+1])
		}
	}
	return h
}

// svixSet is the three headers of one prefix.
func svixSet(prefix, id, ts, sig string) []string {
	return []string{prefix + "-id", id, prefix + "-timestamp", ts, prefix + "-signature", sig}
}

// svixExpected returns every signature the verifier could compute for the
// delivery in h (under each of secrets, for either header set), with and
// without "v1,": the values no error may repeat.
func svixExpected(tb testing.TB, secrets []string, body []byte, h http.Header) []string {
	tb.Helper()
	var out []string
	for _, p := range []string{"svix", "webhook"} {
		id, ts := h.Get(p+"-id"), h.Get(p+"-timestamp")
		secs, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			continue
		}
		for _, s := range secrets {
			sig := svixHMAC(tb, s, id, secs, body)
			out = append(out, sig, strings.TrimPrefix(sig, "v1,"))
		}
	}
	return out
}

// svixSecretTexts are the forms of the secrets an error must never repeat.
func svixSecretTexts(secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		out = append(out, s, strings.TrimPrefix(s, "whsec_"))
	}
	return out
}

// assertSvixNoLeak checks that neither the error text, its message nor its
// hint contains one of secrets.
func assertSvixNoLeak(tb testing.TB, err error, secrets []string) {
	tb.Helper()
	for _, text := range []string{err.Error(), hooks.ErrorMessage(err), hooks.ErrorHint(err)} {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				tb.Fatalf("error text %q contains %q", text, s)
			}
		}
	}
}

// svixWantCode is the class of each refusal: malformed requests are
// EINVALID, everything else EUNAUTHORIZED.
func svixWantCode(reason string) string {
	if reason == hooks.ReasonMissingHeaders || reason == hooks.ReasonBadTimestamp {
		return hooks.EINVALID
	}
	return hooks.EUNAUTHORIZED
}

// assertSvixRefused checks that err is a *hooks.SvixError with reason and
// the class that goes with it, and returns it.
func assertSvixRefused(tb testing.TB, err error, reason string) *hooks.SvixError {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got nil error, want %s", reason)
	}
	var se *hooks.SvixError
	if !errors.As(err, &se) {
		tb.Fatalf("got %T %v, want *hooks.SvixError", err, err)
	}
	if got, want := se.Reason, reason; got != want {
		tb.Fatalf("reason: got %q (%v), want %q", got, err, want)
	}
	if got, want := hooks.ErrorCode(err), svixWantCode(reason); got != want {
		tb.Fatalf("code: got %q (%v), want %q", got, err, want)
	}
	return se
}

func mustSvixVerifier(tb testing.TB, secrets ...string) *hooks.SvixVerifier {
	tb.Helper()
	v, err := hooks.NewSvixVerifier(secrets)
	if err != nil {
		tb.Fatalf("NewSvixVerifier: %v", err)
	}
	v.Now = svixClock(svixTestNow)
	return v
}

func TestSvixVerifier_Verify(t *testing.T) {
	now := svixTestNow.Unix()
	nowTS := strconv.FormatInt(now, 10)
	body := []byte(svixTestBody)

	// The sender signed compact JSON with escaped slashes and whitespace
	// inside its strings, which compaction must keep.
	signedCompact := []byte(`{"type":"tradeline.created","data":{"url":"https:\/\/bloom.test\/t\/1","memo":"two  spaces\tand\u00a0nbsp "}}`)
	var indented, tabbed, indentedCompact bytes.Buffer
	if err := json.Indent(&indented, signedCompact, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&tabbed, signedCompact, "", "\t"); err != nil {
		t.Fatal(err)
	}
	signedIndented := indented.Bytes() // a sender that pretty-prints
	if err := json.Compact(&indentedCompact, signedIndented); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(indentedCompact.Bytes(), signedCompact) {
		t.Fatalf("compacting the indented body: got %s, want %s", indentedCompact.Bytes(), signedCompact)
	}

	// Bytes a JSON re-serialiser would change: escaped slashes, unicode
	// escapes, raw UTF-8, CRLF and trailing spaces.
	byteExact := []byte("{\"url\":\"https:\\/\\/bloom.test\\/a\" ,\r\n \"name\":\"caf\\u00e9 \\ud83d\\ude00 é\"}  \r\n\t \r\n")

	type signFunc func(secret, id string, ts int64, body []byte) string
	type verifyCase struct {
		name    string
		secrets []string // the verifier's; default svixTestSecret
		build   func(sign signFunc) (body []byte, h http.Header)
		reason  string // "" when the delivery is accepted
		prefix  string // the header set Verify reports, when accepted
		hint    string // a substring of the hint, when refused
	}
	tests := []verifyCase{
		// Bloom "Enablement Webhooks", "Signature Verification": svix-id,
		// svix-timestamp and svix-signature, signed with the whsec_ secret.
		{name: "OK/SvixHeaders", prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, body))...)
		}},
		// The library reads the Standard Webhooks webhook-* set as well.
		{name: "OK/WebhookHeaders", prefix: "webhook", build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("webhook", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "OK/SvixIncompleteFallsBackToWebhook", prefix: "webhook", build: func(sign signFunc) ([]byte, http.Header) {
			// svix-id and svix-timestamp name another message; without
			// svix-signature the whole svix-* set is ignored.
			return body, svixHeader(append(
				[]string{"svix-id", "msg_other", "svix-timestamp", "1"},
				svixSet("webhook", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, body))...)...)
		}},
		{name: "ErrNoMatch/CompleteSvixSetWins", reason: hooks.ReasonNoMatch, build: func(sign signFunc) ([]byte, http.Header) {
			// A complete svix-* set is used even when webhook-* would match,
			// as the library does.
			return body, svixHeader(append(
				svixSet("svix", svixTestID, nowTS, sign(svixTestWrongSecret, svixTestID, now, body)),
				svixSet("webhook", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, body))...)...)
		}},
		{name: "OK/LastOfSeveralSignatures", prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			sig := strings.Join([]string{
				sign(svixTestWrongSecret, svixTestID, now, body),
				sign(svixTestSecret, "msg_other", now, body),
				sign(svixTestSecret, svixTestID, now-1, body),
				"v2," + strings.TrimPrefix(sign(svixTestSecret, svixTestID, now, body), "v1,"),
				"v1,AAAA",
				sign(svixTestSecret, svixTestID, now, body),
			}, " ")
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},
		{name: "OK/RotationSignedWithOld", secrets: []string{svixTestOldSecret, svixTestSecret}, prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestOldSecret, svixTestID, now, body))...)
		}},
		{name: "OK/RotationSignedWithNew", secrets: []string{svixTestOldSecret, svixTestSecret}, prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "OK/RotationSignedWithBoth", secrets: []string{svixTestOldSecret, svixTestSecret}, prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			sig := sign(svixTestOldSecret, svixTestID, now, body) + " " + sign(svixTestSecret, svixTestID, now, body)
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},
		{name: "OK/SignedWithBothVerifiedWithNewOnly", prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			sig := sign(svixTestOldSecret, svixTestID, now, body) + " " + sign(svixTestSecret, svixTestID, now, body)
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},
		{name: "OK/SignedWithBothVerifiedWithOldOnly", secrets: []string{svixTestOldSecret}, prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			sig := sign(svixTestOldSecret, svixTestID, now, body) + " " + sign(svixTestSecret, svixTestID, now, body)
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},
		{name: "OK/EmptyBody", prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			return nil, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, nil))...)
		}},
		// Bloom "Enablement Webhooks", "Not using the raw payload body": the
		// exact bytes are signed.
		{name: "OK/ByteExact", prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			return byteExact, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, byteExact))...)
		}},

		// "Missing the secret key": keys are unique to endpoints.
		{name: "ErrNoMatch/WrongSecret", reason: hooks.ReasonNoMatch, hint: "secret", build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestWrongSecret, svixTestID, now, body))...)
		}},
		{name: "ErrNoMatch/OldSecretAfterRotation", reason: hooks.ReasonNoMatch, hint: "secret", build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestOldSecret, svixTestID, now, body))...)
		}},
		{name: "ErrNoMatch/TamperedBody", reason: hooks.ReasonNoMatch, build: func(sign signFunc) ([]byte, http.Header) {
			return []byte(`{"test": 2432232315}`), svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "ErrNoMatch/OtherID", reason: hooks.ReasonNoMatch, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", "msg_other", nowTS, sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "ErrNoMatch/OtherTimestamp", reason: hooks.ReasonNoMatch, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, strconv.FormatInt(now-1, 10), sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "ErrNoMatch/ByteExactTrailingSpaceDropped", reason: hooks.ReasonNoMatch, build: func(sign signFunc) ([]byte, http.Header) {
			return bytes.TrimRight(byteExact, " \t\r\n"), svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, byteExact))...)
		}},
		{name: "ErrNoMatch/ByteExactCRLFToLF", reason: hooks.ReasonNoMatch, build: func(sign signFunc) ([]byte, http.Header) {
			return bytes.ReplaceAll(byteExact, []byte("\r\n"), []byte("\n")), svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, byteExact))...)
		}},

		// "Signature Verification": signatures look like v1,<base64>.
		{name: "ErrNoMatch/NoVersionPrefix", reason: hooks.ReasonNoMatch, hint: "v1", build: func(sign signFunc) ([]byte, http.Header) {
			sig := strings.TrimPrefix(sign(svixTestSecret, svixTestID, now, body), "v1,")
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},
		{name: "ErrNoMatch/OtherVersion", reason: hooks.ReasonNoMatch, hint: "v1", build: func(sign signFunc) ([]byte, http.Header) {
			sig := "v2," + strings.TrimPrefix(sign(svixTestSecret, svixTestID, now, body), "v1,")
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},
		{name: "ErrNoMatch/VersionWithEquals", reason: hooks.ReasonNoMatch, hint: "v1", build: func(sign signFunc) ([]byte, http.Header) {
			sig := "v1=" + strings.TrimPrefix(sign(svixTestSecret, svixTestID, now, body), "v1,")
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},
		{name: "ErrNoMatch/UppercaseVersion", reason: hooks.ReasonNoMatch, hint: "v1", build: func(sign signFunc) ([]byte, http.Header) {
			sig := "V1," + strings.TrimPrefix(sign(svixTestSecret, svixTestID, now, body), "v1,")
			return body, svixHeader(svixSet("svix", svixTestID, nowTS, sig)...)
		}},

		// "Not using the raw payload body": a proxy that re-serialises the
		// JSON changes the signed bytes.
		{name: "ErrNoMatch/ReserialisedIndented", reason: hooks.ReasonNoMatch, hint: "changed on the way", build: func(sign signFunc) ([]byte, http.Header) {
			return signedIndented, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, signedCompact))...)
		}},
		{name: "ErrNoMatch/ReserialisedTabIndented", reason: hooks.ReasonNoMatch, hint: "changed on the way", build: func(sign signFunc) ([]byte, http.Header) {
			return tabbed.Bytes(), svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, signedCompact))...)
		}},
		{name: "ErrNoMatch/ReserialisedCompacted", reason: hooks.ReasonNoMatch, hint: "changed on the way", build: func(sign signFunc) ([]byte, http.Header) {
			return signedCompact, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, signedIndented))...)
		}},
		{name: "ErrNoMatch/ReserialisedWithRotation", secrets: []string{svixTestOldSecret, svixTestSecret}, reason: hooks.ReasonNoMatch, hint: "changed on the way", build: func(sign signFunc) ([]byte, http.Header) {
			return signedIndented, svixHeader(svixSet("webhook", svixTestID, nowTS, sign(svixTestOldSecret, svixTestID, now, signedCompact))...)
		}},
		{name: "ErrNoMatch/CompactBodyWrongSecret", reason: hooks.ReasonNoMatch, hint: "secret", build: func(sign signFunc) ([]byte, http.Header) {
			// Re-serialising does not rescue a wrong secret: no false hint.
			return signedIndented, svixHeader(svixSet("svix", svixTestID, nowTS, sign(svixTestWrongSecret, svixTestID, now, signedCompact))...)
		}},

		{name: "ErrMissingHeaders/None", reason: hooks.ReasonMissingHeaders, build: func(sign signFunc) ([]byte, http.Header) {
			return body, http.Header{}
		}},
		{name: "ErrMissingHeaders/MixedSets", reason: hooks.ReasonMissingHeaders, build: func(sign signFunc) ([]byte, http.Header) {
			// One complete set is needed; the two are never mixed.
			return body, svixHeader("svix-id", svixTestID, "webhook-timestamp", nowTS, "svix-signature", sign(svixTestSecret, svixTestID, now, body))
		}},
		{name: "ErrMissingHeaders/EmptyValues", reason: hooks.ReasonMissingHeaders, build: func(sign signFunc) ([]byte, http.Header) {
			return body, http.Header{"Svix-Id": {""}, "Svix-Timestamp": {""}, "Svix-Signature": {""}}
		}},

		{name: "ErrBadTimestamp/Word", reason: hooks.ReasonBadTimestamp, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, "now", sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "ErrBadTimestamp/Fraction", reason: hooks.ReasonBadTimestamp, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, nowTS+".0", sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "ErrBadTimestamp/RFC3339", reason: hooks.ReasonBadTimestamp, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("webhook", svixTestID, svixTestNow.UTC().Format(time.RFC3339), sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "ErrBadTimestamp/Overflow", reason: hooks.ReasonBadTimestamp, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, "99999999999999999999", sign(svixTestSecret, svixTestID, now, body))...)
		}},
		{name: "ErrBadTimestamp/Spaces", reason: hooks.ReasonBadTimestamp, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, " "+nowTS, sign(svixTestSecret, svixTestID, now, body))...)
		}},

		// Tolerance edges: the signature is valid in each case, so only the
		// clock decides.
		{name: "OK/Exactly5mOld", prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			ts := now - 300
			return body, svixHeader(svixSet("svix", svixTestID, strconv.FormatInt(ts, 10), sign(svixTestSecret, svixTestID, ts, body))...)
		}},
		{name: "ErrStale/5m1sOld", reason: hooks.ReasonStale, build: func(sign signFunc) ([]byte, http.Header) {
			ts := now - 301
			return body, svixHeader(svixSet("svix", svixTestID, strconv.FormatInt(ts, 10), sign(svixTestSecret, svixTestID, ts, body))...)
		}},
		{name: "ErrStale/Zero", reason: hooks.ReasonStale, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, "0", sign(svixTestSecret, svixTestID, 0, body))...)
		}},
		{name: "ErrStale/MinInt64", reason: hooks.ReasonStale, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, "-9223372036854775808", "v1,AAAA")...)
		}},
		{name: "OK/Exactly5mInFuture", prefix: "svix", build: func(sign signFunc) ([]byte, http.Header) {
			ts := now + 300
			return body, svixHeader(svixSet("svix", svixTestID, strconv.FormatInt(ts, 10), sign(svixTestSecret, svixTestID, ts, body))...)
		}},
		{name: "ErrFuture/5m1sInFuture", reason: hooks.ReasonFuture, build: func(sign signFunc) ([]byte, http.Header) {
			ts := now + 301
			return body, svixHeader(svixSet("svix", svixTestID, strconv.FormatInt(ts, 10), sign(svixTestSecret, svixTestID, ts, body))...)
		}},
		{name: "ErrFuture/Milliseconds", reason: hooks.ReasonFuture, build: func(sign signFunc) ([]byte, http.Header) {
			ts := svixTestNow.UnixMilli()
			return body, svixHeader(svixSet("webhook", svixTestID, strconv.FormatInt(ts, 10), sign(svixTestSecret, svixTestID, ts, body))...)
		}},
		{name: "ErrFuture/MaxInt64", reason: hooks.ReasonFuture, build: func(sign signFunc) ([]byte, http.Header) {
			return body, svixHeader(svixSet("svix", svixTestID, "9223372036854775807", "v1,AAAA")...)
		}},
	}

	// Each of the three headers missing from either set.
	for _, p := range []string{"svix", "webhook"} {
		for _, missing := range []string{"id", "timestamp", "signature"} {
			tests = append(tests, verifyCase{name: "ErrMissingHeaders/" + p + "-" + missing, reason: hooks.ReasonMissingHeaders, build: func(sign signFunc) ([]byte, http.Header) {
				h := svixHeader(svixSet(p, svixTestID, nowTS, sign(svixTestSecret, svixTestID, now, body))...)
				h.Del(p + "-" + missing)
				return body, h
			}})
		}
	}

	t.Run("SignersAgree", func(t *testing.T) {
		for _, s := range []string{svixTestSecret, svixTestOldSecret} {
			for _, b := range [][]byte{nil, body, byteExact, signedCompact} {
				if got, want := svixLibrarySign(t, s, svixTestID, now, b), svixHMAC(t, s, svixTestID, now, b); got != want {
					t.Fatalf("library signed %q, independent HMAC %q", got, want)
				}
			}
		}
	})

	allSecrets := []string{svixTestSecret, svixTestOldSecret, svixTestWrongSecret}
	for _, signer := range svixSigners {
		t.Run(signer.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					secrets := tt.secrets
					if secrets == nil {
						secrets = []string{svixTestSecret}
					}
					v := mustSvixVerifier(t, secrets...)
					b, h := tt.build(func(secret, id string, ts int64, body []byte) string {
						return signer.sign(t, secret, id, ts, body)
					})
					sh, err := v.Verify(b, h)
					if tt.reason == "" {
						if err != nil {
							t.Fatalf("got %v, want nil", err)
						}
						if got, want := sh.Prefix, tt.prefix; got != want {
							t.Fatalf("prefix: got %q, want %q", got, want)
						}
						if got, want := sh.ID, svixTestID; got != want {
							t.Fatalf("id: got %q, want %q", got, want)
						}
						return
					}
					assertSvixRefused(t, err, tt.reason)
					if tt.hint != "" && !strings.Contains(hooks.ErrorHint(err), tt.hint) {
						t.Fatalf("hint: got %q, want it to mention %q", hooks.ErrorHint(err), tt.hint)
					}
					assertSvixNoLeak(t, err, append(svixExpected(t, allSecrets, b, h), svixSecretTexts(allSecrets...)...))
				})
			}
		})
	}
}

// TestSvixVerifier_Verify_Reserialised covers what the hint cannot see:
// a body whose signed form was neither compact nor two-space indented, or
// one whose escapes a re-serialiser rewrote. It is still refused, and the
// hint never repeats a signature.
func TestSvixVerifier_Verify_Reserialised(t *testing.T) {
	now := svixTestNow.Unix()
	signed := []byte(`{ "type" : "user.created",  "url":"https:\/\/bloom.test\/u\/1" }`)
	var compact bytes.Buffer
	if err := json.Compact(&compact, signed); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(signed, &v); err != nil {
		t.Fatal(err)
	}
	marshalled, err := json.Marshal(v) // unescapes \/ and reorders keys
	if err != nil {
		t.Fatal(err)
	}
	for name, received := range map[string][]byte{"Compacted": compact.Bytes(), "Remarshalled": marshalled} {
		t.Run(name, func(t *testing.T) {
			h := svixHeader(svixSet("svix", svixTestID, strconv.FormatInt(now, 10), svixHMAC(t, svixTestSecret, svixTestID, now, signed))...)
			_, err := mustSvixVerifier(t, svixTestSecret).Verify(received, h)
			assertSvixRefused(t, err, hooks.ReasonNoMatch)
			assertSvixNoLeak(t, err, append(svixExpected(t, []string{svixTestSecret}, received, h), svixSecretTexts(svixTestSecret)...))
		})
	}
}

func TestParseSvixSecret(t *testing.T) {
	b64 := func(n int) string {
		return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5, 0x3C, 0x7E}, n)[:n])
	}
	tests := []struct {
		name   string
		secret string
		ok     bool
		msg    string // a substring of the error
	}{
		{"OK/ContractExample", svixTestSecret, true, ""},
		{"OK/Whsec24Bytes", "whsec_" + b64(24), true, ""},
		{"OK/Whsec16Bytes", "whsec_" + b64(16), true, ""},
		// The library trims whsec_ only when present.
		{"OK/NoPrefix", strings.TrimPrefix(svixTestSecret, "whsec_"), true, ""},
		{"ErrSignature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", false, "signature"},
		{"ErrSignatureShort", "v1,", false, "signature"},
		{"ErrBase64/Spaces", "whsec_not base64 at all!!", false, ""},
		{"ErrBase64/Truncated", strings.TrimSuffix(svixTestSecret, "w"), false, ""},
		{"ErrBase64/URLAlphabet", "whsec_" + strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 0xfb, 0xef, 0xff, 0xfe, 0xfb, 0xef, 0xff, 0xfe, 0xfb, 0xef, 0xff, 0xfe, 0xfb, 0xef, 0xff})), false, ""},
		{"ErrShort/15Bytes", "whsec_" + b64(15), false, "16"},
		{"ErrShort/Empty", "", false, ""},
		{"ErrShort/PrefixOnly", "whsec_", false, ""},
		{"ErrBase64/DoublePrefix", "whsec_whsec_" + b64(24), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh, err := hooks.ParseSvixSecret(tt.secret)
			if tt.ok {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				// The parsed key signs as the independent HMAC does.
				key := "whsec_" + strings.TrimPrefix(tt.secret, "whsec_")
				got, err := wh.Sign(svixTestID, svixTestNow, []byte(svixTestBody))
				if err != nil {
					t.Fatal(err)
				}
				if want := svixHMAC(t, key, svixTestID, svixTestNow.Unix(), []byte(svixTestBody)); got != want {
					t.Fatalf("signature: got %q, want %q", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil error for %q", tt.secret)
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not mention %q", err, tt.msg)
			}
			// At most 8 characters of the secret may be repeated.
			for i := 0; i+9 <= len(tt.secret); i++ {
				if s := tt.secret[i : i+9]; strings.Contains(err.Error(), s) {
					t.Fatalf("error %q repeats %q of the secret", err, s)
				}
			}
		})
	}
}

func TestNewSvixVerifier(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		v, err := hooks.NewSvixVerifier([]string{svixTestOldSecret, svixTestSecret})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(v.Secrets), 2; got != want {
			t.Fatalf("secrets: got %d, want %d", got, want)
		}
	})
	t.Run("ErrEmpty", func(t *testing.T) {
		for _, secrets := range [][]string{nil, {}} {
			if _, err := hooks.NewSvixVerifier(secrets); err == nil {
				t.Fatalf("NewSvixVerifier(%q): got nil error", secrets)
			}
		}
	})
	t.Run("ErrBadSecret", func(t *testing.T) {
		bad := "whsec_" + base64.StdEncoding.EncodeToString([]byte("too-short-key"))
		for _, tt := range []struct {
			secrets []string
			index   string
		}{
			{[]string{bad}, "secret 0"},
			{[]string{svixTestSecret, bad}, "secret 1"},
			{[]string{svixTestOldSecret, svixTestSecret, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, "secret 2"},
		} {
			_, err := hooks.NewSvixVerifier(tt.secrets)
			if err == nil {
				t.Fatalf("NewSvixVerifier(%d secrets): got nil error", len(tt.secrets))
			}
			if !strings.Contains(err.Error(), tt.index) {
				t.Fatalf("error %q does not name %q", err, tt.index)
			}
			for _, s := range svixSecretTexts(tt.secrets...) {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q repeats a secret", err)
				}
			}
		}
	})
}

func TestSvixEventType(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"Type", `{"type":"tradeline.created","data":{}}`, "tradeline.created"},
		{"EventType", `{"eventType":"user.synced"}`, "user.synced"},
		{"SnakeCase", `{"event_type":"connection.closed"}`, "connection.closed"},
		{"TypeFirst", `{"event_type":"c","eventType":"b","type":"a"}`, "a"},
		{"EventTypeBeforeSnake", `{"event_type":"c","eventType":"b"}`, "b"},
		{"EmptyTypeFallsBack", `{"type":"","event_type":"user.closed"}`, "user.closed"},
		{"Nested", `{"data":{"type":"user.created"}}`, ""},
		{"None", `{"data":{"id":1}}`, ""},
		{"EmptyObject", `{}`, ""},
		{"NotJSON", `type=user.created`, ""},
		{"Truncated", `{"type":"user.created"`, ""},
		{"Empty", ``, ""},
		{"Array", `[{"type":"user.created"}]`, ""},
		{"String", `"user.created"`, ""},
		{"Number", `42`, ""},
		{"Null", `null`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hooks.SvixEventType([]byte(tt.body)); got != tt.want {
				t.Fatalf("SvixEventType(%s): got %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

// TestBloomEventTypes checks the list against Bloom "Enablement Webhooks",
// "Event Types".
func TestBloomEventTypes(t *testing.T) {
	want := []string{
		"connection.closed", "connection.created", "connection.refresh_required",
		"tradeline.closed_by_user", "tradeline.closed_inactivity", "tradeline.created", "tradeline.opened", "tradeline.transactions_added",
		"user.closed", "user.created", "user.synced", "user.updated",
	}
	var got []string
	for typ, ok := range hooks.BloomEventTypes {
		if ok {
			got = append(got, typ)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// svixRoute is a comparable action that names its route.
type svixRoute string

func (r svixRoute) Run(context.Context, *hooks.Job) ([]byte, error) { return []byte(r), nil }

func TestEventRoutes(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		routes := map[string]hooks.Action{
			"tradeline.created":  svixRoute("exact"),
			"tradeline.closed.*": svixRoute("closed"),
			"tradeline.*":        svixRoute("tradeline"),
			"user.*":             svixRoute("user"),
			"user.created":       nil, // stored only
			"*":                  svixRoute("any"),
		}
		tests := []struct {
			typ  string
			want hooks.Action
		}{
			{"tradeline.created", svixRoute("exact")},            // exact beats prefix and *
			{"tradeline.opened", svixRoute("tradeline")},         // prefix beats *
			{"tradeline.closed.by_user", svixRoute("closed")},    // longer prefix beats shorter
			{"tradeline.closed_by_user", svixRoute("tradeline")}, // a prefix ends at its dot
			{"tradeline.closed.", svixRoute("closed")},           // nothing after the dot
			{"tradeline", svixRoute("any")},                      // tradeline.* needs the dot
			{"user.created", nil},                                // nil action: store
			{"user.synced", svixRoute("user")},                   //
			{"connection.refresh_required", svixRoute("any")},    //
			{"", svixRoute("any")},                               //
			{"Tradeline.created", svixRoute("any")},              // case-sensitive
			{"xtradeline.created", svixRoute("any")},             // prefixes anchor at the start
			{"tradeline.created.extra", svixRoute("tradeline")},  // exact is exact
		}
		// Map order must not matter: build the routes several times.
		for i := 0; i < 20; i++ {
			r, err := hooks.NewEventRoutes(routes)
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range tests {
				got, ok := r.Match(tt.typ)
				if !ok {
					t.Fatalf("Match(%q): no match", tt.typ)
				}
				if got != tt.want {
					t.Fatalf("Match(%q): got %v, want %v", tt.typ, got, tt.want)
				}
			}
		}
	})
	t.Run("NoMatch", func(t *testing.T) {
		r, err := hooks.NewEventRoutes(map[string]hooks.Action{"tradeline.*": svixRoute("tradeline"), "user.created": svixRoute("exact")})
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"connection.created", "user.updated", "tradeline", "user.created.x", ""} {
			if got, ok := r.Match(typ); ok || got != nil {
				t.Fatalf("Match(%q): got %v, %v; want nil, false", typ, got, ok)
			}
		}
	})
	t.Run("NoRoutes", func(t *testing.T) {
		r, err := hooks.NewEventRoutes(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := r.Match("user.created"); ok || got != nil {
			t.Fatalf("got %v, %v; want nil, false", got, ok)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, p := range []string{"trade*line", "*.created", "tradeline*", "**", "tradeline.**", "*tradeline", "tradeline.*.created", "tradeline.*x"} {
			_, err := hooks.NewEventRoutes(map[string]hooks.Action{p: nil, "user.*": svixRoute("user")})
			if err == nil {
				t.Fatalf("NewEventRoutes(%q): got nil error", p)
			}
			if !strings.Contains(err.Error(), strconv.Quote(p)) {
				t.Fatalf("error %q does not name the pattern %q", err, p)
			}
		}
	})
}

func FuzzParseSvixHeaders(f *testing.F) {
	f.Add("msg_1", "1614265330", "v1,abc", "", "", "")
	f.Add("", "", "", "msg_1", "1614265330", "v1,abc")
	f.Add("msg_1", "", "v1,abc", "msg_2", "1", "v1,x")
	f.Add("msg_1", "1", "v1,a", "msg_2", "2", "v1,b")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, sid, sts, ssig, wid, wts, wsig string) {
		h := svixHeader(append(svixSet("svix", sid, sts, ssig), svixSet("webhook", wid, wts, wsig)...)...)
		sh, ok := hooks.ParseSvixHeaders(h)
		svixOK := sid != "" && sts != "" && ssig != ""
		webhookOK := wid != "" && wts != "" && wsig != ""
		if got, want := ok, svixOK || webhookOK; got != want {
			t.Fatalf("ok: got %v, want %v", got, want)
		}
		if !ok {
			if sh != (hooks.SvixHeaders{}) {
				t.Fatalf("not ok, but got %+v", sh)
			}
			return
		}
		if sh.ID == "" || sh.Timestamp == "" || sh.Signature == "" {
			t.Fatalf("ok with an empty field: %+v", sh)
		}
		want := hooks.SvixHeaders{ID: sid, Timestamp: sts, Signature: ssig, Prefix: "svix"}
		if !svixOK {
			want = hooks.SvixHeaders{ID: wid, Timestamp: wts, Signature: wsig, Prefix: "webhook"}
		}
		if sh != want {
			t.Fatalf("got %+v, want %+v", sh, want)
		}
	})
}

// svixValid reports, independently of hooks and the svix library, whether
// a delivery is genuine: all three headers present, a decimal Unix
// timestamp within five minutes of now, and one of the space-separated
// signatures "v1,<base64 MAC>" (the MAC being the field after the first
// comma, as the library reads it) matching under one of keys. The signed
// timestamp is the parsed number in canonical form, which is what the
// sender signs.
func svixValid(keys [][]byte, id, ts, sig string, body []byte, now int64) bool {
	if id == "" || ts == "" || sig == "" {
		return false
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || secs < now-300 || secs > now+300 {
		return false
	}
	for _, token := range strings.Split(sig, " ") {
		parts := strings.Split(token, ",")
		if len(parts) < 2 || parts[0] != "v1" {
			continue
		}
		for _, key := range keys {
			if hmac.Equal([]byte(parts[1]), []byte(svixMAC(key, id, strconv.FormatInt(secs, 10), body))) {
				return true
			}
		}
	}
	return false
}

// svixReason is the refusal an invalid delivery should get, worked out
// independently: the headers first, then the timestamp, then the signature.
func svixReason(id, ts, sig string, now int64) string {
	if id == "" || ts == "" || sig == "" {
		return hooks.ReasonMissingHeaders
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	switch {
	case err != nil:
		return hooks.ReasonBadTimestamp
	case secs < now-300:
		return hooks.ReasonStale
	case secs > now+300:
		return hooks.ReasonFuture
	}
	return hooks.ReasonNoMatch
}

func FuzzSvixVerify(f *testing.F) {
	secrets := []string{svixTestOldSecret, svixTestSecret}
	var keys [][]byte
	for _, s := range secrets {
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			f.Fatal(err)
		}
		keys = append(keys, k)
	}
	v := mustSvixVerifier(f, secrets...)
	now := svixTestNow.Unix()
	ts := strconv.FormatInt(now, 10)
	body := []byte(svixTestBody)
	valid := svixHMAC(f, svixTestSecret, svixTestID, now, body)
	old := svixHMAC(f, svixTestOldSecret, svixTestID, now, body)
	edge := svixHMAC(f, svixTestSecret, svixTestID, now-300, body)
	wrong := svixHMAC(f, svixTestWrongSecret, svixTestID, now, body)

	f.Add(body, svixTestID, ts, valid, false)
	f.Add(body, svixTestID, ts, valid, true)
	f.Add(body, svixTestID, ts, old, false)
	f.Add(body, svixTestID, ts, wrong+" "+valid, false)
	f.Add(body, svixTestID, ts, wrong, true)
	f.Add(body, svixTestID, ts, strings.TrimPrefix(valid, "v1,"), false)
	f.Add(body, svixTestID, ts, valid+",extra", false)
	f.Add(body, svixTestID, "+"+ts, valid, false)
	f.Add(body, svixTestID, "0"+ts, valid, false)
	f.Add(body, svixTestID, strconv.FormatInt(now-300, 10), edge, false)
	f.Add(body, svixTestID, strconv.FormatInt(now-301, 10), valid, false)
	f.Add(body, svixTestID, strconv.FormatInt(now+301, 10), valid, false)
	f.Add(body, svixTestID, "abc", valid, false)
	f.Add(body, svixTestID, "9223372036854775807", valid, false)
	f.Add(body, svixTestID, "-9223372036854775808", valid, true)
	f.Add(body, "", ts, valid, false)
	f.Add(body, svixTestID, ts, "", true)
	f.Add([]byte(`{"test":2432232314}`), svixTestID, ts, valid, false)
	f.Add([]byte(nil), svixTestID, ts, svixHMAC(f, svixTestSecret, svixTestID, now, nil), false)

	allSecrets := append(slices.Clone(secrets), svixTestWrongSecret)
	f.Fuzz(func(t *testing.T, body []byte, id, ts, sig string, webhook bool) {
		prefix := "svix"
		if webhook {
			prefix = "webhook"
		}
		h := svixHeader(svixSet(prefix, id, ts, sig)...)
		_, err := v.Verify(body, h)
		want := svixValid(keys, id, ts, sig, body, now)
		if got := err == nil; got != want {
			t.Fatalf("Verify(%q, id=%q ts=%q sig=%q): got err %v, independent check says valid=%v", body, id, ts, sig, err, want)
		}
		if err == nil {
			return
		}
		var se *hooks.SvixError
		if !errors.As(err, &se) {
			t.Fatalf("got %T %v, want *hooks.SvixError", err, err)
		}
		if got, want := se.Reason, svixReason(id, ts, sig, now); got != want {
			t.Fatalf("reason for id=%q ts=%q sig=%q: got %q (%v), want %q", id, ts, sig, got, err, want)
		}
		if got, want := hooks.ErrorCode(err), svixWantCode(se.Reason); got != want {
			t.Fatalf("code for %s: got %q, want %q", se.Reason, got, want)
		}
		assertSvixNoLeak(t, err, append(svixExpected(t, allSecrets, body, h), svixSecretTexts(allSecrets...)...))
	})
}
