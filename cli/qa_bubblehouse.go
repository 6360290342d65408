package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

// bubblehouseFlags are the flags "send bubblehouse" and "conform --sender
// bubblehouse" share: where to call and how to authenticate.
type bubblehouseFlags struct {
	url, auth, jwtSecret, cacert *string
	insecure                     *bool
	timeout                      *time.Duration
}

func addBubblehouseFlags(fs *flag.FlagSet) bubblehouseFlags {
	return bubblehouseFlags{
		url:       fs.String("url", "", "hook URL template, with :name for the hook name (https://host/bubblehouse/:name)"),
		auth:      fs.String("authorization", "", "the Authorization value set on Bubblehouse's API settings page"),
		jwtSecret: fs.String("jwt-secret", "", "or: the HS256 secret; each call sends Authorization: Bearer <JWT>"),
		cacert:    fs.String("cacert", "", "PEM CA file to trust (hookbay's dev CA: hookbay-data/certs/ca.pem)"),
		insecure:  fs.Bool("insecure", false, "skip TLS certificate verification"),
		timeout:   fs.Duration("timeout", hooks.BubblehouseCallLimit, "give up on an answer after this long (Bubblehouse's call limit: 30s)"),
	}
}

// parse parses args (flags only) and checks the shared flags.
func (f bubblehouseFlags) parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	if err := parseOnlyFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *f.url == "" {
		return fmt.Errorf("%s: --url is required (the hook URL template, with :name)", fs.Name())
	}
	if *f.auth != "" && *f.jwtSecret != "" {
		return fmt.Errorf("%s: give --authorization or --jwt-secret, not both", fs.Name())
	}
	return nil
}

func (f bubblehouseFlags) client() (*qa.Client, error) {
	return qa.NewClient(*f.cacert, *f.insecure, "", "", *f.timeout)
}

// runSendBubblehouse is "hookbay send bubblehouse": one hook call exactly
// as Bubblehouse makes it, the answer, and what the answer means to
// Bubblehouse. Its error says whether Bubblehouse would count the answer
// as delivered (see sendAbout).
func runSendBubblehouse(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send bubblehouse", "--url URL [--authorization A | --jwt-secret S] [flags]",
		"Calls one hook as Bubblehouse calls it, prints the call and the answer, and\nwhat the answer means to Bubblehouse.\n\n"+sendAbout)
	bf := addBubblehouseFlags(fs)
	hook := fs.String("hook", hooks.Hello1, "hook name, replacing :name")
	urgency := fs.String("urgency", "", "X-BH-Urgency: real-time, urgent or regular (default real-time for Hello1, urgent otherwise)")
	requestID := fs.String("request-id", "", "X-Request-ID (default a fresh UUID; repeat one to play a retry)")
	data := fs.String("data", "", "request body: JSON, or @FILE (default a realistic input for the hook)")
	if err := bf.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	o := qa.BubblehouseOptions{URLTemplate: *bf.url, Hook: *hook, Urgency: *urgency, RequestID: *requestID,
		Authorization: *bf.auth, JWTSecret: *bf.jwtSecret, Timeout: *bf.timeout}
	if *data != "" {
		body := []byte(*data)
		if strings.HasPrefix(*data, "@") {
			var err error
			if body, err = os.ReadFile((*data)[1:]); err != nil {
				return fmt.Errorf("--data: %w", err)
			}
		}
		if b := strings.TrimSpace(string(body)); !json.Valid(body) || !strings.HasPrefix(b, "{") {
			fmt.Fprintln(stderr, "note: --data is not one JSON object; Bubblehouse always sends one. Sending it as given.")
		}
		o.Data = body
	}
	req, body, err := qa.BubblehouseRequest(o)
	if err != nil {
		return err
	}
	c, err := bf.client()
	if err != nil {
		return err
	}
	x := c.Do(ctx, req, body)
	x.Print(stdout)
	if x.Err != nil {
		return fmt.Errorf("send %s: %w", *hook, x.Err)
	}
	fmt.Fprintf(stdout, "\nmeaning: %s\n", qa.BubblehouseMeaning(x))
	return sendVerdict(hooks.SenderBubblehouse, *hook, x)
}

// runConformBubblehouse is "hookbay conform --sender bubblehouse": it
// grades an endpoint against the Bubblehouse Hooks API.
func runConformBubblehouse(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("conform --sender bubblehouse", "--url URL [--authorization A | --jwt-secret S] [flags]",
		"Grades an endpoint against the Bubblehouse Hooks API: answers, Hello1, unknown\nhooks, authentication, retries, time limits.\n\n"+conformAbout)
	bf := addBubblehouseFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	junit := fs.String("junit", "", "also write the report as JUnit XML to this file")
	realtime := fs.Duration("realtime-limit", hooks.BubblehouseRealtimeLimit,
		"real-time calls must answer within this (at most the contract's 10s; lower it to be stricter)")
	if err := bf.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *realtime <= 0 || *realtime > hooks.BubblehouseRealtimeLimit {
		return fmt.Errorf("--realtime-limit %s: want more than 0 and at most %s", *realtime, hooks.BubblehouseRealtimeLimit)
	}
	c, err := bf.client()
	if err != nil {
		return err
	}
	r := qa.ConformBubblehouse(ctx, c, qa.BubblehouseOptions{URLTemplate: *bf.url, Authorization: *bf.auth,
		JWTSecret: *bf.jwtSecret, Timeout: *bf.timeout, RealtimeLimit: *realtime})
	return writeReport(r, *asJSON, *junit, stdout)
}
