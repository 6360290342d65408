package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

// ReportCommand is "hookbay report": how each sender behaved, from the
// recorded requests.
type ReportCommand struct {
	Stdout, Stderr io.Writer
}

// Run prints the report.
func (cmd *ReportCommand) Run(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("report", "[flags]", `How each sender behaved, from the recorded requests: per sender, the statuses
answered and the notes recorded; per request ID, every delivery, the gaps
between them, and findings where the sender departed from its documented
retry behaviour (a retry after a settled answer, too early, too many).

Exit status: 0 when there are no findings, 1 when there are, 2 when the
report could not be made.`)
	sender := fs.String("sender", "", "only this sender: "+sendersText)
	since := fs.String("since", "24h", "since this time (RFC 3339) or this long ago")
	junit := fs.String("junit", "", "also write JUnit XML here: one test case per request ID")
	limit := fs.Int("limit", 100000, "read at most this many records")
	if err := parseOnlyFlags(fs, args, cmd.Stdout, cmd.Stderr); err != nil {
		return err
	}
	s, err := parseSender(*sender)
	if err != nil {
		return err
	}
	t, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	db, err := sf.open()
	if err != nil {
		return err
	}
	defer db.Close()
	reqs, err := db.FindRequests(ctx, hooks.RequestFilter{Sender: s, Since: t, Limit: *limit})
	if err != nil {
		return err
	}
	b := qa.Analyse(reqs, t)
	if *junit != "" {
		if err := b.ToReport().WriteJUnit(*junit); err != nil {
			return err
		}
	}
	if *sf.json {
		if err := printJSON(cmd.Stdout, b); err != nil {
			return err
		}
		return reportVerdict(b)
	}
	w := cmd.Stdout
	senders := make([]string, 0, len(b.Senders))
	for s := range b.Senders {
		senders = append(senders, string(s))
	}
	sort.Strings(senders)
	for _, s := range senders {
		sum := b.Senders[hooks.Sender(s)]
		fmt.Fprintf(w, "%s: %d requests, %d request IDs, %d with findings\n", s, sum.Requests, sum.RequestIDs, sum.Violations)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, st := range sortedKeys(sum.Statuses) {
			fmt.Fprintf(tw, "  status %d\t%d\n", st, sum.Statuses[st])
		}
		notes := make([]string, 0, len(sum.Notes))
		for n := range sum.Notes {
			notes = append(notes, n)
		}
		sort.Strings(notes)
		for _, n := range notes {
			fmt.Fprintf(tw, "  note: %s\t%d\n", n, sum.Notes[n])
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, rb := range b.Requests {
		if len(rb.Attempts) < 2 && len(rb.Findings) == 0 {
			continue // delivered once, nothing to say
		}
		fmt.Fprintf(w, "%s %s (%s): %d attempts\n", rb.Sender, rb.RequestID, rb.Name, len(rb.Attempts))
		for i, a := range rb.Attempts {
			gap := ""
			if i > 0 {
				gap = fmt.Sprintf(" (+%s)", a.Gap.Round(time.Millisecond))
			}
			fmt.Fprintf(w, "  %d. %s%s -> %d (event %d)\n", i+1, a.At.Format(time.RFC3339Nano), gap, a.Status, a.Event)
		}
		for _, f := range rb.Findings {
			fmt.Fprintf(w, "  ! %s\n", f)
		}
	}
	return reportVerdict(b)
}

// reportVerdict is the report's exit status: a negativeError (1) when a
// request ID has findings.
func reportVerdict(b *qa.Behaviour) error {
	n := 0
	for _, rb := range b.Requests {
		if len(rb.Findings) > 0 {
			n++
		}
	}
	if n > 0 {
		return answerNo("report: %d request ID(s) with findings", n)
	}
	return nil
}

func sortedKeys(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
