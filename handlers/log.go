package handlers

import (
	"context"
	"log/slog"

	"github.com/hookbay/hookbay/hooks"
)

// RequestLog returns the function that logs one line per answered request
// (give it to Observe). A request that reached a sender's route is logged
// with its sender, name, the sender's request or message ID, its event ID
// (the record's, for "hookbay events show"), status, latency, the
// answer's verdict (what it means to the sender) and, when it was
// refused, the reason and the message the client was told.
//
// With every set, each such line is at INFO; otherwise at DEBUG, except
// that an answer that hurts the sender (stop_campaign, hold_queue) or a
// 5xx is at WARN either way. A request that reached no sender's route is
// logged at INFO when refused (unknown paths, with every set), else at
// DEBUG (health checks). Headers and bodies are never logged: they carry
// secrets.
func RequestLog(logger *slog.Logger, every bool) func(*Exchange) {
	base := slog.LevelDebug
	if every {
		base = slog.LevelInfo
	}
	return func(x *Exchange) {
		ctx := context.Background()
		rec := x.Record
		if rec == nil {
			level := slog.LevelDebug
			if x.Status >= 400 || x.Status == 0 {
				level = base
			}
			if logger.Enabled(ctx, level) {
				logger.LogAttrs(ctx, level, "request", slog.String("method", x.Method), slog.String("path", asText(x.Path)),
					slog.Int("status", x.Status), latency(x), slog.String("remote", x.RemoteAddr))
			}
			return
		}
		level := base
		if x.Verdict.Kind == hooks.VerdictStopCampaign || x.Verdict.Kind == hooks.VerdictHoldQueue || x.Status >= 500 {
			level = slog.LevelWarn
		}
		if !logger.Enabled(ctx, level) {
			return
		}
		attrs := make([]slog.Attr, 0, 16)
		attrs = append(attrs, slog.String("sender", string(rec.Sender)), slog.String("name", rec.Name),
			slog.String("request_id", rec.RequestID), slog.Int64("event", rec.ID), slog.Int("status", x.Status), latency(x))
		if rec.Urgency != "" {
			attrs = append(attrs, slog.String("urgency", string(rec.Urgency)))
		}
		if x.Status == 0 {
			attrs = append(attrs, slog.String("verdict", "none"), slog.String("verdict_text", "no answer was sent (connection closed)"))
		} else {
			attrs = append(attrs, slog.String("verdict", string(x.Verdict.Kind)), slog.String("verdict_text", x.Verdict.Text))
		}
		if x.Refusal != "" {
			attrs = append(attrs, slog.String("reason", x.Refusal), slog.String("error", x.Error))
		}
		if rec.DuplicateOf != 0 {
			attrs = append(attrs, slog.Int64("duplicate_of", rec.DuplicateOf))
		}
		attrs = append(attrs, slog.String("remote", x.RemoteAddr))
		logger.LogAttrs(ctx, level, "request", attrs...)
	}
}

// latency is the request's latency in milliseconds, which reads the same
// in text and JSON.
func latency(x *Exchange) slog.Attr {
	return slog.Float64("latency_ms", float64(x.Duration.Microseconds())/1000)
}
