package tollgate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// 2027-02-01T12:00:00Z: every reservation of these tests is in one period.
var feb = time.Unix(1_801_483_200, 0)

func quotaEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := FromFile("testdata/quota.toml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestReserveCommitRefund(t *testing.T) {
	e := quotaEngine(t)
	r, err := e.Reserve("key-alice", 4, feb)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status.Outcome != QuotaWithin || r.Status.Used != 4 || r.Status.Limit != 1000 {
		t.Fatalf("status %+v", r.Status)
	}
	if r.Status.ResetsAt != time.Unix(1_803_859_200, 0) { // 2027-03-01T00:00:00Z
		t.Fatalf("resets at %v", r.Status.ResetsAt.UTC())
	}
	// A cost above the bound is refused before anything is settled: still usable.
	if _, err := r.Commit(MaxCommitCost+1, "req-1"); !errors.Is(err, ResultInvalidArgument) {
		t.Fatalf("commit above the bound: %v", err)
	}
	if dup, err := r.Commit(2, "req-1"); err != nil || dup {
		t.Fatalf("commit: %v %v", dup, err)
	}
	if _, err := r.Commit(2, "req-1"); !errors.Is(err, ErrSettled) {
		t.Fatalf("second commit: %v", err)
	}
	if err := r.Refund(); !errors.Is(err, ErrSettled) {
		t.Fatalf("refund after commit: %v", err)
	}
	// The same idempotency key again: counted once.
	r, _ = e.Reserve("key-alice", 4, feb)
	if r.Status.Used != 2+4 {
		t.Fatalf("used %d", r.Status.Used)
	}
	if dup, err := r.Commit(4, "req-1"); err != nil || !dup {
		t.Fatalf("duplicate commit: %v %v", dup, err)
	}
	// A refund counts nothing.
	r, _ = e.Reserve("key-alice", 3, feb)
	if err := r.Refund(); err != nil {
		t.Fatal(err)
	}
	r, _ = e.Reserve("key-alice", 0, feb)
	if r.Status.Used != 2 {
		t.Fatalf("used after refund %d, want 2", r.Status.Used)
	}
	r.Refund()

	// Errors carry their result code and never the key.
	for _, c := range []struct {
		key  string
		want Result
	}{{"key-nobody-secret", ResultUnknownKey}, {"key-bob", ResultDisabledUser}} {
		_, err := e.Reserve(c.key, 1, feb)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.key, err, c.want.Name())
		}
		if strings.Contains(err.Error(), "nobody-secret") {
			t.Fatalf("the key in an error: %v", err)
		}
	}
	plain := engine(t)
	if _, err := plain.Reserve("key-alice", 1, feb); !errors.Is(err, ResultNoQuota) {
		t.Fatalf("no quota: %v", err)
	}
	// A reservation outlives its engine.
	r, _ = e.Reserve("key-alice", 1, feb)
	e.Close()
	if _, err := e.Reserve("key-alice", 1, feb); !errors.Is(err, ErrClosed) {
		t.Fatalf("reserve on a closed engine: %v", err)
	}
	if _, err := r.Commit(1, "after-close"); err != nil {
		t.Fatal(err)
	}
}

// Many goroutines reserve and settle on one engine: the usage is exactly what was
// committed, retried commits count once, and past the hard cap reservations are refused.
func TestConcurrentReservationsHaveExactTotals(t *testing.T) {
	e := quotaEngine(t)
	const goroutines, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := e.Reserve("key-alice", 2, feb)
				if err != nil {
					errs <- err
					return
				}
				id := fmt.Sprintf("req-%d-%d", g, i)
				switch i % 4 {
				case 0: // billed at 1, the retry of the commit counts nothing
					if _, err = r.Commit(1, id); err == nil {
						r2, _ := e.Reserve("key-alice", 1, feb)
						var dup bool
						dup, err = r2.Commit(1, id)
						if err == nil && !dup {
							err = fmt.Errorf("%s: retried commit counted", id)
						}
					}
				case 1: // failed call: refunded
					err = r.Refund()
				default: // billed at what was reserved
					_, err = r.Commit(2, id)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Per goroutine and 4 calls: 1 + 0 + 2 + 2 = 5.
	want := uint64(goroutines * each / 4 * 5)
	r, err := e.Reserve("key-alice", 0, feb)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status.Used != want {
		t.Fatalf("used %d, want %d", r.Status.Used, want)
	}
	r.Refund()
	// 800 used; the hard cap is 1500: a reservation of 701 is refused and holds nothing.
	r, _ = e.Reserve("key-alice", 701, feb)
	if r.Status.Outcome != QuotaRefused || r.Status.Used != want {
		t.Fatalf("past the hard cap: %+v", r.Status)
	}
	r.Refund()
}

func TestWarningsAndMetricsAreAdminReadable(t *testing.T) {
	e := quotaEngine(t)
	if w, err := e.Warnings(); err != nil || w != "" {
		t.Fatalf("warnings of a clean policy: %q %v", w, err)
	}
	// A deprecated spelling: the reload's warnings say where and what to write.
	policy, err := os.ReadFile("testdata/quota.toml")
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(policy), `rate = "100000/s"`, `per_second = 100000`, 1)
	if _, err := e.ReloadTOML(old); err != nil {
		t.Fatal(err)
	}
	w, err := e.Warnings()
	if err != nil || !strings.Contains(w, "per_second") || !strings.Contains(w, `rate = "100000/s"`) {
		t.Fatalf("warnings after the reload: %q %v", w, err)
	}
	r, _ := e.Reserve("key-alice", 3, feb)
	r.Commit(3, "m-1")
	m, err := e.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range []string{"# TYPE tollgate_limit_decisions_total counter"} {
		if !strings.Contains(m, family) {
			t.Fatalf("metrics lack %q:\n%s", family, m)
		}
	}
	if strings.Contains(m, "key-alice") {
		t.Fatal("an API key in the metrics")
	}
}
