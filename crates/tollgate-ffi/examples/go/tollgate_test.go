package tollgate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A fixed time for every decision: no refill during a test, so totals are exact.
var t0 = time.Unix(1_800_000_000, 0)

func engine(t *testing.T) *Engine {
	t.Helper()
	e, err := FromFile("testdata/policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestVersions(t *testing.T) {
	if ABIVersion() != HeaderABIVersion {
		t.Fatalf("library ABI %d, header %d", ABIVersion(), HeaderABIVersion)
	}
	if Version() == "" {
		t.Fatal("empty version")
	}
}

func TestDecideHeadersAndExactTotalsOfOneToken(t *testing.T) {
	e := engine(t)
	allowed := 0
	var last Decision
	for i := 0; i < 30; i++ {
		d, err := e.Decide(&Request{Token: "tok-w", Method: "POST", Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
		last = d
	}
	// 100 per hour, writes cost 4: 25 pass.
	if allowed != 25 {
		t.Fatalf("%d writes allowed, the policy allows 25", allowed)
	}
	if last.Reason != ReasonLimited || last.DecidedBy != 0 || last.Limit != 100 || last.Remaining != 0 {
		t.Fatalf("refusal: %+v", last)
	}
	// 4 units at 100/h come back in 144 s.
	if last.RetryAfter != 144*time.Second || last.RetryNever {
		t.Fatalf("retry after %v (never: %v)", last.RetryAfter, last.RetryNever)
	}
	h, err := e.Headers(&last)
	if err != nil {
		t.Fatal(err)
	}
	if h.Policy != `"per-token";q=100;w=3600` || h.RateLimit != `"per-token";r=0;t=144` || h.RetryAfter != "144" {
		t.Fatalf("headers: %+v", h)
	}
	// An explicit cost; an attribute without a name.
	d, err := e.Decide(&Request{Token: "tok-c", Cost: 60, Now: t0})
	if err != nil || !d.Allowed || d.Remaining != 40 {
		t.Fatalf("explicit cost: %+v, %v", d, err)
	}
	_, err = e.Decide(&Request{Token: "tok-c", Attrs: []Attr{{"", "eu"}}, Now: t0})
	var te *Error
	if !errors.As(err, &te) || te.Code != ResultInvalidArgument || !errors.Is(err, ResultInvalidArgument) {
		t.Fatalf("attribute without a name: %v", err)
	}
	if te.Message != ResultInvalidArgument.Error() {
		t.Fatalf("message %q", te.Message)
	}
	_, err = e.Decide(&Request{Token: "\xff", Now: t0})
	if !errors.Is(err, ResultInvalidUTF8) {
		t.Fatalf("not UTF-8: %v", err)
	}
}

// 16 goroutines x 500 decisions on one engine, four tokens (two read, two write) of
// 100 units each at one instant: exactly 100 + 100 + 25 + 25 pass, whatever the
// interleaving.
func TestManyGoroutinesShareOneEngine(t *testing.T) {
	e := engine(t)
	const goroutines, each = 16, 500
	var allowed [4]int64
	var limited int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			tok := g % 4
			method := "GET"
			if tok >= 2 {
				method = "PUT"
			}
			r := Request{Token: fmt.Sprintf("tok-%d", tok), Method: method, Client: "10.0.0.1", Now: t0}
			for i := 0; i < each; i++ {
				d, err := e.Decide(&r)
				if err != nil {
					errs <- err
					return
				}
				switch {
				case d.Allowed:
					atomic.AddInt64(&allowed[tok], 1)
				case d.Reason == ReasonLimited:
					atomic.AddInt64(&limited, 1)
				default:
					errs <- fmt.Errorf("refused for %v", d.Reason)
					return
				}
				if i%100 == 0 {
					// The other calls, meanwhile.
					if _, err := e.Metrics(); err != nil {
						errs <- err
						return
					}
					if _, _, err := e.NextEvent(); err != nil {
						errs <- err
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if allowed != [4]int64{100, 100, 25, 25} {
		t.Fatalf("allowed per token %v, the policy allows [100 100 25 25]", allowed)
	}
	if limited != goroutines*each-250 {
		t.Fatalf("%d limited, want %d", limited, goroutines*each-250)
	}
	m, err := e.Metrics()
	if err != nil || !strings.Contains(m, "per-token") || !strings.Contains(m, "# TYPE") {
		t.Fatalf("metrics: %v\n%s", err, m)
	}
}

func TestRevokeRestoreAndEvents(t *testing.T) {
	e := engine(t)
	if _, ok, err := e.NextEvent(); ok || err != nil {
		t.Fatalf("an event before any: %v %v", ok, err)
	}
	changed, err := e.Revoke("tok-bad")
	if err != nil || !changed {
		t.Fatalf("revoke: %v %v", changed, err)
	}
	if again, _ := e.Revoke("tok-bad"); again {
		t.Fatal("revoked twice")
	}
	if yes, err := e.IsRevoked("tok-bad"); err != nil || !yes {
		t.Fatalf("is revoked: %v %v", yes, err)
	}
	d, err := e.Decide(&Request{Token: "tok-bad", Now: t0})
	if err != nil || d.Allowed || d.Reason != ReasonRevoked || !d.RetryNever {
		t.Fatalf("revoked decision: %+v %v", d, err)
	}
	if Status(d.Reason) != 403 {
		t.Fatalf("status %d", Status(d.Reason))
	}
	ev, ok, err := e.NextEvent()
	if err != nil || !ok || ev.Kind != "revoked" || strings.Contains(string(ev.JSON), "tok-bad") {
		t.Fatalf("event %+v %v %v (the token must not appear)", ev, ok, err)
	}
	if changed, err := e.Restore("tok-bad"); err != nil || !changed {
		t.Fatalf("restore: %v %v", changed, err)
	}
	ev, ok, _ = e.NextEvent()
	if !ok || ev.Kind != "restored" {
		t.Fatalf("event %+v", ev)
	}
	if d, _ := e.Decide(&Request{Token: "tok-bad", Now: t0}); !d.Allowed {
		t.Fatalf("restored token refused: %+v", d)
	}
	if _, err := e.Revoke("\xff"); !errors.Is(err, ResultInvalidUTF8) {
		t.Fatalf("revoke of bytes: %v", err)
	}
}

func TestReload(t *testing.T) {
	e := engine(t)
	policy, err := os.ReadFile("testdata/policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	raised := strings.Replace(string(policy), `rate = "100/h"`, `rate = "200/h"`, 1)
	rep, err := e.ReloadTOML(raised)
	if err != nil || rep != (ReloadReport{Carried: 1}) {
		t.Fatalf("reload: %+v %v", rep, err)
	}
	if d, _ := e.Decide(&Request{Token: "t", Now: t0}); d.Limit != 200 || d.Generation != 2 {
		t.Fatalf("after reload: %+v", d)
	}
	bad := strings.Replace(string(policy), `rate = "100/h"`, `rate = "fast"`, 1)
	_, err = e.ReloadTOML(bad)
	var te *Error
	if !errors.As(err, &te) || te.Code != ResultPolicy || !strings.Contains(te.Message, "rate") {
		t.Fatalf("bad reload: %v", err)
	}
	if d, _ := e.Decide(&Request{Token: "t", Now: t0}); d.Limit != 200 {
		t.Fatalf("a bad reload changed the policy: %+v", d)
	}
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.ReloadFile(path); err != nil || rep != (ReloadReport{Carried: 1}) {
		t.Fatalf("reload file: %+v %v", rep, err)
	}
	_, err = e.ReloadFile("/nonexistent/tollgate.toml")
	if !errors.As(err, &te) || !strings.Contains(te.Message, "/nonexistent/tollgate.toml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestCloseIsSafe(t *testing.T) {
	e, err := FromFile("testdata/policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := e.Decide(&Request{Token: "x", Now: t0}); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
			}
		}()
	}
	e.Close() // while the goroutines decide: they finish their call, then see ErrClosed
	wg.Wait()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decide(&Request{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := e.Metrics(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	// Engines dropped without Close are released by the finalizer.
	for i := 0; i < 20; i++ {
		if _, err := FromFile("testdata/policy.toml"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
}

// Policy errors from many goroutines at once, with no LockOSThread: each error must
// carry its own call's message (its own line number), which the library's thread-local
// last error cannot promise once goroutines move between OS threads.
func TestErrorMessagesFromManyGoroutines(t *testing.T) {
	good := engine(t)
	const goroutines, rounds = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// The bad rate is on line g+5: the message names it.
			policy := "version = 1\n" + strings.Repeat("\n", g) +
				"[[limit]]\nname = \"x\"\nkey = [\"token\"]\nrate = \"" + strings.Repeat("z", g+1) + "\"\n"
			want := fmt.Sprintf("%d:", g+5)
			for i := 0; i < rounds; i++ {
				runtime.Gosched()
				var err error
				if i%2 == 0 {
					_, err = FromTOML(policy)
				} else {
					_, err = good.ReloadTOML(policy)
				}
				var te *Error
				if !errors.As(err, &te) || te.Code != ResultPolicy {
					errs <- fmt.Errorf("goroutine %d: %v", g, err)
					return
				}
				if !strings.Contains(te.Message, want) || !strings.Contains(te.Message, "rate") {
					errs <- fmt.Errorf("goroutine %d got another call's message: %q", g, te.Message)
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
	_, err := FromFile("/nonexistent/tollgate.toml")
	var te *Error
	if !errors.As(err, &te) || !strings.Contains(te.Message, "/nonexistent/tollgate.toml") ||
		!strings.HasPrefix(err.Error(), "tollgate_engine_from_file_err: ") {
		t.Fatalf("missing file: %v", err)
	}
}
