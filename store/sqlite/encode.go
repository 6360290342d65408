package sqlite

import (
	"encoding/json"
	"fmt"

	"github.com/hookbay/hookbay/hooks"
)

// encoded holds a request's JSON columns.
type encoded struct{ headers, notes []byte }

func encodeRequest(req *hooks.Request) (encoded, error) {
	enc := encoded{headers: hooks.AppendHeaderJSON(make([]byte, 0, 512), req.Header), notes: []byte("[]")}
	if len(req.Notes) > 0 {
		var err error
		if enc.notes, err = json.Marshal(req.Notes); err != nil {
			return enc, fmt.Errorf("encode notes: %w", err)
		}
	}
	return enc, nil
}
