package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

// The Bloomreach Engagement commands; their usage follows.

const qabrSendUsage = `usage: hookbay send bloomreach --url URL [--method M]
    [--basic U:P | --header K:V (repeatable) | --oauth2 TOKEN_URL,ID,SECRET | --cert C --key K]
    [--batch N [--items /messages]] [--data JSON|@file] [--request-id-header H]
    [--cacert F] [--insecure] [--timeout 10s]

Sends one request as Bloomreach's webhook node would (a unique request ID,
the credentials, the payload or a batch of N customers built from --data,
each with a unique "id"), prints it and the answer, and what the answer
means to Bloomreach. The OAuth client secret is never printed.
`

const qabrConformUsage = `usage: hookbay conform --sender bloomreach --url URL [credentials as for send]
    --data JSON|@file [--bad-data JSON|@file] [--concurrency 200]
    [--batch N | --batch-url URL] [--items /messages] [--json] [--junit FILE]

--data is a customer the endpoint accepts; --bad-data one it must refuse for
that customer alone (200 with success false, never a 4xx).
--batch N says URL is a batch webhook: every probe sends N customers (--data
with a unique "id") at --items. With a per-customer URL, --batch-url names a
batch webhook, with the same credentials, for the oversized-batch probe
only; without either that probe is skipped.
Checks: success-shape, customer-failure-not-4xx, concurrency-200-under-1s,
bad-credentials-401, auth-test-200 ({URL}/auth-test), oversized-batch-refused,
throttle-status, json-under-64k.
`

func qabrUsage(fs *flag.FlagSet, usage, exit string) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fmt.Fprintln(fs.Output(), exit)
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
}

// qabrFlags are the flags send and conform share: where, how, and the
// credentials.
type qabrFlags struct {
	url, method, basic, oauth2 *string
	headers                    qabrHeaders
	cert, key, cacert          *string
	insecure                   *bool
	timeout                    *time.Duration
	batch                      *int
	items, idHeader, data      *string
}

// qabrHeaders is the repeatable --header K:V.
type qabrHeaders []string

func (h *qabrHeaders) String() string { return strings.Join(*h, ", ") }

func (h *qabrHeaders) Set(v string) error {
	if k, _, ok := strings.Cut(v, ":"); !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want Key:Value, got %q", v)
	}
	*h = append(*h, v)
	return nil
}

func addQABRFlags(fs *flag.FlagSet) *qabrFlags {
	f := &qabrFlags{
		url:      fs.String("url", "", "the webhook's endpoint (required)"),
		method:   fs.String("method", "POST", "GET, POST, PUT, PATCH or DELETE"),
		basic:    fs.String("basic", "", "HTTP Basic credentials user:password"),
		oauth2:   fs.String("oauth2", "", "TOKEN_URL,CLIENT_ID,CLIENT_SECRET: get a client-credentials token and send it as Authorization: Bearer"),
		cert:     fs.String("cert", "", "client certificate (PEM) for mTLS"),
		key:      fs.String("key", "", "client certificate's key (PEM) for mTLS"),
		cacert:   fs.String("cacert", "", "also trust this CA (PEM), e.g. hookbay-data/certs/ca.pem"),
		insecure: fs.Bool("insecure", false, "do not verify the server's certificate"),
		timeout:  fs.Duration("timeout", qa.BloomreachTimeout, "per request; Bloomreach's default timeout is 10 s"),
		batch:    fs.Int("batch", 0, "a batch webhook: send this many customers (1-1000) built from --data"),
		items:    fs.String("items", "/messages", "JSON pointer to a batch's customers"),
		idHeader: fs.String("request-id-header", "X-Request-ID", "header carrying a unique request ID"),
		data:     fs.String("data", "", "the customer's payload: JSON (or TEXT/XML), or @file"),
	}
	fs.Var(&f.headers, "header", "custom header Key:Value (repeatable)")
	return f
}

// options turns the flags into qa options.
func (f *qabrFlags) options() (qa.BloomreachOptions, error) {
	if *f.url == "" {
		return qa.BloomreachOptions{}, errors.New("--url is required")
	}
	data, err := qabrReadData("--data", *f.data)
	if err != nil {
		return qa.BloomreachOptions{}, err
	}
	return qa.BloomreachOptions{URL: *f.url, Method: *f.method, Basic: *f.basic, Headers: f.headers, OAuth2: *f.oauth2,
		Batch: *f.batch, Data: data, ItemsPointer: *f.items, RequestIDHeader: *f.idHeader}, nil
}

func (f *qabrFlags) client() (*qa.Client, error) {
	if (*f.cert == "") != (*f.key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	return qa.NewClient(*f.cacert, *f.insecure, *f.cert, *f.key, *f.timeout)
}

// qabrReadData reads a payload flag: the value itself, or @file.
func qabrReadData(name, v string) ([]byte, error) {
	if file, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return b, nil
	}
	return []byte(v), nil
}

// runSendBloomreach is "hookbay send bloomreach": one request as
// Bloomreach's webhook node sends it, its answer, and what the answer
// means to Bloomreach.
func runSendBloomreach(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send bloomreach", flag.ContinueOnError)
	qabrUsage(fs, qabrSendUsage, sendAbout)
	f := addQABRFlags(fs)
	if err := parseOnlyFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	o, err := f.options()
	if err != nil {
		return fmt.Errorf("send bloomreach: %w", err)
	}
	c, err := f.client()
	if err != nil {
		return fmt.Errorf("send bloomreach: %w", err)
	}
	if o.OAuth2 != "" {
		// Never the secret: only where the token comes from, and for whom.
		parts := strings.SplitN(o.OAuth2, ",", 3)
		if len(parts) == 3 {
			fmt.Fprintf(stderr, "oauth2: client-credentials token from %s for client %s\n", parts[0], parts[1])
		}
	}
	req, body, err := qa.BloomreachRequest(ctx, o, c)
	if err != nil {
		return fmt.Errorf("send bloomreach: %w", err)
	}
	x := c.Do(ctx, req, body)
	x.Print(stdout)
	if x.Err != nil {
		fmt.Fprintln(stdout, "\nmeaning: no answer; Bloomreach retries timeouts, rejects and drops (up to 3 times, ~7 s, 45 s, 300 s)")
		return fmt.Errorf("send bloomreach: %w", x.Err)
	}
	fmt.Fprintf(stdout, "\nmeaning: %s\n", qa.BloomreachMeaning(x.Status, x.Answer))
	return sendVerdict(hooks.SenderBloomreach, "", x)
}

// runConformBloomreach is "hookbay conform --sender bloomreach": it grades
// a webhook endpoint against Bloomreach's contract.
func runConformBloomreach(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conform --sender bloomreach", flag.ContinueOnError)
	qabrUsage(fs, qabrConformUsage, conformAbout)
	f := addQABRFlags(fs)
	badData := fs.String("bad-data", "", "a customer the endpoint must refuse for that customer alone: JSON or @file")
	concurrency := fs.Int("concurrency", 200, "simultaneous requests of the concurrency probe")
	batchURL := fs.String("batch-url", "", "a batch webhook (same credentials) for the oversized-batch probe when --url is per-customer")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	junit := fs.String("junit", "", "also write JUnit XML to this file")
	if err := parseOnlyFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	o, err := f.options()
	if err != nil {
		return fmt.Errorf("conform bloomreach: %w", err)
	}
	if len(o.Data) == 0 {
		return errors.New("conform bloomreach: --data is required: a customer the endpoint accepts")
	}
	if o.BadData, err = qabrReadData("--bad-data", *badData); err != nil {
		return fmt.Errorf("conform bloomreach: %w", err)
	}
	o.Concurrency, o.BatchURL = *concurrency, *batchURL
	if err := o.Validate(); err != nil {
		return fmt.Errorf("conform bloomreach: %w", err)
	}
	c, err := f.client()
	if err != nil {
		return fmt.Errorf("conform bloomreach: %w", err)
	}
	return writeReport(qa.ConformBloomreach(ctx, c, o), *asJSON, *junit, stdout)
}
