package qa

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hookbay/hookbay/hooks"
)

// Bubblehouse urgencies as sent in X-BH-Urgency.
const (
	bhRealtime = "real-time"
	bhUrgent   = "urgent"
)

// BubblehouseOptions describes Bubblehouse hook calls.
type BubblehouseOptions struct {
	// URLTemplate is the hook URL as entered on Bubblehouse's API settings
	// page; ":name" is replaced with the hook name.
	URLTemplate string
	// Hook is the hook to call (BubblehouseRequest); default Hello1.
	Hook string
	// Urgency is X-BH-Urgency; default real-time for Hello1, urgent otherwise.
	Urgency string
	// RequestID is X-Request-ID; default a fresh random UUID.
	RequestID string
	// Authorization is the fixed Authorization value. JWTSecret instead
	// signs a fresh "Bearer <HS256 JWT>" for each call. At most one is set.
	Authorization, JWTSecret string
	// Data is the request body; default a realistic input for the hook.
	Data []byte
	// Timeout bounds each urgent or regular call (default 30 s, the
	// contract's call time limit).
	Timeout time.Duration
	// RealtimeLimit bounds each real-time call (default and maximum 10 s,
	// the contract's real-time call limit); above half of it is a warning.
	RealtimeLimit time.Duration
}

func (o BubblehouseOptions) withDefaults() BubblehouseOptions {
	if o.Hook == "" {
		o.Hook = hooks.Hello1
	}
	if o.Timeout <= 0 {
		o.Timeout = hooks.BubblehouseCallLimit
	}
	if o.RealtimeLimit <= 0 || o.RealtimeLimit > hooks.BubblehouseRealtimeLimit {
		o.RealtimeLimit = hooks.BubblehouseRealtimeLimit
	}
	return o
}

// bhHookKey carries the hook name in a built request's context, so that
// BubblehouseMeaning need not guess it from a URL template that may put
// :name anywhere.
type bhHookKey struct{}

// BubblehouseRequest builds a hook call exactly as Bubblehouse sends it
// (Bubblehouse "Hooks API", "Hook requests"): a POST to the template
// with :name replaced, Content-Type and Accepts application/json,
// X-Request-ID, X-BH-Urgency and Authorization. It returns the request
// and its body, for Client.Do.
func BubblehouseRequest(o BubblehouseOptions) (*http.Request, []byte, error) {
	o = o.withDefaults()
	if !strings.Contains(o.URLTemplate, ":name") {
		return nil, nil, fmt.Errorf("hook URL %q has no :name to replace with the hook name", o.URLTemplate)
	}
	if o.Authorization != "" && o.JWTSecret != "" {
		return nil, nil, errors.New("give a fixed Authorization value or a JWT secret, not both")
	}
	u := strings.ReplaceAll(o.URLTemplate, ":name", url.PathEscape(o.Hook))
	if pu, err := url.Parse(u); err != nil {
		return nil, nil, fmt.Errorf("hook URL: %w", err)
	} else if pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "" {
		return nil, nil, fmt.Errorf("hook URL %q: want an absolute http(s) URL", o.URLTemplate)
	}
	body := o.Data
	if body == nil {
		body = BubblehouseInput(o.Hook)
	}
	ctx := context.WithValue(context.Background(), bhHookKey{}, o.Hook)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("build %s request: %w", o.Hook, err)
	}
	urgency := o.Urgency
	if urgency == "" {
		urgency = bhUrgent
		if o.Hook == hooks.Hello1 {
			urgency = bhRealtime
		}
	}
	id := o.RequestID
	if id == "" {
		id = bhUUID()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accepts", "application/json") // sic: the contract's header name
	req.Header.Set("X-Request-ID", id)
	req.Header.Set("X-BH-Urgency", urgency)
	switch {
	case o.Authorization != "":
		req.Header.Set("Authorization", o.Authorization)
	case o.JWTSecret != "":
		tok, err := bhJWT(o.JWTSecret, time.Now())
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req, body, nil
}

// bhJWT signs the bearer token the catalogue describes ("JWT HS256 Bearer
// token"), valid for 5 minutes.
func bhJWT(secret string, now time.Time) (string, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return tok, nil
}

// BubblehouseInput returns a realistic input object for a hook: the
// catalogue's required fields for the hooks it lists
// (the Bubblehouse "Hooks API" reference pages), and {} for any other.
func BubblehouseInput(hook string) []byte {
	var v any
	switch hook {
	case hooks.Hello1:
		v = map[string]any{"magic": "hookbay-" + bhHex(8)}
	case "CreateDiscount4":
		v = map[string]any{
			"code":       "HB-" + strings.ToUpper(bhHex(4)),
			"title":      "10% off your next order",
			"percentage": 1000, // permyriad: 10%
			"max_uses":   1,
			"end_time":   time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339),
		}
	case "DeliverCustomReward1":
		v = map[string]any{
			"reward_identifier": "hookbay-test-reward",
			"reward_title":      "Test reward from hookbay",
			"unlock_time":       time.Now().UTC().Format(time.RFC3339),
		}
	case "SendEvent1":
		v = map[string]any{"bhid": "hookbay-" + bhHex(8), "type": "points_earned", "points": 10}
	default:
		return []byte(`{}`)
	}
	b, _ := json.Marshal(v)
	return b
}

func bhHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// bhUUID returns a random (version 4) UUID, as Bubblehouse's X-Request-ID.
func bhUUID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// bhHook returns the hook an exchange called.
func bhHook(r *http.Request) string {
	if h, ok := r.Context().Value(bhHookKey{}).(string); ok {
		return h
	}
	return path.Base(r.URL.Path)
}

// bhHeader reads a request header whatever the case of its key (the
// header-case probe sets raw lower-case keys).
func bhHeader(h http.Header, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// bhAccepted reports whether Bubblehouse accepts an answer status.
func bhAccepted(status int) bool {
	switch status {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent:
		return true
	}
	return false
}

// bhObject decodes an answer that must be one JSON object; the error says
// why it is not.
func bhObject(b []byte) (map[string]json.RawMessage, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, errors.New("the body is empty")
	}
	var m map[string]json.RawMessage
	if t[0] != '{' || json.Unmarshal(t, &m) != nil {
		if !json.Valid(t) {
			return nil, errors.New("the body is not valid JSON")
		}
		return nil, errors.New("the body is JSON but not an object")
	}
	return m, nil
}

// bhRetryWindow says how long Bubblehouse keeps retrying a call of this
// urgency (Bubblehouse "Hooks API", "Time Limits & Retry").
func bhRetryWindow(urgency string) string {
	switch strings.ToLower(urgency) {
	case bhRealtime:
		return "100ms, then 1 second, 5 times"
	case bhUrgent:
		return "for up to 1 hour"
	}
	return "for up to 48 hours"
}

// BubblehouseMeaning says what an answer means to Bubblehouse, following
// Bubblehouse's "Hooks API" ("Hook requests", "Time Limits & Retry") and
// the hook's output in the "Hooks API" reference.
func BubblehouseMeaning(x *Exchange) string {
	hook := bhHook(x.Request)
	urgency := bhHeader(x.Request.Header, "X-BH-Urgency")
	retry := "Bubblehouse will retry (" + bhRetryWindow(urgency) + "), then mark the hook failed"
	queue := ""
	if hook == "SendEvent1" {
		queue = "; failure or any HTTP error holds the whole event queue until it succeeds"
	}
	if x.Err != nil {
		return "no answer (" + x.Err.Error() + "): " + retry + queue
	}
	if !bhAccepted(x.Status) {
		switch {
		case x.Status == http.StatusNotFound && hooks.IsHello(hook) && hook != hooks.Hello1:
			return "404: Bubblehouse treats the hook as not implemented (expected only for unknown hooks and Hello2)"
		case x.Status == http.StatusNotFound:
			return "404: Bubblehouse treats the hook as not implemented (expected only for unknown hooks and Hello2); " +
				"for a subscribed hook it is an error: " + retry + queue
		case x.Status == http.StatusUnauthorized || x.Status == http.StatusForbidden:
			return fmt.Sprintf("Bubblehouse will retry: %d (the Authorization value on the API settings page is refused); %s%s", x.Status, retry, queue)
		}
		return fmt.Sprintf("Bubblehouse will retry: %d is not 200, 201, 202 or 204; %s%s", x.Status, retry, queue)
	}
	obj, err := bhObject(x.Answer)
	if err != nil {
		return fmt.Sprintf("not a valid output object (%d, %s): %s%s", x.Status, err, retry, queue)
	}
	switch hook {
	case hooks.Hello1:
		// The magic sent is the member named exactly magic.
		var sent, magic string
		var list []string
		json.Unmarshal(hooks.Member(x.Body, "magic"), &sent) //nolint:errcheck // a body without magic compares as ""
		if json.Unmarshal(obj["magic"], &magic) != nil || magic != sent {
			return "the handshake fails: magic is not the string sent; Bubblehouse may stop calling the other hooks"
		}
		if json.Unmarshal(obj["hooks"], &list) != nil {
			return "the handshake fails: hooks is not an array of strings; Bubblehouse may stop calling the other hooks"
		}
		if len(list) == 0 {
			return "accepted: handshake OK, subscribed to no other hook"
		}
		return "accepted: handshake OK, subscribed to " + strings.Join(list, ", ")
	case "DeliverCustomReward1":
		var delivered *bool
		json.Unmarshal(obj["delivered"], &delivered) //nolint:errcheck // nil is reported below
		switch {
		case delivered == nil:
			return "not a valid output object (delivered must be a boolean): " + retry
		case !*delivered:
			return "delivered=false: Bubblehouse refunds the customer and marks the hook failed"
		}
		return "accepted: reward delivered"
	case "SendEvent1":
		var outcome string
		json.Unmarshal(obj["outcome"], &outcome) //nolint:errcheck // "" is reported below
		switch outcome {
		case "sent", "skipped":
			return "accepted: outcome " + outcome + ", the event leaves Bubblehouse's queue"
		case "invalid_data", "unsubscribed":
			return "permanent failure: outcome " + outcome + ", the event is removed from Bubblehouse's queue"
		case "failure":
			return "temporary failure: failure or any HTTP error holds the whole event queue until it succeeds"
		}
		return "not a valid output object (outcome must be sent, skipped, invalid_data, unsubscribed or failure): " + retry + queue
	}
	return "accepted"
}
