package admin

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// exportRequests writes the records the list's filters select, up to
// limit (default and cap maxExport), as JSON lines (format=jsonl, one
// record a line, with headers, body and answer) or as a HAR 1.2 log
// (format=har), as a download.
func (s *Server) exportRequests(c echo.Context) error {
	q := c.QueryParams()
	format := q.Get("format")
	if format != "jsonl" && format != "har" {
		return errorf(http.StatusBadRequest, "format %q: want jsonl or har", format)
	}
	f, err := s.requestFilter(q, maxExport)
	if err != nil {
		return err
	}
	total := maxExport
	if q.Get("limit") != "" {
		total = f.Limit
	}
	ctx := c.Request().Context()
	var all []*hooks.Request
	for len(all) < total {
		f.Limit = min(maxLimit, total-len(all))
		reqs, next, _, err := s.findPage(ctx, f)
		if err != nil {
			return err
		}
		all = append(all, reqs...)
		if next == 0 {
			break
		}
		f.BeforeID = next
	}
	h := c.Response().Header()
	stamp := s.opts.Now().UTC().Format("20060102-150405")
	if format == "har" {
		h.Set("Content-Disposition", `attachment; filename="hookbay-`+stamp+`.har"`)
		return c.JSON(http.StatusOK, harOf(all, s.opts.Version, s.opts.BaseURL()))
	}
	h.Set("Content-Disposition", `attachment; filename="hookbay-`+stamp+`.jsonl"`)
	c.Response().Header().Set(echo.HeaderContentType, "application/x-ndjson")
	c.Response().WriteHeader(http.StatusOK)
	enc := json.NewEncoder(c.Response())
	for _, r := range all {
		line := exportLine{requestSummary: summarize(r), RemoteAddr: r.RemoteAddr, Header: r.Header, Body: bodyOf(r.Body),
			Response: bodyOf(r.Response), Notes: r.Notes}
		if err := enc.Encode(line); err != nil {
			return nil // the client went away; the status is sent
		}
	}
	return nil
}

// exportLine is one record of a JSON lines export.
type exportLine struct {
	requestSummary
	RemoteAddr string              `json:"remote_addr"`
	Header     map[string][]string `json:"headers"`
	Body       body                `json:"body"`
	Response   body                `json:"response"`
	Notes      []string            `json:"notes"`
}

// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/), the part an
// export fills.
type (
	harLog struct {
		Log harBody `json:"log"`
	}
	harBody struct {
		Version string     `json:"version"`
		Creator harCreator `json:"creator"`
		Entries []harEntry `json:"entries"`
	}
	harCreator struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	harEntry struct {
		StartedDateTime string      `json:"startedDateTime"`
		Time            float64     `json:"time"`
		Request         harRequest  `json:"request"`
		Response        harResponse `json:"response"`
		Cache           struct{}    `json:"cache"`
		Timings         harTimings  `json:"timings"`
		Comment         string      `json:"comment,omitempty"`
	}
	harRequest struct {
		Method      string       `json:"method"`
		URL         string       `json:"url"`
		HTTPVersion string       `json:"httpVersion"`
		Cookies     []struct{}   `json:"cookies"`
		Headers     []harNV      `json:"headers"`
		QueryString []harNV      `json:"queryString"`
		PostData    *harPostData `json:"postData,omitempty"`
		HeadersSize int          `json:"headersSize"`
		BodySize    int          `json:"bodySize"`
	}
	harResponse struct {
		Status      int        `json:"status"`
		StatusText  string     `json:"statusText"`
		HTTPVersion string     `json:"httpVersion"`
		Cookies     []struct{} `json:"cookies"`
		Headers     []harNV    `json:"headers"`
		Content     harContent `json:"content"`
		RedirectURL string     `json:"redirectURL"`
		HeadersSize int        `json:"headersSize"`
		BodySize    int        `json:"bodySize"`
	}
	harNV struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	harPostData struct {
		MimeType string `json:"mimeType"`
		Text     string `json:"text"`
		Encoding string `json:"encoding,omitempty"`
	}
	harContent struct {
		Size     int    `json:"size"`
		MimeType string `json:"mimeType"`
		Text     string `json:"text"`
		Encoding string `json:"encoding,omitempty"`
	}
	harTimings struct {
		Send    float64 `json:"send"`
		Wait    float64 `json:"wait"`
		Receive float64 `json:"receive"`
	}
)

// harText returns bytes as HAR text: as they are when UTF-8, else base64
// with the encoding named.
func harText(b []byte) (text, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return bodyOf(b).Base64, "base64"
}

func harOf(reqs []*hooks.Request, version, base string) harLog {
	out := harLog{Log: harBody{Version: "1.2", Creator: harCreator{"hookbay", version}, Entries: []harEntry{}}}
	for _, r := range reqs {
		ms := float64(r.Latency.Microseconds()) / 1000
		e := harEntry{StartedDateTime: r.ReceivedAt.Format(time.RFC3339Nano), Time: ms,
			Timings: harTimings{Wait: ms}, Comment: fmt.Sprintf("hookbay request %d: %s", r.ID, hooks.Judge(r.Sender, r.Name, r.Status, r.Response).Text)}
		req := harRequest{Method: r.Method, URL: requestURL(r, base), HTTPVersion: "HTTP/1.1", Cookies: []struct{}{},
			Headers: []harNV{}, QueryString: []harNV{}, HeadersSize: -1, BodySize: len(r.Body)}
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			for _, v := range r.Header[k] {
				req.Headers = append(req.Headers, harNV{k, v})
			}
		}
		if len(r.Body) > 0 {
			text, enc := harText(r.Body)
			req.PostData = &harPostData{MimeType: r.Header.Get("Content-Type"), Text: text, Encoding: enc}
		}
		text, enc := harText(r.Response)
		e.Request = req
		e.Response = harResponse{Status: r.Status, StatusText: http.StatusText(r.Status), HTTPVersion: "HTTP/1.1",
			Cookies: []struct{}{}, Headers: []harNV{{"Content-Type", "application/json"}},
			Content:     harContent{Size: len(r.Response), MimeType: "application/json", Text: text, Encoding: enc},
			HeadersSize: -1, BodySize: len(r.Response)}
		out.Log.Entries = append(out.Log.Entries, e)
	}
	return out
}

// requestURL is the URL a record was sent to: base (scheme://host:port,
// the listener's) and the recorded path.
func requestURL(r *hooks.Request, base string) string {
	if base == "" {
		base = "https://localhost"
	}
	return strings.TrimSuffix(base, "/") + r.Path
}

// skippedHeaders are not repeated by a curl command: curl sets them
// itself, or they describe the first connection only.
var skippedHeaders = map[string]bool{"Host": true, "Content-Length": true, "Connection": true, "Accept-Encoding": true,
	"Transfer-Encoding": true, "User-Agent": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Real-Ip": true}

// curlCommand is a shell command that sends the recorded request again:
// the same method, path, headers and exact body bytes. A redacted header
// (a secret) becomes a shell variable the user sets first, so that no
// secret is shown and the command still says what goes there.
func curlCommand(r *hooks.Request, base string) string {
	var b strings.Builder
	var vars []string
	fmt.Fprintf(&b, "curl -X %s %s", r.Method, shellQuote(requestURL(r, base)))
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		if skippedHeaders[k] {
			continue
		}
		for _, v := range r.Header[k] {
			if strings.Contains(v, "[redacted]") {
				name := "HOOKBAY_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(k))
				if !slices.Contains(vars, name) {
					vars = append(vars, name)
				}
				// Double quotes let the shell put the secret in.
				fmt.Fprintf(&b, " \\\n  -H \"%s: %s\"", k, strings.Replace(v, "[redacted]", "${"+name+"}", 1))
				continue
			}
			fmt.Fprintf(&b, " \\\n  -H %s", shellQuote(k+": "+v))
		}
	}
	if len(r.Body) > 0 {
		if utf8.Valid(r.Body) && !strings.ContainsRune(string(r.Body), 0) {
			fmt.Fprintf(&b, " \\\n  --data-binary %s", shellQuote(string(r.Body)))
		} else {
			// Bytes a shell string cannot hold go through printf's octal
			// escapes, exactly.
			var esc strings.Builder
			for _, c := range r.Body {
				esc.WriteString("\\" + strconv.FormatInt(int64(c), 8))
			}
			fmt.Fprintf(&b, " \\\n  --data-binary @<(printf '%s')", esc.String())
		}
	}
	cmd := b.String()
	if len(vars) > 0 {
		cmd = "# secrets are elided: set " + strings.Join(vars, ", ") + " first\n" + cmd
	}
	return cmd + "\n"
}

// shellQuote quotes s for a POSIX shell: single quotes, with each single
// quote closed, escaped and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
