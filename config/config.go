// Package config reads hookbay.yaml into validated plain structs: types,
// defaults, ${ENV} expansion and errors that name the key at fault.
//
// A start reads the file (Read, or Decode for text), lets the command line
// override what it may, then calls Finish once: it fills every default
// (ApplyDefaults), compiles the JSON Schemas, and checks the result
// (Validate, which changes nothing). Load and Parse do all of it for
// callers with nothing to override.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/hookbay/hookbay/hooks"
)

// DefaultPath is the config file read from the working directory when no
// --config is given.
const DefaultPath = "hookbay.yaml"

// Locate returns the config file to read: flagValue when it is set,
// otherwise DefaultPath when the working directory has one (implicit is
// then true), otherwise "" (no file: dev mode).
func Locate(flagValue string) (path string, implicit bool, err error) {
	if flagValue != "" {
		return flagValue, false, nil
	}
	fi, err := os.Stat(DefaultPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("look for %s in the working directory: %w", DefaultPath, err)
	case fi.IsDir():
		return "", false, fmt.Errorf("%s in the working directory is a directory, not a config file", DefaultPath)
	}
	return DefaultPath, true, nil
}

// Load reads a config file and finishes it: defaults applied, schemas
// compiled, validated. Use Read when flags may still override values.
func Load(path string) (Config, error) {
	c, err := Read(path)
	if err != nil {
		return c, err
	}
	return c, c.Finish()
}

// Read reads a config file, expands ${ENV_VAR} references in its values and
// rejects unknown keys. Defaults are not applied and values not checked:
// call Finish once every override is in.
func Read(path string) (Config, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Decode(buf, os.LookupEnv)
}

// Parse decodes config text and finishes it, as Load does for a file.
func Parse(buf []byte, lookup func(string) (string, bool)) (Config, error) {
	c, err := Decode(buf, lookup)
	if err != nil {
		return c, err
	}
	return c, c.Finish()
}

// Decode parses config text as Read does; lookup resolves ${NAME}
// references.
func Decode(buf []byte, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(&root); err != nil && err.Error() != "EOF" {
		return c, fmt.Errorf("config is not valid YAML: %w", err)
	}
	var used []string
	recorded := func(path, name string) (string, bool) {
		if secretKey(path) && !slices.Contains(used, name) {
			used = append(used, name)
		}
		return lookup(name)
	}
	if len(root.Content) > 0 {
		if err := walk(root.Content[0], reflect.TypeOf(c), "", recorded); err != nil {
			return c, err
		}
		if err := root.Content[0].Decode(&c); err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
	}
	c.secretEnv = used
	return c, nil
}

// Finish applies the defaults, compiles the Bloomreach webhooks' JSON
// Schemas once (Schemas hands them out), and validates. A start calls it
// once, after the command line's overrides.
func (c *Config) Finish() error {
	c.ApplyDefaults()
	c.compileSchemas()
	return c.Validate()
}

// Dev returns the configuration of dev mode before defaults: every
// catalogue hook subscribed, so that a first try shows them, and one Svix
// endpoint that stores every event. Their secrets, and a Bloomreach
// webhook, are generated at start (serve).
func Dev() Config {
	c := Config{}
	c.Bubblehouse.Hooks = map[string]HookConfig{}
	for _, name := range hooks.CatalogueHooks() {
		c.Bubblehouse.Hooks[name] = HookConfig{}
	}
	c.Svix.Endpoints = map[string]SvixEndpointConfig{"bloom": {Events: map[string]*EventRouteConfig{"*": nil}}}
	return c
}

// Default returns the configuration used without a config file: Dev with
// its defaults applied.
func Default() Config {
	c := Dev()
	c.ApplyDefaults()
	return c
}

// Serves reports whether the config asks for sender to be served:
// Bubblehouse when it has credentials or lists hooks, Svix when it lists
// endpoints, Bloomreach when it lists webhooks. An unconfigured sender's
// routes are not registered.
func (c *Config) Serves(sender hooks.Sender) bool {
	switch sender {
	case hooks.SenderBubblehouse:
		b := c.Bubblehouse
		return b.Authorization != "" || b.JWTSecret != "" || len(b.Hooks) > 0
	case hooks.SenderSvix:
		return len(c.Svix.Endpoints) > 0
	case hooks.SenderBloomreach:
		return len(c.Bloomreach.Webhooks) > 0
	}
	return false
}
