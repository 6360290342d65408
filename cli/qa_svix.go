package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	dataDir := fs.String("hookbay-data", "", "hookbay's data directory, when the endpoint is hookbay on SQLite: counts how often a redelivered message was processed")
	adminURL := fs.String("hookbay-admin", "", "hookbay's admin URL (such as http://127.0.0.1:8081/), when the endpoint is hookbay on any store: counts the same through its admin API, with the token in "+adminTokenEnv+" if it has one")
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
	if *dataDir != "" && *adminURL != "" {
		return fmt.Errorf("--hookbay-data and --hookbay-admin: give one, the store or the admin API that reads it")
	}
	c, err := qa.NewClient(*cacert, *insecure, "", "", 0)
	if err != nil {
		return err
	}
	switch {
	case *dataDir != "":
		count, err := svixHookbayCount(*dataDir)
		if err != nil {
			return err
		}
		o.EventsCheck = count
	case *adminURL != "":
		count, err := svixAdminCount(c.HTTP, *adminURL, os.Getenv(adminTokenEnv))
		if err != nil {
			return err
		}
		o.EventsCheck = count
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

// adminTokenEnv holds the admin token for commands that call hookbay's
// admin API, so that it shows in no process list or shell history.
const adminTokenEnv = "HOOKBAY_ADMIN_TOKEN"

// svixAdminCount is svixHookbayCount through hookbay's admin API at base,
// for a hookbay on any store or on another machine: it lists the Svix
// records with the message id and counts the accepted ones that are not
// duplicates.
func svixAdminCount(client *http.Client, base, token string) (func(context.Context, string) (int, error), error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--hookbay-admin %q: want the admin listener's URL, such as http://127.0.0.1:8081/", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/requests"
	return func(ctx context.Context, id string) (int, error) {
		n, before := 0, ""
		// A page ends where the admin API's bounded request-ID lookup
		// stopped; the next goes on below it, for as long as it names one.
		for range 100 {
			q := url.Values{"sender": {string(hooks.SenderSvix)}, "request_id": {id}, "limit": {"1000"}}
			if before != "" {
				q.Set("before", before)
			}
			u.RawQuery = q.Encode()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err != nil {
				return 0, err
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, fmt.Errorf("ask hookbay's admin API: %w", err)
			}
			var page struct {
				Requests []struct {
					Status      int   `json:"status"`
					DuplicateOf int64 `json:"duplicate_of"`
				} `json:"requests"`
				NextBefore int64 `json:"next_before"`
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			resp.Body.Close()
			if err != nil {
				return 0, fmt.Errorf("read hookbay's admin API answer: %w", err)
			}
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("hookbay's admin API answered %s: %s", resp.Status, bytes.TrimSpace(body))
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return 0, fmt.Errorf("hookbay's admin API answer is not a page of requests: %w", err)
			}
			for _, r := range page.Requests {
				if r.DuplicateOf == 0 && r.Status/100 == 2 {
					n++
				}
			}
			if page.NextBefore == 0 {
				return n, nil
			}
			before = strconv.FormatInt(page.NextBefore, 10)
		}
		return n, fmt.Errorf("hookbay's admin API kept naming further pages for %s", id)
	}, nil
}
