package hooks_test

import (
	"testing"

	"github.com/hookbay/hookbay/hooks"
)

func TestJudge(t *testing.T) {
	tests := []struct {
		sender hooks.Sender
		name   string
		status int
		body   string
		want   hooks.VerdictKind
	}{
		{hooks.SenderBloomreach, "sms", 200, `{"success":true}`, hooks.VerdictDelivered},
		{hooks.SenderBloomreach, "sms", 200, `{"success":false,"errors":[]}`, hooks.VerdictItemFailed},
		{hooks.SenderBloomreach, "sms", 200, `{"Success":false}`, hooks.VerdictDelivered}, // exactly "success"
		{hooks.SenderBloomreach, "sms", 429, `{}`, hooks.VerdictRetry},
		{hooks.SenderBloomreach, "sms", 503, `{}`, hooks.VerdictRetry},
		{hooks.SenderBloomreach, "sms", 404, `{}`, hooks.VerdictStopCampaign},
		{hooks.SenderBloomreach, "sms", 413, `{}`, hooks.VerdictStopCampaign},
		{hooks.SenderBloomreach, "sms", 401, `{}`, hooks.VerdictFailed},
		{hooks.SenderBloomreach, "sms", 405, `{}`, hooks.VerdictFailed},
		{hooks.SenderSvix, "bloom", 200, `{}`, hooks.VerdictDelivered},
		{hooks.SenderSvix, "bloom", 401, `{}`, hooks.VerdictRetry},
		{hooks.SenderBubblehouse, "Hello2", 404, `{}`, hooks.VerdictNotImplemented},
		{hooks.SenderBubblehouse, "CreateDiscount4", 202, `{"ok":true}`, hooks.VerdictDelivered},
		{hooks.SenderBubblehouse, "CreateDiscount4", 503, `{}`, hooks.VerdictRetry},
		{hooks.SenderBubblehouse, "SendEvent1", 200, `{"outcome":"sent"}`, hooks.VerdictDelivered},
		{hooks.SenderBubblehouse, "SendEvent1", 200, `{"outcome":"invalid_data"}`, hooks.VerdictItemFailed},
		{hooks.SenderBubblehouse, "SendEvent1", 200, `{"outcome":"failure"}`, hooks.VerdictHoldQueue},
		{hooks.SenderBubblehouse, "SendEvent1", 200, `{"Outcome":"sent"}`, hooks.VerdictHoldQueue},
		{hooks.SenderBubblehouse, "SendEvent1", 401, `{}`, hooks.VerdictHoldQueue},
	}
	for _, tt := range tests {
		got := hooks.Judge(tt.sender, tt.name, tt.status, []byte(tt.body))
		if got.Kind != tt.want || got.Text == "" {
			t.Errorf("Judge(%s, %s, %d, %s) = %+v, want %s", tt.sender, tt.name, tt.status, tt.body, got, tt.want)
		}
	}
	for _, k := range hooks.VerdictKinds {
		if k == "" {
			t.Fatal("an empty verdict kind")
		}
	}
}
