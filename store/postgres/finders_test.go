package postgres_test

import (
	"fmt"
	"testing"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
)

// TestDB_FindRequests_SearchWindow: a search reads at most the window of
// records below its start, as on SQLite; the next window, from start -
// window, finds the older matches.
func TestDB_FindRequests_SearchWindow(t *testing.T) {
	defer postgres.SetSearchWindow(3)()
	db := openDB(t)
	useClock(db)
	var id []int64
	for i := range 8 {
		r := newReceipt(t0, fmt.Sprintf("w-%d", i), `{}`)
		if i == 0 || i == 6 {
			r.Request.Body = []byte(`{"needle":true}`)
		}
		mustCommit(t, db, r)
		id = append(id, r.Request.ID)
	}
	if got, want := db.SearchWindow(), int64(3); got != want {
		t.Fatalf("SearchWindow: got %d, want %d", got, want)
	}
	for _, tt := range []struct {
		before int64
		want   string
	}{
		{0, fmt.Sprint([]int64{id[6]})},     // the newest three
		{id[5], fmt.Sprint([]int64{})},      // id[2..4]
		{id[2], fmt.Sprint([]int64{id[0]})}, // id[0..1]
	} {
		got := []int64{}
		for _, r := range mustFindRequests(t, db, hooks.RequestFilter{Search: "needle", BeforeID: tt.before, Limit: 10}) {
			got = append(got, r.ID)
		}
		if fmt.Sprint(got) != tt.want {
			t.Errorf("before %d: got %v, want %s", tt.before, got, tt.want)
		}
	}
}
