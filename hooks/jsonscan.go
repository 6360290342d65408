package hooks

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// objectMember returns the raw value of the top-level member named key of
// the JSON object in body (the last one, when the name repeats, as
// encoding/json decodes a map), or nil when there is none or body is not a
// well-formed object. It reads only the object's top level: a hot path can
// pick one field of a body it already validated without decoding it again.
func objectMember(body []byte, key string) []byte {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return nil
	}
	var found []byte
	for {
		kEnd := stringEnd(body, i)
		if kEnd < 0 {
			return nil
		}
		k := body[i:kEnd]
		i = skipSpace(body, kEnd)
		if i >= len(body) || body[i] != ':' {
			return nil
		}
		i = skipSpace(body, i+1)
		vEnd := valueEnd(body, i)
		if vEnd < 0 {
			return nil
		}
		if keyIs(k, key) {
			found = body[i:vEnd]
		}
		i = skipSpace(body, vEnd)
		switch {
		case i < len(body) && body[i] == ',':
			i = skipSpace(body, i+1)
		case i < len(body) && body[i] == '}':
			return found
		default:
			return nil
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at i, or
// -1 when there is no complete string there.
func stringEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the JSON value starting at i, or -1.
// Nested objects and arrays are skipped by counting brackets outside
// strings; literals and numbers end at the next delimiter.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = stringEnd(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for ; i < len(b); i++ {
		if c := b[i]; c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			break
		}
	}
	if i == start {
		return -1
	}
	return i
}

// keyIs reports whether the raw JSON string k decodes to key (escapes and
// invalid UTF-8 are decoded as encoding/json does).
func keyIs(k []byte, key string) bool {
	inner := k[1 : len(k)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner) == key
	}
	var s string
	return json.Unmarshal(k, &s) == nil && s == key
}
