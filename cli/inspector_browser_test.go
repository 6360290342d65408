package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// chromiumPath finds a Chromium for the browser tests: $HOOKBAY_CHROMIUM,
// else chromium or google-chrome on PATH. Without one the test is skipped,
// unless HOOKBAY_REQUIRE_SERVICES=1 (CI), which makes it a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HOOKBAY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HOOKBAY_REQUIRE_SERVICES") == "1" {
		t.Fatal("no Chromium found (apt-get install chromium, or set HOOKBAY_CHROMIUM), and HOOKBAY_REQUIRE_SERVICES=1 requires the browser tests")
	}
	t.Skip("no Chromium found: apt-get install chromium (or set HOOKBAY_CHROMIUM) to run the inspector's browser tests")
	return ""
}

// browser starts a headless Chromium for the test; JavaScript exceptions
// on its pages fail the test.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("no-first-run", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.WindowSize(1440, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			x := ev.ExceptionDetails
			desc := x.Text
			if x.Exception != nil {
				desc += " " + x.Exception.Description
			}
			t.Errorf("JavaScript exception at %s:%d:%d: %s", x.URL, x.LineNumber+1, x.ColumnNumber+1, desc)
		}
	}()
	return ctx
}

// do runs browser steps, failing the test with what was being done.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// until waits for a JavaScript condition on the page.
func until(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText.slice(0, 2000) : "")`))
		t.Fatalf("%s: %v\npage:\n%s", what, err, page)
	}
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

// screenshot writes the viewport to docs/screenshots/name when
// HOOKBAY_SCREENSHOTS=1, so that README's pictures come from this test
// and CI does not change the tree.
func screenshot(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	if os.Getenv("HOOKBAY_SCREENSHOTS") != "1" {
		return
	}
	// No passing notice in the picture.
	do(t, ctx, "hide the notice", chromedp.Evaluate[chromedp.Void](`document.getElementById("toast").className = ""`))
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100) // the whole page, as PNG
	}
	buf, err := chromedp.Run(ctx, shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", filepath.Join(dir, name))
}

// TestInspector_Browser drives the inspector in a real headless Chromium:
// the token login (refused without it), requests of each sender appearing
// live without a reload, a request's page with its contract verdict, a
// replay and its new attempt, a dead job retried, a fault added and
// removed, and the keyboard.
func TestInspector_Browser(t *testing.T) {
	chrome := chromiumPath(t)
	d := newDownstream(t)
	d.status = http.StatusInternalServerError
	const token = "inspector-token-0123456789"
	m := MustRunMain(t, func(c *config.Config) {
		// Bound off loopback, as on a shared QA host: the token is
		// required, and the login asks for it.
		c.Admin.Listen, c.Admin.Token = "0.0.0.0:0", token
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL + "/discounts")}
		c.Queue.MaxAttempts = 1
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sample": {Auth: brBasic()}}
	})
	ctx := browser(t, chrome)
	base := strings.TrimSuffix(m.AdminURL(), "/")

	// Refused without the token: the API says so, a page asks for it.
	do(t, ctx, "open the API without a token", chromedp.Navigate(base+"/api/v1/requests"))
	if body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil || !strings.Contains(body, "a token is required") {
		t.Fatalf("API without a token: %q", body)
	}
	do(t, ctx, "open the inspector", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	do(t, ctx, "log in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token-at-all"),
		chromedp.Click(chromedp.ID("login-submit")), chromedp.WaitVisible(chromedp.ID("login-error")))
	do(t, ctx, "log in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("filters")))
	until(t, ctx, "the live stream", `document.getElementById("live").textContent === "live"`)

	// One request of each sender (and a refusal), seen arriving without a
	// reload: the marker set on this page load survives.
	do(t, ctx, "mark the page", chromedp.Evaluate[chromedp.Void](`window.loadedOnce = 42`))
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"SPRING","title":"10% off"}`, urgency: "urgent", id: "bh-live-1"})
	sendSvix(t, m, "bloom", signed{id: "msg_live_1", body: `{"type":"user.created","data":{"name":"Ada"}}`})
	sendSvix(t, m, "bloom", signed{id: "msg_live_2", body: `{"type":"user.created"}`, sig: "v1,AAAA"})
	send(t, m, call{hook: "SendEvent1", body: `{"event":"order.paid","bhid":"ev-1"}`, id: "bh-live-2"})
	send(t, m, call{hook: "SendEvent1", body: `{"event":"order.paid","bhid":"ev-1"}`, id: "bh-live-2"}) // a repeat
	brSend(t, m, brReq{name: "nope", body: `{"customer_id":"c-9"}`, id: "br-live-0"})
	brSend(t, m, brReq{name: "sample", body: `{"customer_id":"c-1","email":"ada@example.com"}`, id: "br-live-1"})
	for _, rid := range []string{"bh-live-1", "msg_live_1", "msg_live_2", "bh-live-2", "br-live-0", "br-live-1"} {
		until(t, ctx, rid+" in the list", fmt.Sprintf(`document.querySelector('#rows td.rid[title="%s"]') !== null`, rid))
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.loadedOnce`)); err != nil || n != 42 {
		t.Fatalf("the page reloaded to show new requests (marker %d, %v)", n, err)
	}
	until(t, ctx, "the refusal's verdict", `[...document.querySelectorAll("#rows td.verdict")].some(td => td.textContent.startsWith("Svix retries (401)"))`)
	until(t, ctx, "the stopped campaign", `[...document.querySelectorAll("#rows td.verdict")].some(td => td.textContent === "Bloomreach would stop this campaign (404)")`)
	until(t, ctx, "the dead job's state", `[...document.querySelectorAll("#rows td.delivery")].some(td => td.textContent === "dead")`)
	screenshot(t, ctx, "inspector-list.png", false)

	// The keyboard: j moves down, Enter opens, Esc comes back.
	do(t, ctx, "keyboard", chromedp.KeyEvent("j"), chromedp.KeyEvent("\r"))
	until(t, ctx, "a request opened with Enter", `location.pathname.startsWith("/requests/") && document.getElementById("verdict") !== null`)
	do(t, ctx, "escape", chromedp.KeyEvent("\x1b"))
	until(t, ctx, "back to the list", `location.pathname === "/" && document.getElementById("rows") !== null`)

	// Paused, the list keeps still and counts what arrives; resumed, it
	// shows it.
	do(t, ctx, "pause", chromedp.KeyEvent("p"))
	until(t, ctx, "paused", `document.getElementById("live").textContent.startsWith("paused")`)
	send(t, m, call{hook: "SendEvent1", body: `{"event":"later","bhid":"ev-2"}`, id: "bh-paused"})
	until(t, ctx, "the count while paused", `document.getElementById("pending").textContent.startsWith("1 new while paused")`)
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#rows td.rid[title="bh-paused"]').length`)); n != 0 {
		t.Fatal("a paused list took a new row")
	}
	do(t, ctx, "resume", chromedp.KeyEvent("p"))
	until(t, ctx, "the row after resuming", `document.querySelector('#rows td.rid[title="bh-paused"]') !== null`)

	// Search: "/" focuses the box; the body's text finds its request.
	do(t, ctx, "focus the search", chromedp.KeyEvent("/"))
	until(t, ctx, "the search box focused", `document.activeElement.id === "search"`)
	// (The protocol's key events type the "/" into the box the keydown
	// focused, which a browser's own keyboard does not; start it empty.)
	do(t, ctx, "search", chromedp.Evaluate[chromedp.Void](`document.getElementById("search").value = ""`),
		chromedp.SendKeys(chromedp.ID("search"), "ada@example.com\r"))
	until(t, ctx, "the search's one result", `location.search === "?q=ada%40example.com" && document.querySelectorAll("#rows tr[data-id]").length === 1 && document.querySelector('#rows td.rid[title="br-live-1"]') !== null`)
	do(t, ctx, "clear the search", chromedp.Click(chromedp.CSS(`#filters button[type=button]`)))
	until(t, ctx, "the whole list again", `location.search === "" && document.querySelectorAll("#rows tr[data-id]").length === 8`)

	// Open the Bloomreach request: its contract verdict and auth verdict.
	br := requests(t, m, hooks.RequestFilter{RequestID: "br-live-1"})[0]
	do(t, ctx, "open the Bloomreach request", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#rows tr[data-id="%d"] td.name`, br.ID))),
		chromedp.WaitVisible(chromedp.ID("verdict")))
	if got := text(t, ctx, "#verdict"); got != "Bloomreach: success, counted" {
		t.Fatalf("verdict: got %q", got)
	}
	if got := text(t, ctx, "#auth"); !strings.Contains(got, "accepted") {
		t.Fatalf("auth: got %q", got)
	}
	if got := text(t, ctx, "#body-size"); got != fmt.Sprintf("%d B", len(br.Body)) {
		t.Fatalf("body size: got %q, want %d B", got, len(br.Body))
	}
	if got := text(t, ctx, "#body-content"); !strings.Contains(got, `"email": "ada@example.com"`) {
		t.Fatalf("pretty body: got %q", got)
	}
	do(t, ctx, "raw body", chromedp.Click(chromedp.ID("body-raw")))
	if got := text(t, ctx, "#body-content"); got != string(br.Body) {
		t.Fatalf("raw body: got %q, want %q", got, br.Body)
	}
	if got := text(t, ctx, "#headers"); strings.Contains(got, brPass) || !strings.Contains(got, "[redacted]") {
		t.Fatalf("headers show a secret or no redaction: %q", got)
	}

	// Replay: a new job, and its attempt, on the page.
	do(t, ctx, "replay", chromedp.Click(chromedp.ID("replay")))
	until(t, ctx, "the replay's attempt", `document.querySelectorAll("#jobs .job").length === 2 && document.querySelector("#jobs li.attempt") !== null`)
	screenshot(t, ctx, "inspector-detail.png", true)

	// Copy as curl shows the command, the secret elided.
	do(t, ctx, "copy as curl", chromedp.Click(chromedp.ID("copy-curl")), chromedp.WaitVisible(chromedp.ID("curl")))
	if got := text(t, ctx, "#curl"); !strings.Contains(got, "${HOOKBAY_AUTHORIZATION}") || strings.Contains(got, brPass) {
		t.Fatalf("curl: %q", got)
	}
	do(t, ctx, "close the dialog", chromedp.Click(chromedp.ID("dialog-cancel")))

	// Retry the dead job from the dead letters once the integrator is up.
	dead := jobs(t, m, hooks.JobFilter{State: hooks.JobDead})
	if len(dead) != 1 {
		t.Fatalf("dead jobs: %d, want 1", len(dead))
	}
	d.mu.Lock()
	d.status = http.StatusOK
	d.mu.Unlock()
	do(t, ctx, "dead letters", chromedp.Click(chromedp.CSS(`nav a[data-route="dead"]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#dead-rows tr[data-job="%d"] button`, dead[0].ID))))
	do(t, ctx, "retry", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dead-rows tr[data-job="%d"] button`, dead[0].ID))))
	until(t, ctx, "the dead letters emptied", `document.querySelector("#dead-rows tr[data-job]") === null && document.querySelector("#dead-rows .empty") !== null`)
	waitUntil(t, 10*time.Second, "the retried job delivered", func() bool {
		js := jobs(t, m, hooks.JobFilter{State: hooks.JobDone, Name: "CreateDiscount4"})
		return len(js) == 1 && js[0].ID == dead[0].ID
	})
	// A job that dies while the dead letters are open shows there, without
	// a reload.
	d.mu.Lock()
	d.status = http.StatusInternalServerError
	d.mu.Unlock()
	do(t, ctx, "mark the page", chromedp.Evaluate[chromedp.Void](`window.loadedOnce = 43`))
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"AUTUMN"}`, urgency: "urgent", id: "bh-dies-live"})
	until(t, ctx, "the job that died listed", `document.querySelector("#dead-rows tr[data-job]") !== null`)
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.loadedOnce`)); err != nil || n != 43 {
		t.Fatalf("the page reloaded to show the dead job (marker %d, %v)", n, err)
	}

	// A fault, added and removed.
	do(t, ctx, "faults", chromedp.Click(chromedp.CSS(`nav a[data-route="faults"]`)), chromedp.WaitVisible(chromedp.ID("fault-form")),
		chromedp.SetValue(chromedp.CSS(`#fault-form select[name=sender]`), "svix"),
		chromedp.SendKeys(chromedp.CSS(`#fault-form input[name=value]`), "503"),
		chromedp.Click(chromedp.ID("fault-add")),
		chromedp.WaitVisible(chromedp.CSS(`#fault-rows tr[data-fault] button`)))
	faults, err := m.DB.Faults(context.Background(), time.Now())
	if err != nil || len(faults) != 1 || faults[0].Sender != hooks.SenderSvix || faults[0].Status != 503 {
		t.Fatalf("faults after adding: %+v, %v", faults, err)
	}
	do(t, ctx, "remove the fault", chromedp.Click(chromedp.CSS(`#fault-rows tr[data-fault] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#fault-rows .empty`)))
	if faults, err := m.DB.Faults(context.Background(), time.Now()); err != nil || len(faults) != 0 {
		t.Fatalf("faults after removing: %+v, %v", faults, err)
	}

	// The sender report renders.
	do(t, ctx, "report", chromedp.Click(chromedp.CSS(`nav a[data-route="report"]`)))
	until(t, ctx, "the report", `document.querySelector("#report .card") !== null`)
}
