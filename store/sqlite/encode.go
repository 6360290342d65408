package sqlite

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/hookbay/hookbay/hooks"
)

// encoded holds a request's JSON columns.
type encoded struct{ headers, notes []byte }

func encodeRequest(req *hooks.Request) (encoded, error) {
	enc := encoded{headers: appendHeaderJSON(make([]byte, 0, 512), req.Header), notes: []byte("[]")}
	if len(req.Notes) > 0 {
		var err error
		if enc.notes, err = json.Marshal(req.Notes); err != nil {
			return enc, fmt.Errorf("encode notes: %w", err)
		}
	}
	return enc, nil
}

// appendHeaderJSON appends h encoded as json.Marshal encodes it (names
// sorted, each with its array of values) without reflection: every request
// record stores its headers, so this runs once per request.
func appendHeaderJSON(dst []byte, h http.Header) []byte {
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
