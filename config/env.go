package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// secretKey reports whether a config key holds a secret: its ${VARS} are
// kept from exec commands' environment.
func secretKey(path string) bool {
	if strings.Contains(path, ".auth.headers.") {
		return true // a Bloomreach webhook's credential header values
	}
	if path == "store.postgres.url" || path == "admin.token" {
		return true // a database password; the admin surface's token
	}
	key := path[strings.LastIndex(path, ".")+1:]
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i] // svix.endpoints.bloom.secrets[0]
	}
	switch key {
	case "authorization", "jwt_secret", "secret", "secrets", "password":
		return true
	}
	return false
}

// envRef is a reference to an environment variable, ${NAME}, or to a file
// whose content is the value, ${file:/run/secrets/name} (Docker and
// Kubernetes secrets).
var envRef = regexp.MustCompile(`\$\{(file:[^}]+|[A-Za-z_][A-Za-z0-9_]*)\}`)

// maxSecretFile bounds a ${file:…} reference: a secret, not a data file.
const maxSecretFile = 64 << 10

// readSecretFile reads a ${file:…} reference's value: the file's content
// without its final line break.
func readSecretFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(buf) > maxSecretFile {
		return "", fmt.Errorf("larger than %d KiB: not a secret", maxSecretFile>>10)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r"), nil
}

// walk checks a YAML node against the Go type it will be decoded into:
// unknown keys and values of the wrong kind are reported with their key
// path, and ${ENV_VAR} references in scalars are expanded in place.
func walk(n *yaml.Node, t reflect.Type, path string, lookup func(path, name string) (string, bool)) error {
	name := path
	if name == "" {
		name = "the top level"
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	switch {
	case t == reflect.TypeOf(Duration(0)):
		if err := expand(n, path, lookup); err != nil {
			return err
		}
		if _, err := time.ParseDuration(n.Value); err != nil || n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: %q is not a duration such as 30s or 72h (line %d)", name, n.Value, n.Line)
		}
		return nil
	case t.Kind() == reflect.Pointer:
		return walk(n, t.Elem(), path, lookup)
	case t.Kind() == reflect.Interface, reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()):
		// Free-form (a JSON Schema) or self-checking: expand ${VARS} only.
		return expandAll(n, path, lookup)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: expected a mapping of keys (line %d)", name, n.Line)
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			fields[strings.Split(f.Tag.Get("yaml"), ",")[0]] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d)", join(path, key), n.Content[i].Line)
			}
			if err := walk(n.Content[i+1], ft, join(path, key), lookup); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: expected a mapping (line %d)", name, n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), lookup); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s: expected a list (line %d)", name, n.Line)
		}
		for i, c := range n.Content {
			if err := walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lookup); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s: expected a single value (line %d)", name, n.Line)
	}
	if err := expand(n, path, lookup); err != nil {
		return err
	}
	if t.Kind() == reflect.String && n.Tag == "" {
		n.Tag = "!!str" // an expanded secret of digits is still a string
	}
	var err error
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		_, err = strconv.ParseInt(n.Value, 10, 64)
	case reflect.Bool:
		_, err = strconv.ParseBool(n.Value)
	}
	if err != nil {
		return fmt.Errorf("%s: %q is not a valid %s (line %d)", name, n.Value, t.Kind(), n.Line)
	}
	return nil
}

// expandAll expands ${VARS} in every scalar under n.
func expandAll(n *yaml.Node, path string, lookup func(path, name string) (string, bool)) error {
	if n.Kind == yaml.ScalarNode {
		return expand(n, path, lookup)
	}
	for _, c := range n.Content {
		if err := expandAll(c, path, lookup); err != nil {
			return err
		}
	}
	return nil
}

// expand replaces ${NAME} in a scalar with the environment's value, and
// ${file:PATH} with the file's content. A missing variable or an unreadable
// file is an error naming the key, so that a secret left unset stops
// start-up instead of becoming an empty password.
func expand(n *yaml.Node, path string, lookup func(path, name string) (string, bool)) error {
	var failed error
	v := envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		if file, ok := strings.CutPrefix(name, "file:"); ok {
			val, err := readSecretFile(file)
			if err != nil && failed == nil {
				reason := err
				if u := errors.Unwrap(err); u != nil {
					reason = u // "permission denied", without the path again
				}
				failed = fmt.Errorf("%s: secret file %s: %v (line %d)", path, file, reason, n.Line)
			}
			return val
		}
		val, ok := lookup(path, name)
		if !ok && failed == nil {
			failed = fmt.Errorf("%s: environment variable %s is not set (line %d)", path, name, n.Line)
		}
		return val
	})
	if failed != nil {
		return failed
	}
	if v != n.Value {
		n.Value, n.Tag, n.Style = v, "", 0 // re-resolved on decode
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
