package qa

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// SvixDefaultTimeout is the sender's response timeout when none is given.
// The contract leaves it as a placeholder ("{timeout duration}").
const SvixDefaultTimeout = 15 * time.Second

// SvixOptions describe one Svix-signed delivery, or the endpoint that
// ConformSvix probes.
type SvixOptions struct {
	URL string
	// Secret is the endpoint's signing secret, whsec_<base64>.
	Secret string
	// Type is the event type of the default payload (user.created).
	Type string
	// ID is the message id; default a fresh msg_… id. ConformSvix ignores
	// it: every probe uses its own fresh id.
	ID string
	// Timestamp is the signing time; default now. ConformSvix ignores it.
	Timestamp time.Time
	// Data is the exact body; default {"type":Type,"data":{…}}.
	Data []byte
	// Headers is the header set to send: "svix" (default) for svix-id,
	// svix-timestamp and svix-signature, or "webhook" for the Standard
	// Webhooks webhook-* set.
	Headers string
	// Timeout is the sender's response timeout (default 15 s): an answer
	// that takes longer is a failed delivery.
	Timeout time.Duration
	// EventsCheck, when set, counts how many times the receiver processed
	// the message with this id; ConformSvix uses it to check that a
	// redelivery is not processed again. Without it that check is skipped.
	EventsCheck func(ctx context.Context, id string) (int, error)
}

func (o *SvixOptions) applyDefaults() {
	if o.Type == "" {
		o.Type = "user.created"
	}
	if o.ID == "" {
		o.ID = NewSvixID()
	}
	if o.Timestamp.IsZero() {
		o.Timestamp = time.Now()
	}
	if o.Headers == "" {
		o.Headers = "svix"
	}
	if o.Timeout <= 0 {
		o.Timeout = SvixDefaultTimeout
	}
}

// validate checks what does not depend on the defaults filled in.
func (o *SvixOptions) validate() (*svix.Webhook, error) {
	u, err := url.Parse(o.URL)
	if o.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: an http:// or https:// URL is required", o.URL)
	}
	if o.Headers != "svix" && o.Headers != "webhook" {
		return nil, fmt.Errorf("--headers %q: svix or webhook", o.Headers)
	}
	return svixWebhook(o.Secret)
}

// svixWebhook decodes a whsec_ secret as Svix does.
func svixWebhook(secret string) (*svix.Webhook, error) {
	switch {
	case secret == "":
		return nil, errors.New("--secret: the endpoint's whsec_ signing secret is required")
	case strings.HasPrefix(secret, "v1,"):
		return nil, errors.New("--secret: that is a signature (v1,…), not a signing secret; copy the endpoint's whsec_ secret")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, errors.New("--secret: not a whsec_ secret (whsec_ followed by base64)")
	}
	return svix.NewWebhook(secret)
}

// NewSvixID returns a fresh message id shaped like Svix's: msg_ and 27
// alphanumerics.
func NewSvixID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 27)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "msg_" + string(b)
}

// svixPayload is the default body: the event type at the top level, where
// receivers read it, and a data object.
type svixPayload struct {
	Type string `json:"type"`
	Data struct {
		ID     string `json:"id"`
		SentBy string `json:"sent_by"`
	} `json:"data"`
}

// SvixRequest builds exactly what the Svix sender sends: a POST of the
// body, signed by the svix library over "id.timestamp.body" with the
// secret, with the id, the Unix timestamp and the v1 signature in the
// chosen header set. It returns the request and its body.
func SvixRequest(o SvixOptions) (*http.Request, []byte, error) {
	o.applyDefaults()
	wh, err := o.validate()
	if err != nil {
		return nil, nil, err
	}
	body := o.Data
	if body == nil {
		p := svixPayload{Type: o.Type}
		p.Data.ID = "qa_" + strings.TrimPrefix(o.ID, "msg_")
		p.Data.SentBy = "hookbay send"
		if body, err = json.Marshal(p); err != nil {
			return nil, nil, err
		}
	}
	sig, err := wh.Sign(o.ID, o.Timestamp, body)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, o.URL, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookbay-qa (Svix sender simulator)")
	req.Header.Set(o.Headers+"-id", o.ID)
	req.Header.Set(o.Headers+"-timestamp", strconv.FormatInt(o.Timestamp.Unix(), 10))
	req.Header.Set(o.Headers+"-signature", sig)
	return req, body, nil
}

// SvixMeaning says what an answer status means to the Svix sender
// (Bloom "Enablement Webhooks", "Sending the wrong response codes", "Retries"
// and "Failure Recovery"). A status of 0 is no answer at all.
func SvixMeaning(status int) string {
	if status >= 200 && status < 300 {
		return "delivered (Svix counts any 2xx as success, whatever the body says)"
	}
	return "failed: Svix will retry on its schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then give up; 5 days of failures disable the endpoint"
}
