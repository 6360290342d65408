package idempotency_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/idempotency"
)

func TestNormalizeKey(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, tt := range []struct {
			name, raw, want string
		}{
			{"Plain", "3f2c9a8e-1b7d-4e0a-9c55-2d6f1e8b7a40", "3f2c9a8e-1b7d-4e0a-9c55-2d6f1e8b7a40"},
			{"TrimsSpaces", "  id-1 \t", "id-1"},
			{"TrimsUnicodeSpace", "\u00a0id-1\u2003", "id-1"},
			{"KeepsInnerSpace", " a b ", "a b"},
			{"Empty", "", ""},
			{"OnlySpace", "   ", ""},
			{"MaxLen", strings.Repeat("a", idempotency.MaxKeyLen), strings.Repeat("a", idempotency.MaxKeyLen)},
			{"MaxLenAfterTrim", "  " + strings.Repeat("a", idempotency.MaxKeyLen) + "  ", strings.Repeat("a", idempotency.MaxKeyLen)},
			{"NonASCII", "clé-é", "clé-é"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got, err := idempotency.NormalizeKey(tt.raw)
				if err != nil {
					t.Fatalf("NormalizeKey(%q): got error %v, want nil", tt.raw, err)
				}
				if got != tt.want {
					t.Errorf("NormalizeKey(%q): got %q, want %q", tt.raw, got, tt.want)
				}
			})
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for _, tt := range []struct {
			name, raw string
		}{
			{"TooLong", strings.Repeat("a", idempotency.MaxKeyLen+1)},
			{"TooLongMultibyte", strings.Repeat("é", 128)}, // 256 bytes, 128 runes
			{"NUL", "id\x00-1"},
			{"Newline", "id\n1"},
			{"CR", "id-1\r\nX-Injected: 1"},
			{"Tab", "id\t1"},
			{"DEL", "id\x7f1"},
			{"C1", "id\u00851"},
			{"Escape", "id\x1b[31m"},
			{"NotUTF8", "id-\xff\xfe"},
			{"TruncatedRune", "id-\xc3"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got, err := idempotency.NormalizeKey(tt.raw)
				if got, want := hooks.ErrorCode(err), hooks.EINVALID; got != want {
					t.Fatalf("NormalizeKey(%q): got error code %q (err %v), want %q", tt.raw, got, err, want)
				}
				if got != "" {
					t.Errorf("NormalizeKey(%q): got key %q with the error, want \"\"", tt.raw, got)
				}
			})
		}
	})
}

func FuzzNormalizeKey(f *testing.F) {
	for _, s := range []string{
		"", " ", "id-1", "  id-1  ", "a\x00b", "\r\n", "\u0085x\u0085", "\xff\xfe", "é",
		"\u00a0\u2028id\u2029", strings.Repeat("a", 255), strings.Repeat("a", 256),
		" " + strings.Repeat("a", 255) + " ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		k, err := idempotency.NormalizeKey(raw)
		if err != nil {
			if got, want := hooks.ErrorCode(err), hooks.EINVALID; got != want {
				t.Fatalf("NormalizeKey(%q): got error code %q, want %q", raw, got, want)
			}
			return
		}
		if len(k) > idempotency.MaxKeyLen {
			t.Errorf("NormalizeKey(%q): got %d bytes, want at most %d", raw, len(k), idempotency.MaxKeyLen)
		}
		for i := 0; i < len(k); i++ {
			if b := k[i]; b < 0x20 || b == 0x7f {
				t.Errorf("NormalizeKey(%q): got %q with control byte %#x at %d, want none", raw, k, b, i)
			}
		}
		if i := strings.IndexFunc(k, unicode.IsControl); i >= 0 {
			t.Errorf("NormalizeKey(%q): got %q with a control character at %d, want none", raw, k, i)
		}
		if !utf8.ValidString(k) {
			t.Errorf("NormalizeKey(%q): got %q, which is not UTF-8", raw, k)
		}
		if got, want := k, strings.TrimSpace(raw); got != want {
			t.Errorf("NormalizeKey(%q): got %q, want the trimmed input %q", raw, got, want)
		}
		again, err := idempotency.NormalizeKey(k)
		if err != nil {
			t.Fatalf("NormalizeKey(NormalizeKey(%q) = %q): got error %v, want nil", raw, k, err)
		}
		if again != k {
			t.Errorf("NormalizeKey(%q): got %q, want it unchanged", k, again)
		}
	})
}
