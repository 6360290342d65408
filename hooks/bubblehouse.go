package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Bubblehouse call time limits (Bubblehouse "Hooks API", "Time Limits &
// Retry"), and the deadlines hookbay keeps inside them so that an answer
// still reaches Bubblehouse before it gives up.
const (
	BubblehouseRealtimeLimit = 10 * time.Second
	BubblehouseCallLimit     = 30 * time.Second
	RealtimeDeadline         = 8 * time.Second
	InlineDeadline           = 25 * time.Second
)

// Hello1 is the handshake hook: implicit, always served, never listed.
const Hello1 = "Hello1"

var hookNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)

// BubblehouseHook is one hook the integrator subscribed to.
type BubblehouseHook struct {
	Name string
	// Inline runs the hook while Bubblehouse waits, whatever the urgency,
	// because its answer carries a business result.
	Inline bool
	// DedupField names a top-level input field that identifies the event
	// across resends (SendEvent1's bhid); "" for none.
	DedupField string
	// Outcomes marks a hook whose answer reports failures as an "outcome"
	// field with status 200 rather than as an HTTP error (SendEvent1).
	Outcomes bool
}

// catalogue holds what Bubblehouse's hook pages say about the public hooks
// (Bubblehouse "Hooks API" reference).
var catalogue = map[string]BubblehouseHook{
	"CreateDiscount4":      {Name: "CreateDiscount4"},
	"DeliverCustomReward1": {Name: "DeliverCustomReward1", Inline: true},
	"SendEvent1":           {Name: "SendEvent1", DedupField: "bhid", Outcomes: true},
}

// CatalogueHooks returns the names of the public hooks hookbay knows, sorted.
func CatalogueHooks() []string {
	names := make([]string, 0, len(catalogue))
	for n := range catalogue {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HookSettings is the integrator's configuration of one subscribed hook.
type HookSettings struct {
	// Inline forces inline execution for a private hook whose answer
	// carries a business result. Catalogue hooks that need it have it.
	Inline bool
}

// BubblehouseHooks is the set of hooks the integrator subscribed to.
type BubblehouseHooks struct {
	hooks map[string]*BubblehouseHook
	names []string
}

// NewBubblehouseHooks validates the subscribed hooks and returns the set.
// Hello-family names are refused: Hello1 is implicit and the others must
// stay unknown (404) as the contract requires.
func NewBubblehouseHooks(settings map[string]HookSettings) (*BubblehouseHooks, error) {
	h := &BubblehouseHooks{hooks: make(map[string]*BubblehouseHook, len(settings))}
	for name, s := range settings {
		if !hookNameRE.MatchString(name) {
			return nil, Errorf(EINVALID, "hook name %q: must be letters, digits and underscores, starting with a letter", name)
		}
		if IsHello(name) {
			return nil, Errorf(EINVALID, "hook name %q: the Hello family is not subscribed to (Hello1 is implicit, others must answer 404)", name)
		}
		hook := catalogue[name]
		hook.Name = name
		hook.Inline = hook.Inline || s.Inline
		h.hooks[name] = &hook
		h.names = append(h.names, name)
	}
	sort.Strings(h.names)
	return h, nil
}

// IsHello reports whether name belongs to the Hello handshake family.
func IsHello(name string) bool { return strings.HasPrefix(name, "Hello") }

// Lookup returns a subscribed hook. Hello1 is not one: callers handle it first.
func (h *BubblehouseHooks) Lookup(name string) (*BubblehouseHook, bool) {
	hook, ok := h.hooks[name]
	return hook, ok
}

// Names returns the subscribed hook names, sorted, as Hello1 lists them.
func (h *BubblehouseHooks) Names() []string { return append([]string{}, h.names...) }

// Hello1Answer answers the handshake: the input magic verbatim and the
// subscribed hooks. The input must be a JSON object (CheckObject) with a
// string member named exactly magic: decoding into a struct would also
// take "Magic" or "MAGIC", and keep whichever came last.
func (h *BubblehouseHooks) Hello1Answer(body []byte) ([]byte, error) {
	if err := CheckObject(body); err != nil {
		return nil, Errorf(EINVALID, "Hello1 input: %s", ErrorMessage(err))
	}
	magic := objectMember(body, "magic")
	if len(magic) == 0 || magic[0] != '"' {
		return nil, Errorf(EINVALID, "Hello1 input: magic must be a string")
	}
	// The magic goes back byte for byte: json.Marshal would re-escape it
	// (<, >, &, U+2028), and Bubblehouse compares the string it sent.
	hooks, err := json.Marshal(h.Names())
	if err != nil {
		return nil, fmt.Errorf("encode Hello1 answer: %w", err)
	}
	out := make([]byte, 0, len(magic)+len(hooks)+20)
	out = append(append(append(out, `{"magic":`...), magic...), `,"hooks":`...)
	return append(append(out, hooks...), '}'), nil
}

// InlineDeadline returns how long the hook may run inline, and whether it
// runs inline at all for this urgency.
func (hook *BubblehouseHook) InlineDeadline(u Urgency) (time.Duration, bool) {
	switch {
	case u == UrgencyRealtime:
		return RealtimeDeadline, true
	case hook.Inline:
		return InlineDeadline, true
	}
	return 0, false
}

// DedupKey returns the content key that identifies the event across
// resends (SendEvent1's bhid), or "" when the hook has none or the input
// lacks it.
func (hook *BubblehouseHook) DedupKey(body []byte) (string, error) {
	if hook.DedupField == "" {
		return "", nil
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return "", Errorf(EINVALID, "%s input: %s", hook.Name, jsonProblem(err))
	}
	raw, ok := in[hook.DedupField]
	if !ok {
		return "", Errorf(EINVALID, "%s input: %s is required", hook.Name, hook.DedupField)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		// A number is accepted too: the catalogue does not fix the type.
		if len(raw) == 0 || !(raw[0] >= '0' && raw[0] <= '9') {
			return "", Errorf(EINVALID, "%s input: %s must be a non-empty string", hook.Name, hook.DedupField)
		}
		s = string(raw)
	}
	return hook.Name + "/" + hook.DedupField + ":" + s, nil
}

// DefaultOutput is the answer of a hook whose action has no output of its
// own: a valid output object for that hook (Bubblehouse "Hooks API" reference).
func (hook *BubblehouseHook) DefaultOutput(body []byte) []byte {
	switch hook.Name {
	case "SendEvent1":
		return []byte(`{"outcome":"sent"}`)
	case "DeliverCustomReward1":
		return []byte(`{"delivered":true,"notes":"recorded by hookbay"}`)
	case "CreateDiscount4":
		// Every queued CreateDiscount4 passes here: the code is picked
		// from the top level without decoding the body a second time. The
		// name matches exactly, as the catalogue spells it ("Code" is
		// another field, which encoding/json's case folding used to take).
		if code := objectMember(body, "code"); len(code) > 0 && code[0] == '"' && json.Valid(code) {
			return append(append([]byte(`{"ok":true,"code":`), code...), '}')
		}
	}
	return []byte(`{"ok":true}`)
}

// sendEventOutcomes are SendEvent1's outcomes (Bubblehouse "Hooks API" reference).
var sendEventOutcomes = map[string]bool{"sent": true, "skipped": true, "invalid_data": true, "unsubscribed": true, "failure": true}

// Output checks an action's output against the hook's output shape and
// returns the answer: the output itself, or the default output when the
// action answered nothing and the hook requires no field.
func (hook *BubblehouseHook) Output(out, input []byte) ([]byte, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		if hook.Name == "DeliverCustomReward1" {
			return nil, Errorf(EINVALID, "DeliverCustomReward1 output must say whether the reward was delivered")
		}
		return hook.DefaultOutput(input), nil
	}
	if err := CheckObject(out); err != nil {
		return nil, Errorf(EINVALID, "output: %s", ErrorMessage(err))
	}
	// Members are read by their exact names, as Bubblehouse reads them:
	// {"Delivered":true} does not say delivered.
	switch hook.Name {
	case "DeliverCustomReward1":
		if d := string(objectMember(out, "delivered")); d != "true" && d != "false" {
			return nil, Errorf(EINVALID, "DeliverCustomReward1 output: delivered must be a boolean")
		}
	case "SendEvent1":
		if !sendEventOutcomes[outcomeOf(out)] {
			return nil, Errorf(EINVALID, "SendEvent1 output: outcome must be sent, skipped, invalid_data, unsubscribed or failure")
		}
	}
	return out, nil
}

// CatalogueHook returns what the catalogue says of the hook called name,
// or a hook with that name and nothing else (a private hook).
func CatalogueHook(name string) *BubblehouseHook {
	if hook, ok := catalogue[name]; ok {
		return &hook
	}
	return &BubblehouseHook{Name: name}
}

// Settles reports whether an output checked by Output is the request's
// final answer. SendEvent1's outcome failure is not: Bubblehouse retries
// it, and the retry must run the action again (Bubblehouse "Hooks API" reference).
func (hook *BubblehouseHook) Settles(out []byte) bool {
	if !hook.Outcomes || !json.Valid(out) {
		return true
	}
	return outcomeOf(out) != "failure"
}

// outcomeOf reads the string member named exactly outcome of a valid JSON
// object; "" when there is none.
func outcomeOf(out []byte) string {
	var o string
	json.Unmarshal(objectMember(out, "outcome"), &o) //nolint:errcheck // not a string reads as ""
	return o
}

// Queued adapts the hook's action for the queue: an output that does not
// settle the hook (SendEvent1's outcome failure) is a failed attempt,
// retried under the queue's policy. hookbay answered Bubblehouse when it
// queued the event, and owns its delivery from then on.
func (hook *BubblehouseHook) Queued(a Action) Action {
	if !hook.Outcomes {
		return a
	}
	return ActionFunc(func(ctx context.Context, j *Job) ([]byte, error) {
		out, err := a.Run(ctx, j)
		if err == nil && len(bytes.TrimSpace(out)) > 0 && !hook.Settles(out) {
			return out, errors.New("the action answered outcome failure, a temporary failure: retried")
		}
		return out, err
	})
}

// InvalidOutcome is SendEvent1's answer to an event it cannot use: 200 with
// outcome invalid_data removes the one event from Bubblehouse's queue, where
// an HTTP error would hold the whole queue (Bubblehouse "Hooks API" reference).
func InvalidOutcome(reason string) []byte {
	b, _ := json.Marshal(struct {
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
	}{"invalid_data", reason})
	return b
}

// CheckObject returns an EINVALID error, saying why, unless body is one
// JSON object that every reader can read back: well-formed, valid UTF-8
// (CheckText) and nested at most MaxJSONDepth deep (CheckDepth).
func CheckObject(body []byte) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return Errorf(EINVALID, "body is empty: a JSON object is required")
	}
	if err := CheckDepth(trimmed); err != nil {
		return err
	}
	if !json.Valid(trimmed) {
		var v any
		return Errorf(EINVALID, "body is not valid JSON: %s", jsonProblem(json.Unmarshal(trimmed, &v)))
	}
	if err := CheckText(trimmed); err != nil {
		return err
	}
	if trimmed[0] != '{' {
		return Errorf(EINVALID, "body must be a JSON object, not %s", jsonKind(trimmed[0]))
	}
	return nil
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// jsonProblem describes a JSON decoding error without echoing Go types.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s has the wrong type (%s)", typ.Field, typ.Value)
		}
		return fmt.Sprintf("expected a JSON object, got %s", typ.Value)
	}
	return err.Error()
}
