package tollgate

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// reasonOf decides one request of token at feb.
func reasonOf(t *testing.T, e *Engine, token string) Reason {
	t.Helper()
	return reasonAt(t, e, token, feb)
}

// reasonAt decides one request of token at now (the zero time: the engine's clock).
func reasonAt(t *testing.T, e *Engine, token string, now time.Time) Reason {
	t.Helper()
	d, err := e.Decide(&Request{Token: token, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return d.Reason
}

func TestAdminKeysUsersCompanies(t *testing.T) {
	e := quotaEngine(t)
	// A rotated key keeps the user's usage; the old key is refused at once.
	if _, err := e.Reserve("key-alice", 10, feb); err != nil {
		t.Fatal(err)
	}
	if err := e.RotateKey("key-alice", "key-alice-2", 0); err != nil {
		t.Fatal(err)
	}
	r, err := e.Reserve("key-alice-2", 1, feb)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status.Used != 11 {
		t.Fatalf("usage after rotation: %+v", r.Status)
	}
	if _, err := e.Reserve("key-alice", 1, feb); !errors.Is(err, ResultUnknownKey) {
		t.Fatalf("old key after rotation: %v", err)
	}
	// Typed refusals change nothing.
	if err := e.AddUser("carol", "nowhere"); !errors.Is(err, ResultUnknownCompany) {
		t.Fatalf("user of an unknown company: %v", err)
	}
	if err := e.AddKey("key-alice-2", "alice"); !errors.Is(err, ResultDuplicate) {
		t.Fatalf("a key twice: %v", err)
	}
	var ae *Error
	if err := e.User("nobody", UserDisable); !errors.As(err, &ae) || ae.Op != "tollgate_engine_admin_user" || ae.Code != ResultUnknownUser {
		t.Fatalf("unknown user: %v", err)
	}
	// A new company, user and key, served at once; its limit set by hand.
	if err := e.AddCompany("globex", 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.AddUser("gil", "globex"); err != nil {
		t.Fatal(err)
	}
	if err := e.AddKey("key-gil", "gil"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetCompanyLimit("globex", true, 5); err != nil {
		t.Fatal(err)
	}
	r, err = e.Reserve("key-gil", 2, feb)
	if err != nil || r.Status.Limit != 5 {
		t.Fatalf("new company's key: %+v %v", r, err)
	}
	if err := e.SetCompanyPlans("globex", "no-such-plan"); !errors.Is(err, ResultInvalidArgument) {
		t.Fatalf("unknown plan: %v", err)
	}
	// Disabled user, suspended and terminated company.
	if err := e.User("gil", UserDisable); err != nil {
		t.Fatal(err)
	}
	if got := reasonOf(t, e, "key-gil"); got != ReasonRevoked {
		t.Fatalf("disabled user: %v", got)
	}
	if err := e.User("gil", UserEnable); err != nil {
		t.Fatal(err)
	}
	if err := e.Company("globex", CompanySuspend); err != nil {
		t.Fatal(err)
	}
	if got := reasonOf(t, e, "key-gil"); got != ReasonRevoked {
		t.Fatalf("suspended company: %v", got)
	}
	if err := e.Company("globex", CompanyResume); err != nil {
		t.Fatal(err)
	}
	if got := reasonOf(t, e, "key-gil"); got != ReasonAllowed {
		t.Fatalf("resumed company: %v", got)
	}
	if err := e.Company("globex", CompanyTerminate); err != nil {
		t.Fatal(err)
	}
	if got := reasonOf(t, e, "key-gil"); got != ReasonTerminated || Status(got) != 403 {
		t.Fatalf("terminated company: %v", got)
	}
	if err := e.Company("globex", CompanyResume); !errors.Is(err, ResultCompanyTerminated) {
		t.Fatalf("resuming a terminated company: %v", err)
	}
	// Every change was an admin event; no key appears in full.
	admin := 0
	for {
		ev, ok, err := e.NextEvent()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if ev.Kind == "admin" {
			admin++
		}
		for _, k := range []string{"key-alice", "key-gil"} {
			if strings.Contains(string(ev.JSON), k) {
				t.Fatalf("a key in an event: %s", ev.JSON)
			}
		}
	}
	if admin < 10 {
		t.Fatalf("%d admin events", admin)
	}
}

func TestAdminOverridesAndSuspension(t *testing.T) {
	e, err := FromTOML(`version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "2/h"
`)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	allowed := func(token string, n int) int {
		a := 0
		for i := 0; i < n; i++ {
			// The engine's clock: an override set now carries the key's state now.
			if reasonAt(t, e, token, time.Time{}) == ReasonAllowed {
				a++
			}
		}
		return a
	}
	if got := allowed("t-1", 1); got != 1 {
		t.Fatalf("%d", got)
	}
	// Raised to 5/h for t-1: it keeps the 1 it used, so 4 more.
	if err := e.SetOverride("per-token", `{ token = "t-1" }`, "5/h"); err != nil {
		t.Fatal(err)
	}
	if got := allowed("t-1", 10); got != 4 {
		t.Fatalf("after raising: %d allowed", got)
	}
	if err := e.RemoveOverride("per-token", `{ token = "t-1" }`); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveOverride("per-token", `{ token = "t-1" }`); !errors.Is(err, ResultUnknownLimit) {
		t.Fatalf("removing twice: %v", err)
	}
	if err := e.SetOverride("per-token", `{ token = `, "5/h"); !errors.Is(err, ResultInvalidArgument) {
		t.Fatalf("a bad match: %v", err)
	}
	changed, err := e.SuspendToken("t-2", time.Hour)
	if err != nil || !changed {
		t.Fatalf("suspend: %v %v", changed, err)
	}
	if got := reasonAt(t, e, "t-2", time.Time{}); got != ReasonRevoked {
		t.Fatalf("suspended token: %v", got)
	}
}

// Admin changes while many goroutines decide: every decision answers, and every key
// added is served.
func TestAdminWhileDeciding(t *testing.T) {
	e := quotaEngine(t)
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.Decide(&Request{Token: fmt.Sprintf("key-u%d", i%50), Now: feb}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		user := fmt.Sprintf("u%d", i)
		if err := e.AddUser(user, "acme"); err != nil {
			t.Fatal(err)
		}
		if err := e.AddKey("key-"+user, user); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := e.Reserve(fmt.Sprintf("key-u%d", i), 1, feb); err != nil {
			t.Fatalf("key-u%d: %v", i, err)
		}
	}
}
