package cli

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// "hookbay report" reads what senders did from the records: a request ID
// delivered twice after a 2xx is a finding; notes are counted per sender.
func TestReportCommand(t *testing.T) {
	m := MustRunMain(t, nil)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"R"}`, urgency: "urgent", id: "twice"})
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"R"}`, urgency: "urgent", id: "twice"})
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"R"}`, id: "no-urgency"})
	junit := filepath.Join(t.TempDir(), "report.xml")
	// Findings make the exit status 1; the report is printed all the same.
	out, err := runCLI(t, "report", "--data", m.Config.Server.DataDir, "--json", "--junit", junit)
	if exitStatus(t, err) != 1 || !strings.Contains(err.Error(), "1 request ID(s) with findings") {
		t.Fatalf("report --json: err=%v, want exit status 1 naming the findings", err)
	}
	var b struct {
		Requests []struct {
			RequestID string   `json:"request_id"`
			Findings  []string `json:"findings"`
		} `json:"requests"`
		Senders map[string]struct {
			Notes map[string]int `json:"notes"`
		} `json:"senders"`
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("report --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range b.Requests {
		if r.RequestID == "twice" {
			found = len(r.Findings) > 0 && strings.Contains(strings.Join(r.Findings, ";"), "after a 202")
		}
	}
	if !found {
		t.Fatalf("no finding for the request delivered after a 202: %s", out)
	}
	if b.Senders["bubblehouse"].Notes["X-BH-Urgency missing"] != 1 {
		t.Fatalf("notes: %v", b.Senders["bubblehouse"].Notes)
	}
	raw, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Name     string `xml:"name,attr"`
		Failures int    `xml:"failures,attr"`
		Tests    int    `xml:"tests,attr"`
		Cases    []struct {
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Text string `xml:",chardata"`
			} `xml:"failure"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(raw, &suite); err != nil || suite.Failures != 1 || suite.Tests != 2 || suite.Name != "hookbay report all" {
		t.Fatalf("junit: %+v %v\n%s", suite, err, raw)
	}
	for _, c := range suite.Cases {
		if c.Classname != "report.all" || (c.Failure != nil && !strings.Contains(c.Failure.Text, "after a 202")) {
			t.Fatalf("junit case %+v: want class report.all, failures with their finding\n%s", c, raw)
		}
	}
	table, err := runCLI(t, "report", "--data", m.Config.Server.DataDir)
	if exitStatus(t, err) != 1 || !strings.Contains(table, "twice") || !strings.Contains(table, "! attempt 2 came after a 202") {
		t.Fatalf("err=%v, table:\n%s", err, table)
	}
	citesByTitle(t, out, string(raw), table)
	// Without findings (only the request delivered once), exit status 0.
	if out, err := runCLI(t, "report", "--data", m.Config.Server.DataDir, "--since", "1h", "--sender", "svix"); err != nil {
		t.Fatalf("report of a sender with no findings: %v\n%s", err, out)
	}
}

// The report's JUnit cites each sender's documented retry schedule by the
// title of its public documentation, not by a file.
func TestReportCommand_CitesByTitle(t *testing.T) {
	m, _ := qaSvixMain(t)
	for range 2 { // a redelivery after a 200: a finding, with its schedule
		if a := sendSvix(t, m, "bloom", signed{id: "msg_twice", body: `{"type":"user.created"}`}); a.status != 200 {
			t.Fatalf("svix: %d %s", a.status, a.body)
		}
	}
	junit := filepath.Join(t.TempDir(), "report.xml")
	out, err := runCLI(t, "report", "--data", m.Config.Server.DataDir, "--junit", junit)
	if exitStatus(t, err) != 1 || !strings.Contains(out, "msg_twice") {
		t.Fatalf("report: err=%v\n%s", err, out)
	}
	xml := readFile(t, junit)
	if !strings.Contains(xml, "Retries") {
		t.Fatalf("junit does not cite the Svix retry schedule:\n%s", xml)
	}
	citesByTitle(t, out, xml)
}
