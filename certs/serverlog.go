package certs

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// ServerErrorLog is an http.Server's ErrorLog for a TLS server: a
// handshake refused over a client certificate (expired, not yet valid,
// signed by another CA) is logged at Warn, at most a few times a minute,
// because it is how a sender's mTLS set-up fails; everything else the
// server logs (scanners, resets) stays at Debug.
func ServerErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(&serverLogWriter{logger: logger, limit: rate.NewLimiter(rate.Every(10*time.Second), 3)}, "", 0)
}

type serverLogWriter struct {
	logger *slog.Logger
	limit  *rate.Limiter
}

func (w *serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(bytes.TrimRight(p, "\n")))
	// Only this server's verification of a client's certificate; not a
	// client refusing ours ("remote error: tls: bad certificate"), which
	// every browser and scanner meeting a dev certificate causes.
	refused := strings.Contains(msg, "TLS handshake error") && strings.Contains(msg, "tls: failed to verify certificate") &&
		!strings.Contains(msg, "remote error")
	if refused && w.limit.Allow() {
		w.logger.Warn("TLS handshake refused over a client certificate", "detail", msg)
		return len(p), nil
	}
	w.logger.Log(context.Background(), slog.LevelDebug, msg)
	return len(p), nil
}
