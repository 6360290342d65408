package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// rawPointer resolves JSON pointer tokens in raw JSON that is known to be
// valid (decoded or checked by the caller) and returns the bytes of the
// value there, as sent, with no space around them; on other bytes it
// never reads out of bounds, but its answer means nothing. An object's
// member is its last one when the name repeats, as encoding/json decodes
// a map; an array's index is read with strconv.Atoi, as PointerValue
// reads it.
func rawPointer(doc []byte, toks []string) ([]byte, bool) {
	cur := doc
	for _, tok := range toks {
		i := skipSpace(cur, 0)
		if i >= len(cur) {
			return nil, false
		}
		switch cur[i] {
		case '{':
			if cur = objectMember(cur, tok); cur == nil {
				return nil, false
			}
		case '[':
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 {
				return nil, false
			}
			if cur = arrayElement(cur, n); cur == nil {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return cur, true
}

// arrayElement returns the raw n-th element of the JSON array b (after
// any space), or nil when there is none or b is not a well-formed array.
func arrayElement(b []byte, n int) []byte {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for k := 0; ; k++ {
		end := valueEnd(b, i)
		if end < 0 {
			return nil
		}
		if k == n {
			return b[i:end]
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ',' {
			return nil
		}
		i = skipSpace(b, i+1)
	}
}

// arrayElements returns the raw bytes of every element of the JSON array b
// (after any space), in order and as sent, and where each starts (its
// index in b plus base), or false when b is not a well-formed array. The
// elements share b's memory, each capped at its own end, so that appending
// to one copies it rather than writing over the next.
func arrayElements(b []byte, base int) ([]json.RawMessage, []int, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, nil, false
	}
	out, at := []json.RawMessage{}, []int{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return out, at, true
	}
	for {
		end := valueEnd(b, i)
		if end < 0 {
			return nil, nil, false
		}
		out, at = append(out, b[i:end:end]), append(at, base+i)
		i = skipSpace(b, end)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == ']':
			return out, at, true
		default:
			return nil, nil, false
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

// Member returns the raw value of the top-level member named exactly key
// of the JSON object body (the last one, when the name repeats, as
// encoding/json decodes a map), or nil when there is none or body is not
// one valid JSON object. Unlike decoding into a struct, which also takes
// "Key" or "KEY" and keeps whichever comes last, it reads the member a
// sender's contract names and nothing else.
func Member(body []byte, key string) []byte {
	if !json.Valid(body) {
		return nil
	}
	return objectMember(body, key)
}

// MaxJSONDepth is the deepest nesting of arrays and objects accepted in a
// JSON body, from every sender. encoding/json refuses to decode more than
// 10,000 levels, so a body accepted deeper than that could be stored but
// never shown again; no sender's payload comes near this limit, and a
// shallower one also bounds the work of reading a hostile body.
const MaxJSONDepth = 512

// CheckDepth returns an EINVALID error when b nests arrays and objects
// deeper than MaxJSONDepth. It counts brackets outside strings, so it
// reads any bytes, JSON or not, in one pass.
func CheckDepth(b []byte) error {
	if jsonDepth(b, MaxJSONDepth) > MaxJSONDepth {
		return Errorf(EINVALID, "body nests arrays and objects more than %d levels deep; at most %d are accepted", MaxJSONDepth, MaxJSONDepth)
	}
	return nil
}

// jsonDepth is the deepest nesting of brackets in b, outside strings; it
// stops counting, and returns stop+1, as soon as the nesting passes stop.
func jsonDepth(b []byte, stop int) int {
	depth, deepest, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '[' || c == '{':
			if depth++; depth > stop {
				return stop + 1
			}
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// CheckText returns an EINVALID error, naming the first bad byte, unless b
// is valid UTF-8. JSON text exchanged between systems must be UTF-8
// (RFC 8259, section 8.1); encoding/json accepts other bytes inside a
// string and decodes them as U+FFFD, so a body taken as it is would be
// stored as one thing and read back as another, and echoed in an answer
// that is not valid JSON.
func CheckText(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	at := 0
	for at < len(b) {
		r, n := utf8.DecodeRune(b[at:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		at += n
	}
	return Errorf(EINVALID, "body is not valid UTF-8 (byte %d): JSON text must be UTF-8 (RFC 8259, section 8.1)", at)
}

// Number literals beyond these are not handed to a JSON Schema validator:
// it reads numbers as exact rationals, whose cost grows faster than their
// length (a number of a million digits takes seconds), and an exponent of
// a billion does not parse at all. Float64 ends near 1e308.
const (
	MaxNumberLength   = 100 // characters of one number literal
	MaxNumberExponent = 400 // magnitude of its exponent
)

// CheckNumbers returns an EINVALID error, naming where it is, when a
// document decoded with json.Number (as jsonschema.UnmarshalJSON decodes)
// holds a number longer than MaxNumberLength characters or with an
// exponent beyond ±MaxNumberExponent.
func CheckNumbers(doc any) error {
	path, problem := numberProblem(doc)
	if problem == "" {
		return nil
	}
	at := "the body"
	if len(path) > 0 {
		slices.Reverse(path)
		at = "/" + strings.Join(path, "/")
	}
	return Errorf(EINVALID, "%s: %s", at, problem)
}

// numberProblem walks v; on the first number out of bounds it returns the
// problem and its JSON pointer's tokens, innermost first (built only on
// the way out, so that a clean document costs no allocation).
func numberProblem(v any) ([]string, string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if path, p := numberProblem(x); p != "" {
				return append(path, strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")), p
			}
		}
	case []any:
		for i, x := range v {
			if path, p := numberProblem(x); p != "" {
				return append(path, strconv.Itoa(i)), p
			}
		}
	case json.Number:
		return nil, literalProblem(string(v))
	}
	return nil, ""
}

// literalProblem says why a number literal is out of bounds, or "".
func literalProblem(lit string) string {
	if len(lit) > MaxNumberLength {
		return fmt.Sprintf("a number of %d characters; at most %d are validated", len(lit), MaxNumberLength)
	}
	i := strings.IndexAny(lit, "eE")
	if i < 0 {
		return ""
	}
	exp := strings.TrimLeft(strings.TrimLeft(lit[i+1:], "+-"), "0")
	if n, err := strconv.Atoi(exp); err != nil && exp != "" || n > MaxNumberExponent {
		return fmt.Sprintf("a number with exponent %s; exponents beyond ±%d are not validated", lit[i+1:], MaxNumberExponent)
	}
	return ""
}
