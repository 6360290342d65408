package postgres

import (
	"strings"
	"unicode/utf8"
)

// cleanText is s as PostgreSQL's text keeps it: bytes that are not UTF-8
// replaced by U+FFFD, and NUL bytes, which text cannot hold, too.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
