package config

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hookbay/hookbay/hooks"
)

var bloomreachMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// validateBloomreach checks the Bloomreach section, naming the key at
// fault. Its actions are checked with the others (Validate).
func (c *Config) validateBloomreach() error {
	b := &c.Bloomreach
	tls := c.Server.TLS
	if !strings.HasPrefix(b.OAuth2.TokenPath, "/") {
		return fmt.Errorf("bloomreach.oauth2.token_path: %q must start with /", b.OAuth2.TokenPath)
	}
	if b.OAuth2.TokenTTL <= 0 {
		return fmt.Errorf("bloomreach.oauth2.token_ttl: %s must be positive", time.Duration(b.OAuth2.TokenTTL))
	}
	seen := map[string]bool{}
	for i, cl := range b.OAuth2.Clients {
		if cl.ID == "" || cl.Secret == "" || seen[cl.ID] {
			return fmt.Errorf("bloomreach.oauth2.clients[%d]: a unique id and a secret are required", i)
		}
		seen[cl.ID] = true
	}
	for name, t := range b.Throttles {
		if err := t.validate("bloomreach.throttles." + name); err != nil {
			return err
		}
	}
	for name, w := range b.Webhooks {
		key := "bloomreach.webhooks." + name
		if !endpointNameRE.MatchString(name) || name == "auth-test" {
			return fmt.Errorf("%s: a name is letters, digits, '-' and '_'", key)
		}
		if len(w.Methods) == 0 {
			return fmt.Errorf("%s.methods: at least one method is required", key)
		}
		for _, m := range w.Methods {
			if !slices.Contains(bloomreachMethods, m) {
				return fmt.Errorf("%s.methods: %q is not one of GET, POST, PUT, PATCH, DELETE", key, m)
			}
		}
		a := w.Auth
		if a.Basic == nil && len(a.Headers) == 0 && a.OAuth2 == nil && a.MTLS == nil {
			return fmt.Errorf("%s.auth: at least one of basic, headers, oauth2 or mtls is required", key)
		}
		if a.Basic != nil && (a.Basic.Username == "" || a.Basic.Password == "") {
			return fmt.Errorf("%s.auth.basic: username and password are required", key)
		}
		for h, v := range a.Headers {
			if v == "" {
				return fmt.Errorf("%s.auth.headers.%s: the value is empty", key, h)
			}
		}
		if o := a.OAuth2; o != nil {
			if !slices.Contains([]string{"header", "body", "query"}, o.TokenIn) {
				return fmt.Errorf("%s.auth.oauth2.token_in: %q is not header, body or query", key, o.TokenIn)
			}
			if o.TokenIn != "header" && o.Field == "" {
				return fmt.Errorf("%s.auth.oauth2.field: the %s field that holds the token is required", key, o.TokenIn)
			}
			if len(b.OAuth2.Clients) == 0 {
				return fmt.Errorf("%s.auth.oauth2: bloomreach.oauth2.clients must list the clients that may get tokens", key)
			}
		}
		if a.MTLS != nil && (tls.ClientCAFile == "" || tls.Mode == "off") {
			return fmt.Errorf("%s.auth.mtls: server.tls.client_ca_file must be set, with TLS on", key)
		}
		if w.Batch != nil {
			if !strings.HasPrefix(w.Batch.Items, "/") {
				return fmt.Errorf("%s.batch.items: %q is not a JSON pointer such as /messages", key, w.Batch.Items)
			}
			if w.Batch.Max < 1 || w.Batch.Max > hooks.BloomreachMaxBatch {
				return fmt.Errorf("%s.batch.max: %d is not between 1 and %d", key, w.Batch.Max, hooks.BloomreachMaxBatch)
			}
		} else if w.RequestID.ItemID != "" {
			return fmt.Errorf("%s.request_id.item_id: only a batch webhook has items", key)
		}
		if w.RequestID.Header == "" && w.RequestID.JSON == "" {
			return fmt.Errorf("%s.request_id: a header or a JSON pointer is required", key)
		}
		for _, p := range []string{w.RequestID.JSON, w.RequestID.ItemID} {
			if p != "" && !strings.HasPrefix(p, "/") {
				return fmt.Errorf("%s.request_id: %q is not a JSON pointer such as /id", key, p)
			}
		}
		if _, _, err := c.Schemas(name); err != nil {
			return err
		}
		if t := w.Throttle; t != nil {
			if t.Inline != nil {
				if err := t.Inline.validate(key + ".throttle"); err != nil {
					return err
				}
			} else if _, ok := b.Throttles[t.Name]; !ok {
				return fmt.Errorf("%s.throttle: no policy named %q under bloomreach.throttles", key, t.Name)
			}
		}
		if w.Inline && w.Batch != nil {
			return fmt.Errorf("%s.inline: a batch webhook cannot run its action inline", key)
		}
	}
	return nil
}

func (t ThrottleConfig) validate(key string) error {
	if t.Rate < 0 || t.Burst < 0 || t.MaxInFlight < 0 {
		return fmt.Errorf("%s: rate, burst and max_in_flight cannot be negative", key)
	}
	if t.Status != 0 && t.Status != http.StatusTooManyRequests && t.Status != http.StatusServiceUnavailable {
		return fmt.Errorf("%s.status: %d is not 429 or 503, the statuses Bloomreach retries", key, t.Status)
	}
	return nil
}

// compileSchema compiles an inline JSON Schema (written in YAML) or a file.
func compileSchema(key string, inline any, file string) (*jsonschema.Schema, error) {
	if inline == nil && file == "" {
		return nil, nil
	}
	var doc any
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("%s_file: %w", key, err)
		}
		defer f.Close()
		if doc, err = jsonschema.UnmarshalJSON(f); err != nil {
			return nil, fmt.Errorf("%s_file: %s is not JSON: %w", key, file, err)
		}
	} else {
		buf, err := json.Marshal(inline)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if doc, err = jsonschema.UnmarshalJSON(strings.NewReader(string(buf))); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	c := jsonschema.NewCompiler()
	url := "hookbay:///" + key + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid JSON Schema: %w", key, err)
	}
	return sch, nil
}

// compiledSchemas are one webhook's compiled schemas and what they were
// compiled from.
type compiledSchemas struct {
	from          SchemaConfig
	request, item *jsonschema.Schema
}

// compileSchemas compiles every webhook's schemas once, for Validate and
// the handlers (Schemas). One that does not compile is left out: Validate
// compiles it again to say why.
func (c *Config) compileSchemas() {
	c.schemas = make(map[string]*compiledSchemas, len(c.Bloomreach.Webhooks))
	for name, w := range c.Bloomreach.Webhooks {
		if req, item, err := w.Schemas(name); err == nil {
			c.schemas[name] = &compiledSchemas{from: w.Schema, request: req, item: item}
		}
	}
}

// Schemas returns webhook name's compiled request and item schemas (nil
// where none is set): those Finish compiled, unless the webhook's schema
// has changed since, in which case they are compiled now.
func (c *Config) Schemas(name string) (request, item *jsonschema.Schema, err error) {
	w := c.Bloomreach.Webhooks[name]
	if s := c.schemas[name]; s != nil && reflect.DeepEqual(s.from, w.Schema) {
		return s.request, s.item, nil
	}
	return w.Schemas(name)
}

// Schemas compiles the webhook's request and item schemas (nil where none
// is set); name is the webhook's name, for errors that name the key.
// Config.Schemas hands out the ones compiled at start.
func (w WebhookConfig) Schemas(name string) (request, item *jsonschema.Schema, err error) {
	key := "bloomreach.webhooks." + name
	if request, err = compileSchema(key+".schema.request", w.Schema.Request, w.Schema.RequestFile); err != nil {
		return nil, nil, err
	}
	if item, err = compileSchema(key+".schema.item", w.Schema.Item, w.Schema.ItemFile); err != nil {
		return nil, nil, err
	}
	return request, item, nil
}
