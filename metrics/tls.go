package metrics

import "strings"

// Handshake failure reasons, read from the message the HTTP server logs
// for a failed handshake.
var handshakeReasons = []struct {
	reason string
	any    []string // the message contains one of these
}{
	// The client's certificate was refused by our verification (mTLS).
	{"client_certificate_refused", []string{"tls: failed to verify certificate"}},
	{"client_certificate_missing", []string{"client didn't provide a certificate"}},
	// The client refused ours (an untrusted or mismatched certificate).
	{"server_certificate_refused", []string{"remote error: tls: bad certificate", "remote error: tls: unknown certificate authority",
		"remote error: tls: certificate unknown", "remote error: tls: certificate expired", "remote error: tls: bad certificate status"}},
	{"not_tls", []string{"first record does not look like a TLS handshake", "client sent an HTTP request to an HTTPS server"}},
	{"protocol_version", []string{"protocol version", "unsupported versions"}},
	{"no_shared_cipher", []string{"no cipher suite supported by both client and server", "no mutually supported"}},
	{"no_certificate_for_host", []string{"no certificate available", "missing server name", "acme/autocert"}},
	{"timeout", []string{"i/o timeout", "deadline exceeded"}},
	{"connection_closed", []string{"EOF", "connection reset by peer", "broken pipe", "use of closed network connection"}},
}

// HandshakeReason is the reason label of a failed TLS handshake, read
// from the line the HTTP server logs for it ("http: TLS handshake error
// from ADDR: ..."): one of a fixed list, or "other". ok is false for a
// line that is not about a handshake.
func HandshakeReason(logLine string) (reason string, ok bool) {
	_, detail, found := strings.Cut(logLine, "TLS handshake error")
	if !found {
		return "", false
	}
	for _, r := range handshakeReasons {
		for _, s := range r.any {
			if strings.Contains(detail, s) {
				return r.reason, true
			}
		}
	}
	return Other, true
}

// HandshakeFailed counts a failed TLS handshake by reason
// (HandshakeReason).
func (m *Metrics) HandshakeFailed(reason string) {
	valid := make([]string, 0, len(handshakeReasons))
	for _, r := range handshakeReasons {
		valid = append(valid, r.reason)
	}
	m.handshakeFailures.WithLabelValues(oneOf(reason, valid)).Inc()
}
