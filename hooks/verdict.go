package hooks

import (
	"encoding/json"
	"fmt"
	"slices"
)

// VerdictKind is what an answer means to the sender that got it, from a
// fixed list (so that it can label a metric). Only hookbay can say this: it
// knows each sender's contract.
type VerdictKind string

// The verdicts, in the senders' own terms.
const (
	// VerdictDelivered: the sender counts the request as delivered.
	VerdictDelivered VerdictKind = "delivered"
	// VerdictItemFailed: delivered, but the sender records a failure for
	// the customer or event inside it (Bloomreach success:false, a batch
	// with failed items; Bubblehouse SendEvent1 invalid_data, which drops
	// the event).
	VerdictItemFailed VerdictKind = "item_failed"
	// VerdictRetry: the sender will send the request again later.
	VerdictRetry VerdictKind = "retry"
	// VerdictHoldQueue: Bubblehouse retries SendEvent1 and holds its whole
	// event queue until it succeeds.
	VerdictHoldQueue VerdictKind = "hold_queue"
	// VerdictFailed: the sender counts a failure and does not retry
	// (Bloomreach's other 4xx).
	VerdictFailed VerdictKind = "failed"
	// VerdictStopCampaign: Bloomreach stops the whole campaign (400, 404,
	// 410, 412, 413, 418).
	VerdictStopCampaign VerdictKind = "stop_campaign"
	// VerdictNotImplemented: Bubblehouse reads 404 as a hook that is not
	// implemented, right for Hello2 and hooks nobody subscribed to.
	VerdictNotImplemented VerdictKind = "not_implemented"
)

// VerdictKinds lists every verdict, for metrics that must know their label
// values in advance.
var VerdictKinds = []VerdictKind{VerdictDelivered, VerdictItemFailed, VerdictRetry, VerdictHoldQueue,
	VerdictFailed, VerdictStopCampaign, VerdictNotImplemented}

// BloomreachStopCodes are the 4xx answers that make Bloomreach stop the
// whole campaign ("Creating API endpoint for webhooks", response codes).
var BloomreachStopCodes = []int{400, 404, 410, 412, 413, 418}

// Verdict is an answer's meaning to its sender: a kind and a sentence.
type Verdict struct {
	Kind VerdictKind `json:"kind"`
	Text string      `json:"text"`
}

// Judge says what the answer (status and body) to a request of sender for
// name (a hook, webhook or endpoint) means to that sender.
func Judge(sender Sender, name string, status int, body []byte) Verdict {
	switch sender {
	case SenderBloomreach:
		return judgeBloomreach(status, body)
	case SenderSvix:
		if status >= 200 && status < 300 {
			return Verdict{VerdictDelivered, "Svix: delivered"}
		}
		return Verdict{VerdictRetry, fmt.Sprintf("Svix retries (%d) on its schedule, up to about 27 hours", status)}
	}
	return judgeBubblehouse(name, status, body)
}

func judgeBloomreach(status int, body []byte) Verdict {
	switch {
	case status == 200:
		if v, ok := topLevelBool(body, "success"); ok && !v {
			return Verdict{VerdictItemFailed, "Bloomreach: delivered, with the customer's failure counted"}
		}
		return Verdict{VerdictDelivered, "Bloomreach: success, counted"}
	case status > 200 && status < 300:
		return Verdict{VerdictDelivered, fmt.Sprintf("Bloomreach: delivered (%d; the contract asks for 200)", status)}
	case status == 429 || status >= 500:
		return Verdict{VerdictRetry, fmt.Sprintf("Bloomreach retries (%d)", status)}
	case slices.Contains(BloomreachStopCodes, status):
		return Verdict{VerdictStopCampaign, fmt.Sprintf("Bloomreach would stop this campaign (%d)", status)}
	}
	return Verdict{VerdictFailed, fmt.Sprintf("Bloomreach counts a failed campaign event, not retried (%d)", status)}
}

func judgeBubblehouse(name string, status int, body []byte) Verdict {
	sendEvent := name == "SendEvent1"
	switch {
	case status == 404:
		return Verdict{VerdictNotImplemented, "Bubblehouse: the hook is not implemented (404)"}
	case status != 200 && status != 201 && status != 202 && status != 204:
		if sendEvent {
			return Verdict{VerdictHoldQueue, fmt.Sprintf("Bubblehouse retries (%d) and holds its SendEvent1 queue", status)}
		}
		return Verdict{VerdictRetry, fmt.Sprintf("Bubblehouse retries (%d)", status)}
	case sendEvent:
		switch outcome := topLevelString(body, "outcome"); outcome {
		case "failure":
			return Verdict{VerdictHoldQueue, "Bubblehouse retries (outcome failure) and holds its SendEvent1 queue"}
		case "invalid_data":
			return Verdict{VerdictItemFailed, "Bubblehouse drops the event (outcome invalid_data)"}
		case "":
			return Verdict{VerdictHoldQueue, "Bubblehouse cannot read an outcome; it retries and holds its SendEvent1 queue"}
		default:
			return Verdict{VerdictDelivered, "Bubblehouse: delivered (outcome " + outcome + ")"}
		}
	}
	return Verdict{VerdictDelivered, fmt.Sprintf("Bubblehouse: delivered (%d)", status)}
}

// topLevelBool reads a boolean member of a JSON object.
func topLevelBool(body []byte, key string) (v, ok bool) {
	switch string(objectMember(body, key)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// topLevelString reads a string member of a JSON object; "" when absent.
func topLevelString(body []byte, key string) string {
	var s string
	if raw := objectMember(body, key); raw != nil && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}
