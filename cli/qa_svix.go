package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
	"github.com/hookbay/hookbay/store/sqlite"
)

// runSendSvix is "hookbay send svix": one delivery built exactly as the
// Svix sender builds it (Bloom's "Enablement Webhooks", "Signature
// Verification"), the answer, and what that answer means to Svix. Its
// error says whether Svix would count the answer as delivered (see
// sendAbout).
func runSendSvix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send svix", "--url URL --secret whsec_... [flags]",
		"Sends one event signed as Svix signs it, prints it and the answer, and what\nthe answer means to Svix.\n\n"+sendAbout)
	target := fs.String("url", "", "the endpoint's URL (required)")
	secret := fs.String("secret", "", "the endpoint's whsec_ signing secret (required)")
	typ := fs.String("type", "user.created", "event type of the default payload")
	id := fs.String("id", "", "message id (default a fresh msg_… id); reuse one to simulate a redelivery")
	ts := fs.String("timestamp", "", "signing time, Unix seconds or RFC 3339 (default now)")
	data := fs.String("data", "", `the exact body, or @FILE (default {"type":TYPE,"data":{…}})`)
	headers := fs.String("headers", "svix", "header set: svix (svix-id, …) or webhook (Standard Webhooks webhook-id, …)")
	timeout := fs.Duration("timeout", qa.SvixDefaultTimeout, "the sender's response timeout")
	cacert := fs.String("cacert", "", "CA certificate file to trust (a dev CA)")
	insecure := fs.Bool("insecure", false, "skip TLS certificate verification")
	if err := parseOnlyFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	o := qa.SvixOptions{URL: *target, Secret: *secret, Type: *typ, ID: *id, Headers: *headers, Timeout: *timeout}
	var err error
	if o.Timestamp, err = parseSvixTimestamp(*ts); err != nil {
		return err
	}
	if o.Data, err = readSvixData(*data); err != nil {
		return err
	}
	switch {
	case o.Data != nil && !json.Valid(o.Data):
		fmt.Fprintln(stderr, "note: the body is not JSON; Svix payloads are, and receivers read the event type from it")
	case o.Data == nil && !hooks.BloomEventTypes[o.Type]:
		fmt.Fprintf(stderr, "note: %s is not one of the event types Bloom documents; receivers should still accept it\n", o.Type)
	}
	req, body, err := qa.SvixRequest(o)
	if err != nil {
		return err
	}
	c, err := qa.NewClient(*cacert, *insecure, "", "", 0)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	x := c.Do(ctx, req, body)
	x.Print(stdout)
	if x.Err != nil && errors.Is(x.Err, context.DeadlineExceeded) {
		fmt.Fprintf(stdout, "\nmeaning: no answer within the sender's %s timeout: %s\n", *timeout, qa.SvixMeaning(0))
	} else {
		fmt.Fprintf(stdout, "\nmeaning: %s\n", qa.SvixMeaning(x.Status))
	}
	if x.Err != nil {
		return fmt.Errorf("send svix: %w", x.Err)
	}
	return sendVerdict(hooks.SenderSvix, "", x)
}

// parseSvixTimestamp reads --timestamp: Unix seconds or RFC 3339; "" is
// the zero time (now, when sent).
func parseSvixTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(secs, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--timestamp %q: want Unix seconds or an RFC 3339 time", s)
	}
	return t, nil
}

// readSvixData reads --data: the body itself, or @FILE; nil when empty.
func readSvixData(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if name, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		return b, nil
	}
	return []byte(s), nil
}

// runConformSvix is "hookbay conform --sender svix": it grades an endpoint
// against what Bloom's "Enablement Webhooks" (Svix) requires of a
// receiver.
func runConformSvix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("conform --sender svix", "--url URL --secret whsec_... [flags]",
		"Grades an endpoint against what Svix requires of a receiver: signatures,\nredeliveries, answers in time.\n\n"+conformAbout)
	target := fs.String("url", "", "the endpoint's URL (required)")
	secret := fs.String("secret", "", "the endpoint's whsec_ signing secret (required)")
	typ := fs.String("type", "user.created", "event type of the probes' payload")
	headers := fs.String("headers", "svix", "header set of the probes: svix or webhook")
	dataDir := fs.String("hookbay-data", "", "hookbay's data directory, when the endpoint is hookbay: counts how often a redelivered message was processed")
	timeout := fs.Duration("timeout", qa.SvixDefaultTimeout, "the sender's response timeout")
	cacert := fs.String("cacert", "", "CA certificate file to trust (a dev CA)")
	insecure := fs.Bool("insecure", false, "skip TLS certificate verification")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	junit := fs.String("junit", "", "also write the report as JUnit XML to this file")
	if err := parseOnlyFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	o := qa.SvixOptions{URL: *target, Secret: *secret, Type: *typ, Headers: *headers, Timeout: *timeout}
	if _, _, err := qa.SvixRequest(o); err != nil {
		return err
	}
	if *dataDir != "" {
		count, err := svixHookbayCount(*dataDir)
		if err != nil {
			return err
		}
		o.EventsCheck = count
	}
	c, err := qa.NewClient(*cacert, *insecure, "", "", 0)
	if err != nil {
		return err
	}
	return writeReport(qa.ConformSvix(ctx, c, o), *asJSON, *junit, stdout)
}

// svixHookbayCount counts, in hookbay's store under dir, the Svix
// requests with a message id that were accepted and are not duplicates:
// how many times hookbay processed that message.
func svixHookbayCount(dir string) (func(context.Context, string) (int, error), error) {
	path := filepath.Join(dir, "hookbay.db")
	// sqlite.Open would create a missing database: refuse a wrong directory.
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("--hookbay-data: %w", err)
	}
	return func(ctx context.Context, id string) (int, error) {
		db, err := sqlite.Open(path)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		reqs, err := db.FindRequests(ctx, hooks.RequestFilter{Sender: hooks.SenderSvix, RequestID: id, Limit: 1000})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, r := range reqs {
			if r.DuplicateOf == 0 && r.Status/100 == 2 {
				n++
			}
		}
		return n, nil
	}, nil
}
