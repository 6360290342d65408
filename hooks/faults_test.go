package hooks_test

import (
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// Matches applies a fault by sender, name, count and expiry; a status fault
// below 300, stored before Validate refused such statuses, never applies.
func TestFault_Matches(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	base := hooks.Fault{Sender: hooks.SenderBubblehouse, Kind: hooks.FaultStatus, Status: 503, Remaining: -1, Percent: 100}
	for _, tt := range []struct {
		name  string
		edit  func(f *hooks.Fault)
		names []string
		want  bool
	}{
		{"AllNames", nil, []string{"CreateDiscount4"}, true},
		{"NamedHook", func(f *hooks.Fault) { f.Name = "SendEvent1" }, []string{"SendEvent1"}, true},
		{"OtherHook", func(f *hooks.Fault) { f.Name = "SendEvent1" }, []string{"CreateDiscount4"}, false},
		{"OtherSender", func(f *hooks.Fault) { f.Sender = hooks.SenderSvix }, nil, false},
		{"UsedUp", func(f *hooks.Fault) { f.Remaining = 0 }, nil, false},
		{"Expired", func(f *hooks.Fault) { f.ExpiresAt = now.Add(-time.Second) }, nil, false},
		{"Redirect", func(f *hooks.Fault) { f.Status = 307 }, nil, true},
		{"StoredAcceptance", func(f *hooks.Fault) { f.Status = 200 }, nil, false},
		{"StoredInformational", func(f *hooks.Fault) { f.Status = 100 }, nil, false},
		{"Delay", func(f *hooks.Fault) { f.Kind, f.Status, f.Delay = hooks.FaultDelay, 0, time.Second }, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			if tt.edit != nil {
				tt.edit(&f)
			}
			if got := f.Matches(hooks.SenderBubblehouse, tt.names, now); got != tt.want {
				t.Fatalf("Matches=%v, want %v", got, tt.want)
			}
		})
	}
}
