package qa

import (
	"net/http"
	"strings"
	"testing"
)

// Answers are read by their members' exact names, as the senders read
// them: encoding/json's struct decoding also takes "SUCCESS" or "Magic",
// and keeps whichever comes last.
func TestMeaning_ExactMemberNames(t *testing.T) {
	if got := BloomreachMeaning(200, []byte(`{"SUCCESS":false}`)); got != "delivered" {
		t.Errorf(`BloomreachMeaning(200, {"SUCCESS":false}) = %q: Bloomreach reads success, and there is none`, got)
	}
	if got := BloomreachMeaning(200, []byte(`{"success":false,"Success":true}`)); !strings.Contains(got, "customer's failure") {
		t.Errorf(`BloomreachMeaning(200, {"success":false,"Success":true}) = %q, want the customer's failure`, got)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://x.test/hooks/Hello1", nil)
	req.Header.Set("X-BH-Urgency", "real-time")
	x := &Exchange{Request: req, Body: []byte(`{"magic":"a","MAGIC":"b"}`), Status: 200, Answer: []byte(`{"magic":"a","hooks":[]}`)}
	if got := BubblehouseMeaning(x); !strings.HasPrefix(got, "accepted") {
		t.Errorf("BubblehouseMeaning: the magic sent is a, answered a: got %q", got)
	}
}
