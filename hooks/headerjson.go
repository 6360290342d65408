package hooks

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// AppendHeaderJSON appends h encoded as json.Marshal encodes it (names
// sorted, each with its array of values) without reflection: it is how the
// stores keep a request's headers, once per request.
func AppendHeaderJSON(dst []byte, h http.Header) []byte {
	if h == nil {
		return append(dst, "null"...)
	}
	var buf [32]string
	names := buf[:0]
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, k := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		vals := h[k]
		if vals == nil {
			dst = append(dst, "null"...)
			continue
		}
		dst = append(dst, '[')
		for j, v := range vals {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, v)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Printable ASCII that needs no
// escape is copied as is; anything else is left to encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// DecodeHeaderJSON decodes stored headers into an http.Header, as
// json.Unmarshal does. What AppendHeaderJSON writes for names and values of
// printable ASCII, without escapes, is read without reflection: a claim
// decodes the headers of every job it hands out. Anything else (escapes,
// other bytes, spaces, a record written by another encoder) is left to
// encoding/json. The names and values share the memory of s.
func DecodeHeaderJSON(s string) (http.Header, error) {
	if h, ok := scanHeaderJSON(s); ok {
		return h, nil
	}
	var h http.Header
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, err
	}
	return h, nil
}

// maxHeaderHint bounds the names a decoded header's map is sized for.
const maxHeaderHint = 64

// scanHeaderJSON reads s when it is null or an object of names, each with
// null or an array of strings, in AppendHeaderJSON's plain form; ok is
// false for anything else.
func scanHeaderJSON(s string) (h http.Header, ok bool) {
	if s == "null" {
		return nil, true
	}
	if len(s) < 2 || s[0] != '{' {
		return nil, false
	}
	// A name ends with `":`. A value may hold it too, escaped, which the
	// scan then gives up on; the cap keeps such a value from sizing the map.
	h = make(http.Header, min(strings.Count(s, `":`), maxHeaderHint))
	i := 1
	if s[i] == '}' {
		return h, len(s) == 2
	}
	for {
		var k string
		if k, i, ok = plainString(s, i); !ok || i >= len(s) || s[i] != ':' {
			return nil, false
		}
		i++
		switch {
		case strings.HasPrefix(s[i:], "null"):
			h[k] = nil
			i += len("null")
		case strings.HasPrefix(s[i:], "[]"):
			h[k] = []string{}
			i += len("[]")
		case strings.HasPrefix(s[i:], "["):
			var vals []string
			for i++; ; i++ {
				var v string
				if v, i, ok = plainString(s, i); !ok || i >= len(s) {
					return nil, false
				}
				vals = append(vals, v)
				if s[i] == ']' {
					break
				} else if s[i] != ',' {
					return nil, false
				}
			}
			h[k] = vals
			i++
		default:
			return nil, false
		}
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case ',':
			i++
		case '}':
			return h, i+1 == len(s)
		default:
			return nil, false
		}
	}
}

// plainString reads the JSON string at s[i] when it holds only printable
// ASCII without a backslash, and returns it and the index after it; ok is
// false for anything else.
func plainString(s string, i int) (v string, next int, ok bool) {
	if i >= len(s) || s[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return s[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", i, false
		}
	}
	return "", i, false
}
