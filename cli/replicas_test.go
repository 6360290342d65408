package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// countingDownstream is the integrator's code behind every replica: it
// counts the deliveries of each request ID (Idempotency-Key), each taking
// delay.
type countingDownstream struct {
	*httptest.Server
	mu    sync.Mutex
	count map[string]int
	delay atomic.Int64 // nanoseconds
}

func newCountingDownstream(t *testing.T) *countingDownstream {
	d := &countingDownstream{count: map[string]int{}}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(time.Duration(d.delay.Load()))
		d.mu.Lock()
		d.count[r.Header.Get("Idempotency-Key")]++
		d.mu.Unlock()
		io.WriteString(w, `{}`)
	}))
	t.Cleanup(d.Close)
	return d
}

// delivered is how often id was delivered.
func (d *countingDownstream) delivered(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count[id]
}

// undelivered counts the ids not delivered yet.
func (d *countingDownstream) undelivered(ids []string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, id := range ids {
		if d.count[id] == 0 {
			n++
		}
	}
	return n
}

// replicas is hookbay processes sharing one PostgreSQL database, each with
// its own data directory, port and config file.
type replicas struct {
	procs []*hookbayProcess
	cfgs  []string
}

// startReplicas starts n hookbay processes of bin on the database at url,
// forwarding CreateDiscount4 (Bubblehouse) and webhook sms (Bloomreach) to
// down.
func startReplicas(t *testing.T, bin, url, down string, n int) *replicas {
	t.Helper()
	r := &replicas{}
	for range n {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "hookbay.yaml")
		yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0", data_dir: %q, tls: {mode: "off"}}
admin: {listen: "127.0.0.1:0"}
log: {requests: false}
queue: {workers: 4, lease: 2s}
store: {postgres: {url: %q}}
bubblehouse:
  authorization: "Bearer crash-test"
  hooks:
    CreateDiscount4:
      action: {forward: {url: %q, timeout: 1s}}
bloomreach:
  webhooks:
    sms:
      auth: {basic: {username: %q, password: %q}}
      action: {forward: {url: %q, timeout: 1s}}
`, filepath.Join(dir, "data"), url, down, brUser, brPass, down)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cfgs = append(r.cfgs, cfg)
		r.procs = append(r.procs, startBinary(t, bin, "serve", "--config", cfg))
	}
	return r
}

// postStatus sends one urgent CreateDiscount4 to addr and returns the
// status and body; status 0 when there was no answer.
func postStatus(client *http.Client, addr, id string) (int, []byte) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/bubblehouse/CreateDiscount4", strings.NewReader(`{"code":"`+id+`"}`))
	req.Header.Set("Authorization", "Bearer crash-test")
	req.Header.Set("X-BH-Urgency", "urgent")
	req.Header.Set("X-Request-ID", id)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// ready returns /readyz's status on addr, 0 when there was no answer.
func ready(client *http.Client, addr string) int {
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

var replicaClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// Several hookbay processes on one PostgreSQL database behave as one
// hookbay: load sent to any of them is delivered once; 200 concurrent
// repeats of one request split across them execute once and all get the
// first answer; when one is killed, the others deliver everything it had
// acknowledged; a fault added through the CLI applies on all within a
// second; a PostgreSQL restart costs no acknowledged hook, and service
// resumes by itself.
func TestReplicas_Postgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs several processes")
	}
	pgtest.DatabaseURL(t) // skips naming the variable when it is unset
	bin := buildBinary(t)

	t.Run("SpreadAndDuplicates", func(t *testing.T) {
		schema := pgtest.New(t)
		d := newCountingDownstream(t)
		r := startReplicas(t, bin, schema.URL(), d.URL, 3)

		// Load spread across the replicas: each hook delivered exactly
		// once, whichever replica's workers take it.
		var ids []string
		var wg sync.WaitGroup
		var failed atomic.Int64
		var mu sync.Mutex
		for c := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					id := fmt.Sprintf("spread-%d-%d", c, i)
					if status, body := postStatus(replicaClient, r.procs[(c+i)%3].addr, id); status != http.StatusAccepted {
						failed.Add(1)
						t.Errorf("%s: answered %d %s, want 202", id, status, body)
						continue
					}
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.FailNow()
		}
		waitUntil(t, 30*time.Second, "300 hooks delivered", func() bool { return d.undelivered(ids) == 0 })
		time.Sleep(time.Second)
		for _, id := range ids {
			if n := d.delivered(id); n != 1 {
				t.Errorf("%s delivered %d times without a crash, want 1", id, n)
			}
		}

		// 200 concurrent repeats of one request, split across replicas.
		const repeats = 200
		start := make(chan struct{})
		statuses := make([]int, repeats)
		bodies := make([][]byte, repeats)
		for i := range repeats {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[i], bodies[i] = postStatus(replicaClient, r.procs[i%3].addr, "dup-1")
			}()
		}
		close(start)
		wg.Wait()
		for i := range repeats {
			if statuses[i] != http.StatusAccepted || !bytes.Equal(bodies[i], bodies[0]) {
				t.Fatalf("repeat %d (replica %d): answered %d %s; want 202 and the first answer %s", i, i%3, statuses[i], bodies[i], bodies[0])
			}
		}
		waitUntil(t, 10*time.Second, "the repeated hook delivered", func() bool { return d.delivered("dup-1") > 0 })
		time.Sleep(time.Second)
		if n := d.delivered("dup-1"); n != 1 {
			t.Fatalf("dup-1 executed %d times for %d concurrent repeats across 3 replicas, want once", n, repeats)
		}
		db := schema.Open(t)
		recs, err := db.FindRequests(context.Background(), hooks.RequestFilter{RequestID: "dup-1", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		originals := 0
		for _, rec := range recs {
			if rec.DuplicateOf == 0 {
				originals++
			}
		}
		if len(recs) != repeats || originals != 1 {
			t.Fatalf("records of dup-1: %d, %d of them originals; want %d, one original", len(recs), originals, repeats)
		}
	})

	t.Run("SIGKILL", func(t *testing.T) {
		schema := pgtest.New(t)
		d := newCountingDownstream(t)
		d.delay.Store(int64(50 * time.Millisecond)) // deliveries are slower than acknowledgements
		r := startReplicas(t, bin, schema.URL(), d.URL, 3)
		var acked []string
		var amu sync.Mutex
		ackedNow := func() []string { amu.Lock(); defer amu.Unlock(); return append([]string(nil), acked...) }
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("kill-%d-%d", c, i)
					if status, _ := postStatus(replicaClient, r.procs[(c+i)%3].addr, id); status == http.StatusAccepted {
						amu.Lock()
						acked = append(acked, id)
						amu.Unlock()
					}
				}
			}()
		}
		waitUntil(t, 20*time.Second, "acknowledged hooks with some not yet delivered", func() bool {
			ids := ackedNow()
			return len(ids) >= 90 && d.undelivered(ids) >= 30
		})
		r.procs[0].cmd.Process.Kill()
		r.procs[0].cmd.Wait()
		time.Sleep(500 * time.Millisecond) // the survivors keep taking hooks
		close(stop)
		wg.Wait()
		ids := ackedNow()
		left := d.undelivered(ids)
		t.Logf("%d acknowledged, %d not yet delivered when replica 0 was killed", len(ids), left)
		d.delay.Store(0)
		waitUntil(t, 60*time.Second, "every acknowledged hook delivered by the survivors", func() bool { return d.undelivered(ids) == 0 })
		// The killed replica's running jobs are taken back once their
		// lease ends (the rescue records the interrupted attempt), by the
		// replica leading the maintenance, which may be a survivor that
		// takes the lead over once the killed one's has run out; then
		// every job is done.
		conn := schema.Conn(t)
		count := func(q string) int {
			var n int
			if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		waitUntil(t, leadTTL+30*time.Second, "every job done", func() bool {
			return count(`SELECT count(*) FROM jobs WHERE state <> 'done'`) == 0
		})
		interrupted := count(`SELECT count(*) FROM job_attempts WHERE outcome = 'interrupted'`)
		if interrupted == 0 {
			t.Fatal("no attempt was interrupted: the killed replica held no running job, so the test proves no rescue")
		}
		twice := 0
		for _, id := range ids {
			if d.delivered(id) > 1 {
				twice++
			}
		}
		t.Logf("%d attempts interrupted by the kill and rescued; %d hooks delivered more than once (allowed after a crash)", interrupted, twice)
	})

	t.Run("FaultFromCLI", func(t *testing.T) {
		schema := pgtest.New(t)
		d := newCountingDownstream(t)
		r := startReplicas(t, bin, schema.URL(), d.URL, 3)
		// answers waits until every replica answers a probe with status,
		// and returns how long the slowest took.
		probe := 0
		answers := func(status int) time.Duration {
			t.Helper()
			start := time.Now()
			var slowest time.Duration
			for i, p := range r.procs {
				for {
					probe++
					got, body := postStatus(replicaClient, p.addr, fmt.Sprintf("probe-%d", probe))
					if got == status {
						break
					}
					if time.Since(start) > 5*time.Second {
						t.Fatalf("replica %d still answers %d %s, want %d", i, got, body, status)
					}
					time.Sleep(20 * time.Millisecond)
				}
				slowest = max(slowest, time.Since(start))
			}
			return slowest
		}
		var out bytes.Buffer
		if err := Run(context.Background(), []string{"faults", "add", "--config", r.cfgs[0], "--sender", "bubblehouse",
			"--name", "CreateDiscount4", "--status", "503"}, &out, &out); err != nil {
			t.Fatalf("faults add: %v\n%s", err, &out)
		}
		if took := answers(http.StatusServiceUnavailable); took > time.Second {
			t.Errorf("the fault took %v to apply on every replica, want within a second", took)
		}
		if err := Run(context.Background(), []string{"faults", "clear", "--all", "--config", r.cfgs[2]}, &out, &out); err != nil {
			t.Fatalf("faults clear: %v\n%s", err, &out)
		}
		if took := answers(http.StatusAccepted); took > time.Second {
			t.Errorf("clearing the fault took %v to apply on every replica, want within a second", took)
		}
	})

	t.Run("PostgresRestart", func(t *testing.T) {
		pg := startPrivatePostgres(t)
		d := newCountingDownstream(t)
		r := startReplicas(t, bin, pg.url, d.URL, 2)
		var acked []string
		var amu sync.Mutex
		statuses := map[string]map[int]int{"bubblehouse": {}, "bloomreach": {}}
		note := func(sender string, status int) { amu.Lock(); statuses[sender][status]++; amu.Unlock() }
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("restart-%d-%d", c, i)
					addr := r.procs[(c+i)%2].addr
					status, _ := postStatus(replicaClient, addr, id)
					note("bubblehouse", status)
					if status/100 == 2 {
						amu.Lock()
						acked = append(acked, id)
						amu.Unlock()
					}
					if c == 0 { // and a Bloomreach request now and then
						a, err := brDo(replicaClient, "http://"+addr, brReq{name: "sms", body: `{"phone":"+15550100","text":"x"}`, id: "br-" + id})
						if err == nil {
							note("bloomreach", a.status)
							if a.status/100 == 2 {
								amu.Lock()
								acked = append(acked, "br-"+id)
								amu.Unlock()
							}
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		time.Sleep(time.Second)
		pg.ctl(t, "stop", "-m", "fast")
		waitUntil(t, 10*time.Second, "/readyz to say not ready on every replica", func() bool {
			return ready(replicaClient, r.procs[0].addr) == http.StatusServiceUnavailable &&
				ready(replicaClient, r.procs[1].addr) == http.StatusServiceUnavailable
		})
		time.Sleep(2 * time.Second)
		pg.ctl(t, "start", "-w", "-o", pg.options)
		waitUntil(t, 30*time.Second, "/readyz ready again on every replica", func() bool {
			return ready(replicaClient, r.procs[0].addr) == http.StatusOK && ready(replicaClient, r.procs[1].addr) == http.StatusOK
		})
		for i, p := range r.procs {
			waitUntil(t, 30*time.Second, fmt.Sprintf("replica %d to accept hooks again", i), func() bool {
				status, _ := postStatus(replicaClient, p.addr, fmt.Sprintf("after-%d-%d", i, time.Now().UnixNano()))
				return status == http.StatusAccepted
			})
		}
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		amu.Lock()
		t.Logf("answers by sender and status across the restart: %v", statuses)
		var refused int
		for sender, byStatus := range statuses {
			for status, n := range byStatus {
				switch {
				case status/100 == 2:
				case status == http.StatusServiceUnavailable || (sender == "bloomreach" && status == http.StatusTooManyRequests):
					refused += n
				case status == 0:
					// no answer: the client retries, as a sender does
				default:
					t.Errorf("%s got %d %d times while PostgreSQL restarted, want 2xx or a status it retries (503)", sender, status, n)
				}
			}
		}
		amu.Unlock()
		if refused == 0 {
			t.Fatal("no request was refused while PostgreSQL was down: the test proves nothing")
		}
		// No 2xx lost: every request acknowledged is delivered.
		waitUntil(t, 30*time.Second, "every acknowledged request delivered", func() bool { return d.undelivered(acked) == 0 })
		t.Logf("%d hooks acknowledged across the restart, all delivered", len(acked))
	})
}

// privatePostgres is a PostgreSQL server of one test's own, so that
// stopping it disturbs no other test sharing the machine's cluster.
type privatePostgres struct {
	dir, bin, url, options string
}

// startPrivatePostgres initializes and starts a PostgreSQL server in a
// temporary directory, run as the postgres user, or skips the test when
// that cannot be done (not root, or no PostgreSQL server binaries), and
// fails it when HOOKBAY_REQUIRE_SERVICES=1.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	if os.Geteuid() != 0 {
		pgtest.Unavailable(t, "restarting PostgreSQL needs a server of the test's own, run as the postgres user: run the tests as root")
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		pgtest.Unavailable(t, "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
	}
	sort.Strings(bins)
	if _, err := exec.LookPath("runuser"); err != nil {
		pgtest.Unavailable(t, "runuser not found: it runs the test's PostgreSQL server as the postgres user")
	}
	dir, err := os.MkdirTemp("", "hookbay-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		pgtest.Unavailable(t, "chown %s to postgres: %v %s", dir, err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pg := &privatePostgres{dir: dir, bin: filepath.Dir(bins[len(bins)-1])}
	pg.options = fmt.Sprintf("-p %d -k %s -c listen_addresses='' -c fsync=off -c max_connections=200", port, dir)
	pg.url = fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", dir, port)
	pg.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync")
	pg.ctl(t, "start", "-w", "-o", pg.options)
	t.Cleanup(func() {
		exec.Command("runuser", "-u", "postgres", "--", filepath.Join(pg.bin, "pg_ctl"), "-D", filepath.Join(dir, "data"),
			"stop", "-m", "immediate").Run()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.url)
	if err != nil {
		t.Fatalf("connect to the test's PostgreSQL: %v", err)
	}
	conn.Close(ctx)
	return pg
}

// run runs a PostgreSQL program as the postgres user.
func (pg *privatePostgres) run(t *testing.T, prog string, args ...string) {
	t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pg.bin, prog)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", prog, args, err, out)
	}
}

// ctl runs pg_ctl on the server's data directory.
func (pg *privatePostgres) ctl(t *testing.T, args ...string) {
	t.Helper()
	pg.run(t, "pg_ctl", append([]string{"-D", filepath.Join(pg.dir, "data"), "-l", filepath.Join(pg.dir, "log")}, args...)...)
}
