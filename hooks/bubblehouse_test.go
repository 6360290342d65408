package hooks_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// mustHooks returns the set of hooks subscribed with settings.
func mustHooks(tb testing.TB, settings map[string]hooks.HookSettings) *hooks.BubblehouseHooks {
	tb.Helper()
	h, err := hooks.NewBubblehouseHooks(settings)
	if err != nil {
		tb.Fatalf("new hooks %v: %v", settings, err)
	}
	return h
}

// mustLookupHook returns the subscribed hook name.
func mustLookupHook(tb testing.TB, h *hooks.BubblehouseHooks, name string) *hooks.BubblehouseHook {
	tb.Helper()
	hook, ok := h.Lookup(name)
	if !ok {
		tb.Fatalf("lookup %s: not subscribed", name)
	}
	return hook
}

// catalogueSettings subscribes to every public hook.
func catalogueSettings() map[string]hooks.HookSettings {
	s := map[string]hooks.HookSettings{}
	for _, n := range hooks.CatalogueHooks() {
		s[n] = hooks.HookSettings{}
	}
	return s
}

// assertInvalid checks that err is an EINVALID error.
func assertInvalid(tb testing.TB, err error) {
	tb.Helper()
	if got, want := hooks.ErrorCode(err), hooks.EINVALID; got != want {
		tb.Fatalf("error code: got %q (%v), want %q", got, err, want)
	}
}

// assertObject checks that b is exactly one JSON object.
func assertObject(tb testing.TB, b []byte) {
	tb.Helper()
	if !json.Valid(b) {
		tb.Fatalf("got %q, want valid JSON", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		tb.Fatalf("got %q, want a JSON object (%v)", b, err)
	}
}

func TestParseUrgency(t *testing.T) {
	// Bubblehouse "Hooks API" "Real-time, urgent and regular calls":
	// X-BH-Urgency is real-time, urgent or regular, compared ignoring case.
	tests := []struct {
		in   string
		want hooks.Urgency
		ok   bool
	}{
		{"real-time", hooks.UrgencyRealtime, true},
		{"urgent", hooks.UrgencyUrgent, true},
		{"regular", hooks.UrgencyRegular, true},
		{"Real-Time", hooks.UrgencyRealtime, true},
		{"REAL-TIME", hooks.UrgencyRealtime, true},
		{"URGENT", hooks.UrgencyUrgent, true},
		{"Urgent", hooks.UrgencyUrgent, true},
		{"Regular", hooks.UrgencyRegular, true},
		{" urgent", hooks.UrgencyUrgent, true},
		{"urgent ", hooks.UrgencyUrgent, true},
		{"\turgent\r\n", hooks.UrgencyUrgent, true},
		{"  Real-time  ", hooks.UrgencyRealtime, true},
		{"", hooks.UrgencyRegular, false},
		{"   ", hooks.UrgencyRegular, false},
		{"realtime", hooks.UrgencyRegular, false},
		{"real time", hooks.UrgencyRegular, false},
		{"real_time", hooks.UrgencyRegular, false},
		{"urgent,regular", hooks.UrgencyRegular, false},
		{"high", hooks.UrgencyRegular, false},
		{"urgentx", hooks.UrgencyRegular, false},
		{"ur gent", hooks.UrgencyRegular, false},
		{"1", hooks.UrgencyRegular, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			u, ok := hooks.ParseUrgency(tt.in)
			if u != tt.want || ok != tt.ok {
				t.Fatalf("got %q, %v; want %q, %v", u, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestUrgency_Priority(t *testing.T) {
	t.Run("Order", func(t *testing.T) {
		// Bubblehouse "Hooks API": "arrange for urgent hooks to take
		// priority"; lower runs first.
		rt, urgent, regular := hooks.UrgencyRealtime.Priority(), hooks.UrgencyUrgent.Priority(), hooks.UrgencyRegular.Priority()
		if !(rt < urgent && urgent < regular) {
			t.Fatalf("got real-time %d, urgent %d, regular %d; want real-time < urgent < regular", rt, urgent, regular)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		for _, u := range []hooks.Urgency{"", "high", "URGENT"} {
			if got, want := u.Priority(), hooks.UrgencyRegular.Priority(); got != want {
				t.Errorf("%q: got %d, want %d (regular)", u, got, want)
			}
		}
	})

	t.Run("InStoreRange", func(t *testing.T) {
		// The jobs table's CHECK allows priorities 0 to 9.
		for _, u := range []hooks.Urgency{hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular, "other"} {
			if p := u.Priority(); p < 0 || p > 9 {
				t.Errorf("%q: got %d, want 0..9", u, p)
			}
		}
	})
}

func TestNewBubblehouseHooks(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		h := mustHooks(t, map[string]hooks.HookSettings{
			"SendEvent1":           {},
			"CreateDiscount4":      {},
			"DeliverCustomReward1": {},
			"PrivatePromo2":        {Inline: true},
			"a_private_hook":       {},
		})
		if got, want := h.Names(), []string{"CreateDiscount4", "DeliverCustomReward1", "PrivatePromo2", "SendEvent1", "a_private_hook"}; !slices.Equal(got, want) {
			t.Fatalf("names: got %q, want %q", got, want)
		}
		if !slices.IsSorted(h.Names()) {
			t.Fatalf("names: got %q, want sorted", h.Names())
		}
		// The catalogue says what each public hook needs
		// (Bubblehouse "Hooks API" reference "Hooks").
		send := mustLookupHook(t, h, "SendEvent1")
		if send.DedupField != "bhid" || !send.Outcomes || send.Inline {
			t.Errorf("SendEvent1: got %+v, want DedupField bhid, Outcomes, not Inline", send)
		}
		if reward := mustLookupHook(t, h, "DeliverCustomReward1"); !reward.Inline {
			t.Errorf("DeliverCustomReward1: got %+v, want Inline", reward)
		}
		if disc := mustLookupHook(t, h, "CreateDiscount4"); disc.Inline || disc.DedupField != "" || disc.Outcomes {
			t.Errorf("CreateDiscount4: got %+v, want no flags", disc)
		}
		if p := mustLookupHook(t, h, "PrivatePromo2"); !p.Inline || p.Name != "PrivatePromo2" {
			t.Errorf("PrivatePromo2: got %+v, want Inline", p)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		for name, settings := range map[string]map[string]hooks.HookSettings{"Nil": nil, "Empty": {}} {
			t.Run(name, func(t *testing.T) {
				h := mustHooks(t, settings)
				if got := h.Names(); len(got) != 0 {
					t.Fatalf("names: got %q, want none", got)
				}
			})
		}
	})

	t.Run("NamesIsACopy", func(t *testing.T) {
		h := mustHooks(t, catalogueSettings())
		names := h.Names()
		names[0] = "Mutated"
		if got := h.Names()[0]; got == "Mutated" {
			t.Fatalf("names after changing the returned slice: got %q, want it unchanged", got)
		}
	})

	t.Run("CatalogueNotShared", func(t *testing.T) {
		// One set's settings do not leak into another's hooks.
		a := mustHooks(t, map[string]hooks.HookSettings{"CreateDiscount4": {Inline: true}})
		b := mustHooks(t, map[string]hooks.HookSettings{"CreateDiscount4": {}})
		if !mustLookupHook(t, a, "CreateDiscount4").Inline {
			t.Errorf("set a: got not Inline, want Inline")
		}
		if mustLookupHook(t, b, "CreateDiscount4").Inline {
			t.Errorf("set b: got Inline, want not Inline")
		}
		c := mustHooks(t, map[string]hooks.HookSettings{"CreateDiscount4": {}})
		if mustLookupHook(t, c, "CreateDiscount4").Inline {
			t.Errorf("set created after an Inline override: got Inline, want not Inline")
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		// Bubblehouse "Hooks API" "We may send unexpected Hello hooks":
		// the Hello family must answer 404, so none of it can be
		// subscribed; Hello1 is implicit.
		for _, name := range []string{
			"Hello1", "Hello2", "Hello", "Hello99",
			"", "1Hook", "_hook", "Send-Event1", "Send Event1", "SendEvent1/", "../SendEvent1",
			"Créer1", "Send\x00Event1", strings.Repeat("a", 101),
		} {
			t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
				settings := catalogueSettings()
				settings[name] = hooks.HookSettings{}
				h, err := hooks.NewBubblehouseHooks(settings)
				assertInvalid(t, err)
				if h != nil {
					t.Fatalf("got %+v, want nil hooks", h)
				}
			})
		}
	})

	t.Run("LongestName", func(t *testing.T) {
		name := "A" + strings.Repeat("b", 99)
		h := mustHooks(t, map[string]hooks.HookSettings{name: {}})
		mustLookupHook(t, h, name)
	})
}

func TestBubblehouseHooks_Lookup(t *testing.T) {
	h := mustHooks(t, map[string]hooks.HookSettings{"SendEvent1": {}, "Private1": {}})

	t.Run("OK", func(t *testing.T) {
		for _, name := range []string{"SendEvent1", "Private1"} {
			if got := mustLookupHook(t, h, name); got.Name != name {
				t.Errorf("%s: got name %q, want %q", name, got.Name, name)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		// Hello1 is answered before Lookup; unsubscribed catalogue hooks
		// and unknown names are not found (Bubblehouse "Hooks API": 404
		// for unknown hooks).
		for _, name := range []string{"Hello1", "Hello2", "CreateDiscount4", "DeliverCustomReward1", "sendevent1", "SendEvent1 ", "Nope", ""} {
			if hook, ok := h.Lookup(name); ok || hook != nil {
				t.Errorf("%q: got %+v, %v; want nil, false", name, hook, ok)
			}
		}
	})
}

func TestBubblehouseHooks_Hello1Answer(t *testing.T) {
	// Bubblehouse "Hooks API" reference "Hooks", Hello1: output is the same
	// magic string back and the hooks array of strings.
	type answer struct {
		Magic json.RawMessage `json:"magic"`
		Hooks []string        `json:"hooks"`
	}
	decode := func(tb testing.TB, out []byte) answer {
		tb.Helper()
		var a answer
		if err := json.Unmarshal(out, &a); err != nil {
			tb.Fatalf("answer %s: %v", out, err)
		}
		return a
	}
	h := mustHooks(t, map[string]hooks.HookSettings{"SendEvent1": {}, "CreateDiscount4": {}})

	t.Run("OK", func(t *testing.T) {
		out, err := h.Hello1Answer([]byte(`{"magic":"abc-123"}`))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), `{"magic":"abc-123","hooks":["CreateDiscount4","SendEvent1"]}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})

	t.Run("MagicVerbatim", func(t *testing.T) {
		// The magic comes back byte for byte, escapes included.
		for _, magic := range []string{
			`""`,
			`"plain"`,
			`"with \"quotes\" and \\ backslash"`,
			`"escaped \u00e9 and unescaped é"`,
			`"surrogates \ud83d\ude00 😀"`,
			`"slash \/ and controls \n\t\r\b\f"`,
			`"` + strings.Repeat("x", 4096) + `"`,
		} {
			t.Run(magic[:min(len(magic), 20)], func(t *testing.T) {
				for _, body := range []string{
					`{"magic":` + magic + `}`,
					` { "magic" : ` + magic + ` , "extra": [1, {"a": null}] } `,
				} {
					out, err := h.Hello1Answer([]byte(body))
					if err != nil {
						t.Fatalf("%s: %v", body, err)
					}
					assertObject(t, out)
					a := decode(t, out)
					if got, want := string(a.Magic), magic; got != want {
						t.Fatalf("magic: got %s, want %s", got, want)
					}
					if got, want := a.Hooks, h.Names(); !slices.Equal(got, want) {
						t.Fatalf("hooks: got %q, want %q", got, want)
					}
				}
			})
		}
	})

	t.Run("MagicVerbatimHTML", func(t *testing.T) {
		// Hello1Answer's doc promises "the input magic verbatim"; the
		// catalogue asks for the same string back. HTML-significant
		// characters and U+2028/U+2029 must not be re-escaped.
		for _, magic := range []string{`"<a&b>"`, "\"line\u2028sep\u2029\""} {
			out, err := h.Hello1Answer([]byte(`{"magic":` + magic + `}`))
			if err != nil {
				t.Fatalf("%s: %v", magic, err)
			}
			if got, want := string(decode(t, out).Magic), magic; got != want {
				t.Errorf("magic: got %s, want %s", got, want)
			}
		}
	})

	t.Run("NoHooks", func(t *testing.T) {
		// An integrator subscribed to nothing still answers an array:
		// "hooks array of strings" (Bubblehouse "Hooks API" reference "Hooks").
		out, err := mustHooks(t, map[string]hooks.HookSettings{}).Hello1Answer([]byte(`{"magic":"m"}`))
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Hooks json.RawMessage `json:"hooks"`
		}
		if err := json.Unmarshal(out, &raw); err != nil {
			t.Fatal(err)
		}
		if got, want := string(raw.Hooks), `[]`; got != want {
			t.Fatalf("hooks: got %s, want %s (answer %s)", got, want, out)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for name, body := range map[string]string{
			"Empty":          ``,
			"NotJSON":        `magic=abc`,
			"Truncated":      `{"magic":"abc"`,
			"TrailingJunk":   `{"magic":"abc"}x`,
			"Null":           `null`,
			"Array":          `[{"magic":"abc"}]`,
			"String":         `"abc"`,
			"NoMagic":        `{}`,
			"OtherField":     `{"magik":"abc"}`,
			"MagicNull":      `{"magic":null}`,
			"MagicNumber":    `{"magic":123}`,
			"MagicBool":      `{"magic":true}`,
			"MagicObject":    `{"magic":{"v":"abc"}}`,
			"MagicArray":     `{"magic":["abc"]}`,
			"MagicBadEscape": `{"magic":"\x"}`,
		} {
			t.Run(name, func(t *testing.T) {
				out, err := h.Hello1Answer([]byte(body))
				assertInvalid(t, err)
				if out != nil {
					t.Fatalf("output: got %s, want nil", out)
				}
			})
		}
	})
}

func TestBubblehouseHook_InlineDeadline(t *testing.T) {
	h := mustHooks(t, map[string]hooks.HookSettings{
		"SendEvent1": {}, "CreateDiscount4": {}, "DeliverCustomReward1": {}, "Private1": {Inline: true},
	})
	tests := []struct {
		hook    string
		urgency hooks.Urgency
		want    time.Duration
		ok      bool
	}{
		// Bubblehouse "Hooks API" "Real-time, urgent and regular calls":
		// real-time hooks run right away, the sender waits for the output.
		{"SendEvent1", hooks.UrgencyRealtime, 8 * time.Second, true},
		{"CreateDiscount4", hooks.UrgencyRealtime, 8 * time.Second, true},
		{"DeliverCustomReward1", hooks.UrgencyRealtime, 8 * time.Second, true},
		{"Private1", hooks.UrgencyRealtime, 8 * time.Second, true},
		// Bubblehouse "Hooks API" reference: DeliverCustomReward1's answer
		// carries the business result, so it runs inline at any urgency.
		{"DeliverCustomReward1", hooks.UrgencyRegular, 25 * time.Second, true},
		{"DeliverCustomReward1", hooks.UrgencyUrgent, 25 * time.Second, true},
		{"Private1", hooks.UrgencyRegular, 25 * time.Second, true},
		// Others are queued.
		{"CreateDiscount4", hooks.UrgencyRegular, 0, false},
		{"CreateDiscount4", hooks.UrgencyUrgent, 0, false},
		{"SendEvent1", hooks.UrgencyRegular, 0, false},
		{"SendEvent1", hooks.UrgencyUrgent, 0, false},
		{"SendEvent1", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.hook+"/"+string(tt.urgency), func(t *testing.T) {
			d, ok := mustLookupHook(t, h, tt.hook).InlineDeadline(tt.urgency)
			if d != tt.want || ok != tt.ok {
				t.Fatalf("got %v, %v; want %v, %v", d, ok, tt.want, tt.ok)
			}
		})
	}

	t.Run("WithinCallLimits", func(t *testing.T) {
		// Bubblehouse "Hooks API" "Time Limits & Retry": real-time calls
		// get 10 s, others 30 s; an answer must arrive before that.
		if got, limit := hooks.RealtimeDeadline, hooks.BubblehouseRealtimeLimit; got >= limit || limit != 10*time.Second {
			t.Errorf("real-time deadline: got %v (limit %v), want below 10s", got, limit)
		}
		if got, limit := hooks.InlineDeadline, hooks.BubblehouseCallLimit; got >= limit || limit != 30*time.Second {
			t.Errorf("inline deadline: got %v (limit %v), want below 30s", got, limit)
		}
	})
}

func TestBubblehouseHook_DedupKey(t *testing.T) {
	// Bubblehouse "Hooks API" reference "Hooks", SendEvent1: bhid stays the same
	// when the same event is sent again; deduplicate on it.
	h := mustHooks(t, catalogueSettings())
	send := mustLookupHook(t, h, "SendEvent1")

	t.Run("OK", func(t *testing.T) {
		tests := []struct{ name, body, want string }{
			{"String", `{"bhid":"evt-1","type":"points"}`, "SendEvent1/bhid:evt-1"},
			{"Escaped", `{"bhid":"\u0065vt-1"}`, "SendEvent1/bhid:evt-1"},
			{"Whitespace", " {\n \"bhid\" : \"evt-1\" } ", "SendEvent1/bhid:evt-1"},
			{"Number", `{"bhid":12345}`, "SendEvent1/bhid:12345"},
			{"Zero", `{"bhid":0}`, "SendEvent1/bhid:0"},
			{"Nested", `{"event":{"bhid":"inner"},"bhid":"outer"}`, "SendEvent1/bhid:outer"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := send.DedupKey([]byte(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			})
		}
	})

	t.Run("Distinct", func(t *testing.T) {
		a, errA := send.DedupKey([]byte(`{"bhid":"evt-1"}`))
		b, errB := send.DedupKey([]byte(`{"bhid":"evt-2"}`))
		if errA != nil || errB != nil || a == b {
			t.Fatalf("got %q (%v) and %q (%v), want two distinct keys", a, errA, b, errB)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for name, body := range map[string]string{
			"Missing":     `{"type":"points"}`,
			"OtherCase":   `{"BHID":"evt-1"}`,
			"Empty":       `{"bhid":""}`,
			"Null":        `{"bhid":null}`,
			"Bool":        `{"bhid":true}`,
			"Object":      `{"bhid":{"id":"evt-1"}}`,
			"Array":       `{"bhid":["evt-1"]}`,
			"NotJSON":     `bhid=evt-1`,
			"EmptyBody":   ``,
			"Truncated":   `{"bhid":"evt-1"`,
			"Trailing":    `{"bhid":"evt-1"} {}`,
			"BodyArray":   `[{"bhid":"evt-1"}]`,
			"BodyString":  `"evt-1"`,
			"BodyNull":    `null`,
			"BadEscape":   `{"bhid":"\q"}`,
			"EmptyObject": `{}`,
		} {
			t.Run(name, func(t *testing.T) {
				key, err := send.DedupKey([]byte(body))
				assertInvalid(t, err)
				if key != "" {
					t.Fatalf("key: got %q, want empty", key)
				}
			})
		}
	})

	t.Run("NoDedupField", func(t *testing.T) {
		// Hooks without a content key never fail here, whatever the body.
		for _, name := range []string{"CreateDiscount4", "DeliverCustomReward1"} {
			hook := mustLookupHook(t, h, name)
			for _, body := range []string{`{"bhid":"evt-1"}`, `not json`, ``} {
				if key, err := hook.DedupKey([]byte(body)); key != "" || err != nil {
					t.Errorf("%s %q: got %q, %v; want \"\", nil", name, body, key, err)
				}
			}
		}
	})
}

// Hello1 reads exactly the member magic, as CreateDiscount4's default
// output reads exactly code: encoding/json's struct decoding also takes
// "Magic" or "MAGIC", and keeps whichever comes last.
func TestBubblehouseHooks_Hello1ExactMagic(t *testing.T) {
	h := mustHooks(t, map[string]hooks.HookSettings{"SendEvent1": {}})
	for _, tt := range []struct {
		body, magic string // magic "" wants an EINVALID error
	}{
		{`{"Magic":"x"}`, ""},
		{`{"MAGIC":"x"}`, ""},
		{`{"magic":"a","MAGIC":"b"}`, `"a"`},
		{`{"MAGIC":"b","magic":"a"}`, `"a"`},
		{`{"Magic":1,"magic":"a"}`, `"a"`},
		{`{"magic":"a","Magic":1}`, `"a"`},
		{`{"magic":"a","magic":"b"}`, `"b"`}, // a repeated name: the last, as encoding/json decodes a map
		{`{"m\u0061gic":"esc"}`, `"esc"`},    // the same name, escaped
	} {
		out, err := h.Hello1Answer([]byte(tt.body))
		if tt.magic == "" {
			if err == nil {
				t.Errorf("%s: got %s, want an error: there is no member magic", tt.body, out)
				continue
			}
			assertInvalid(t, err)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		if want := `{"magic":` + tt.magic + `,"hooks":["SendEvent1"]}`; string(out) != want {
			t.Errorf("%s: got %s, want %s", tt.body, out, want)
		}
	}
}

// Hello1 refuses what CheckObject refuses: an answer built from invalid
// UTF-8 would not be valid JSON.
func TestBubblehouseHooks_Hello1InvalidUTF8(t *testing.T) {
	h := mustHooks(t, map[string]hooks.HookSettings{})
	for _, body := range []string{"{\"magic\":\"\xff\xfe\"}", "{\"magic\":\"ok\",\"x\":\"\xc3\"}"} {
		out, err := h.Hello1Answer([]byte(body))
		if err == nil {
			t.Errorf("%q: got %q, want an error", body, out)
			continue
		}
		assertInvalid(t, err)
	}
}

// An action's output is read by its exact member names, as Bubblehouse
// reads it: {"Delivered":true} does not say delivered.
func TestBubblehouseHook_OutputExactNames(t *testing.T) {
	h := mustHooks(t, catalogueSettings())
	reward, send := mustLookupHook(t, h, "DeliverCustomReward1"), mustLookupHook(t, h, "SendEvent1")
	for _, tt := range []struct {
		hook *hooks.BubblehouseHook
		out  string
		ok   bool
	}{
		{reward, `{"delivered":true}`, true},
		{reward, `{"delivered":false,"message":"gone"}`, true},
		{reward, `{"Delivered":true}`, false},
		{reward, `{"DELIVERED":false}`, false},
		{reward, `{"delivered":"true"}`, false},
		{send, `{"outcome":"sent"}`, true},
		{send, `{"Outcome":"sent"}`, false},
		{send, `{"outcome":"failure","OUTCOME":"sent"}`, true},
		{send, `{"outcome":"SENT"}`, false},
	} {
		_, err := tt.hook.Output([]byte(tt.out), []byte(`{}`))
		if (err == nil) != tt.ok {
			t.Errorf("%s.Output(%s): got %v, want ok=%v", tt.hook.Name, tt.out, err, tt.ok)
		}
	}
	// outcome failure holds Bubblehouse's queue: read exactly, whatever
	// other spellings follow it.
	if send.Settles([]byte(`{"outcome":"failure","OUTCOME":"sent"}`)) {
		t.Errorf("Settles: outcome failure followed by OUTCOME sent settled the event")
	}
	if !send.Settles([]byte(`{"outcome":"sent","Outcome":"failure"}`)) {
		t.Errorf("Settles: outcome sent followed by Outcome failure did not settle the event")
	}
}

func TestBubblehouseHook_DefaultOutput(t *testing.T) {
	// Bubblehouse "Hooks API" "Hook requests": the response body must be
	// a valid output JSON object; Bubblehouse "Hooks API" reference "Hooks" lists
	// each hook's output.
	h := mustHooks(t, map[string]hooks.HookSettings{
		"SendEvent1": {}, "CreateDiscount4": {}, "DeliverCustomReward1": {}, "Private1": {},
	})
	bodies := []string{
		`{"code":"SAVE10","title":"10% off"}`,
		`{"bhid":"evt-1"}`,
		`{}`,
		``,
		`not json`,
		`{"code":12}`,
		`{"code":null}`,
		`{"code":"A\"B<>&\u00e9"}`,
	}

	t.Run("Object", func(t *testing.T) {
		for _, name := range h.Names() {
			hook := mustLookupHook(t, h, name)
			for _, body := range bodies {
				out := hook.DefaultOutput([]byte(body))
				assertObject(t, out)
				if err := hooks.CheckObject(out); err != nil {
					t.Errorf("%s %q: CheckObject(%s): %v", name, body, out, err)
				}
			}
		}
	})

	t.Run("SendEvent1", func(t *testing.T) {
		// outcome sent or skipped is success; anything else fails the event.
		var out struct{ Outcome string }
		if err := json.Unmarshal(mustLookupHook(t, h, "SendEvent1").DefaultOutput([]byte(`{"bhid":"x"}`)), &out); err != nil {
			t.Fatal(err)
		}
		if got, want := out.Outcome, "sent"; got != want {
			t.Fatalf("outcome: got %q, want %q", got, want)
		}
	})

	t.Run("DeliverCustomReward1", func(t *testing.T) {
		// delivered is required; false causes a refund and a failure.
		var out map[string]any
		if err := json.Unmarshal(mustLookupHook(t, h, "DeliverCustomReward1").DefaultOutput(nil), &out); err != nil {
			t.Fatal(err)
		}
		if got, want := out["delivered"], any(true); got != want {
			t.Fatalf("delivered: got %v, want %v", got, want)
		}
	})

	t.Run("CreateDiscount4KeepsCode", func(t *testing.T) {
		hook := mustLookupHook(t, h, "CreateDiscount4")
		for _, code := range []string{`"SAVE10"`, `"A\"B<>&\u00e9"`, `""`} {
			out := hook.DefaultOutput([]byte(`{"title":"t","code":` + code + `,"amount":100}`))
			var got struct{ Code json.RawMessage }
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			if string(got.Code) != code {
				t.Errorf("code: got %s, want %s", got.Code, code)
			}
		}
		// A code that is not a string is not repeated, nor is a field
		// whose name only folds to "code".
		for _, body := range []string{`{"code":12}`, `{"code":null}`, `{}`, `garbage`, `{"Code":"X"}`} {
			if got, want := string(hook.DefaultOutput([]byte(body))), `{"ok":true}`; got != want {
				t.Errorf("%s: got %s, want %s", body, got, want)
			}
		}
	})
}

func TestCheckObject(t *testing.T) {
	// Bubblehouse "Hooks API" "Hook requests": the request body is the
	// input JSON object for the hook.
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"Empty", ``, false},
		{"Whitespace", " \t\r\n", false},
		{"Array", `[]`, false},
		{"ArrayOfObjects", `[{"a":1}]`, false},
		{"String", `"{}"`, false},
		{"Number", `42`, false},
		{"NegativeNumber", `-1.5e3`, false},
		{"Null", `null`, false},
		{"True", `true`, false},
		{"False", `false`, false},
		{"Invalid", `{"a":}`, false},
		{"Unterminated", `{"a":1`, false},
		{"SingleQuotes", `{'a':1}`, false},
		{"TrailingGarbage", `{"a":1}x`, false},
		{"TwoObjects", `{}{}`, false},
		{"TrailingComma", `{"a":1,}`, false},
		{"BOM", "\xef\xbb\xbf{}", false},
		{"NUL", "{}\x00", false},
		{"EmptyObject", `{}`, true},
		{"Object", `{"a":1,"b":[true,null,"x"],"c":{"d":-1.5}}`, true},
		{"SurroundingWhitespace", " \n\t{\"a\":1}\r\n ", true},
		{"DuplicateKeys", `{"a":1,"a":2}`, true},
		// RFC 8259 section 8.1: JSON text exchanged between systems is
		// UTF-8. encoding/json accepts other bytes in a string and
		// decodes them as U+FFFD, so what was stored is not what is read.
		{"InvalidUTF8InString", "{\"a\":\"\xff\"}", false},
		{"InvalidUTF8InKey", "{\"\xc3\":1}", false},
		{"TruncatedUTF8", "{\"a\":\"caf\xc3\"}", false},
		{"Surrogate", "{\"a\":\"\xed\xa0\x80\"}", false},
		{"UTF8", "{\"a\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", true},
		// Nesting: one limit for every sender, far below encoding/json's
		// 10,000, so that whatever is accepted can be decoded and shown.
		{"DeepAtLimit", `{"a":` + strings.Repeat("[", hooks.MaxJSONDepth-1) + strings.Repeat("]", hooks.MaxJSONDepth-1) + `}`, true},
		{"DeepOverLimit", `{"a":` + strings.Repeat("[", hooks.MaxJSONDepth) + strings.Repeat("]", hooks.MaxJSONDepth) + `}`, false},
		{"Deep10000", `{"a":` + strings.Repeat(`{"a":`, 9999) + `1` + strings.Repeat("}", 9999) + `}`, false},
		{"BracketsInStringsAreNotNesting", `{"a":"` + strings.Repeat("[{", 1000) + `"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := hooks.CheckObject([]byte(tt.body))
			if tt.ok {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			assertInvalid(t, err)
			if hooks.ErrorMessage(err) == "" {
				t.Fatalf("got an empty message, want an explanation")
			}
		})
	}
}

func TestInvalidOutcome(t *testing.T) {
	// Bubblehouse "Hooks API" reference "Hooks", SendEvent1: a bad event is
	// answered 200 with outcome invalid_data.
	for _, reason := range []string{"", "bhid is required", `quote " backslash \ newline` + "\n", "<html> & é 😀"} {
		t.Run(fmt.Sprintf("%.20q", reason), func(t *testing.T) {
			b := hooks.InvalidOutcome(reason)
			assertObject(t, b)
			var out struct {
				Outcome string `json:"outcome"`
				Error   string `json:"error"`
			}
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			if got, want := out.Outcome, "invalid_data"; got != want {
				t.Errorf("outcome: got %q, want %q", got, want)
			}
			if got, want := out.Error, reason; got != want {
				t.Errorf("error: got %q, want %q", got, want)
			}
		})
	}

	t.Run("InvalidUTF8", func(t *testing.T) {
		if b := hooks.InvalidOutcome("bad \xff byte"); !json.Valid(b) || !bytes.Contains(b, []byte(`"invalid_data"`)) {
			t.Fatalf("got %q, want valid JSON with outcome invalid_data", b)
		}
	})
}
