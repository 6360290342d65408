package cli

import (
	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

// bloomreachWebhooks builds the handler's webhooks from the finished
// config, with the JSON Schemas Finish compiled.
func bloomreachWebhooks(c *config.Config, d *hooks.Dispatch) (map[string]*handlers.BloomreachWebhook, map[string]handlers.OAuthClient, error) {
	b := c.Bloomreach
	shared := map[string]*hooks.Throttle{}
	for name, t := range b.Throttles {
		shared[name] = hooks.NewThrottle(t.Rate, t.Burst, t.MaxInFlight, t.Status)
	}
	out := map[string]*handlers.BloomreachWebhook{}
	for name, w := range b.Webhooks {
		wh := &handlers.BloomreachWebhook{Name: name, Methods: w.Methods, IDHeader: w.RequestID.Header,
			IDPointer: w.RequestID.JSON, ItemID: w.RequestID.ItemID}
		var err error
		if wh.Request, wh.Item, err = c.Schemas(name); err != nil {
			return nil, nil, err
		}
		if w.Batch != nil {
			wh.BatchItems, wh.BatchMax = w.Batch.Items, w.Batch.Max
		}
		a := w.Auth
		if a.Basic != nil {
			wh.Auth.Basic = &[2]string{a.Basic.Username, a.Basic.Password}
		}
		wh.Auth.Headers = a.Headers
		if a.OAuth2 != nil {
			wh.Auth.OAuth2, wh.Auth.TokenIn, wh.Auth.TokenField, wh.Auth.Scopes = true, a.OAuth2.TokenIn, a.OAuth2.Field, a.OAuth2.Scopes
		}
		if a.MTLS != nil {
			wh.Auth.MTLS, wh.Auth.MTLSSubjects = true, a.MTLS.Subjects
		}
		if t := w.Throttle; t != nil {
			if t.Inline != nil {
				wh.Throttle = hooks.NewThrottle(t.Inline.Rate, t.Inline.Burst, t.Inline.MaxInFlight, t.Inline.Status)
			} else {
				wh.Throttle = shared[t.Name]
			}
		}
		probe := &hooks.Job{Sender: hooks.SenderBloomreach, Name: name, Source: name}
		if act := d.For(probe); act != nil {
			wh.HasAction = true
			if w.Inline {
				wh.InlineAction = act.Run
			}
		}
		out[name] = wh
	}
	clients := map[string]handlers.OAuthClient{}
	for _, cl := range b.OAuth2.Clients {
		clients[cl.ID] = handlers.OAuthClient{Secret: cl.Secret, Scopes: cl.Scopes}
	}
	return out, clients, nil
}
