package tollgate

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

const httpPolicy = `version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "3/h"

[revocation]
key = "token"
denials = 100
window = "1m"
`

func TestMiddlewareAnswers429And403WithHeaders(t *testing.T) {
	e, err := FromTOML(httpPolicy)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var served int64
	srv := httptest.NewServer(Middleware(e, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&served, 1)
		io.WriteString(w, "ok\n")
	})))
	defer srv.Close()
	get := func(token string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/items", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	var statuses []int
	var last *http.Response
	for i := 0; i < 5; i++ {
		last = get("tok-1")
		statuses = append(statuses, last.StatusCode)
		if i < 4 {
			last.Body.Close()
		}
	}
	if want := []int{200, 200, 200, 429, 429}; !equal(statuses, want) || atomic.LoadInt64(&served) != 3 {
		t.Fatalf("statuses %v (served %d), want %v", statuses, served, want)
	}
	defer last.Body.Close()
	h := last.Header
	if h.Get("RateLimit-Policy") != `"per-token";q=3;w=3600` || h.Get("Retry-After") == "" ||
		h.Get("RateLimit") != `"per-token";r=0;t=`+h.Get("Retry-After") {
		t.Fatalf("429 headers: %v", h)
	}
	var body struct {
		Error      string
		RetryAfter *int `json:"retry_after"`
	}
	if err := json.NewDecoder(last.Body).Decode(&body); err != nil || body.Error != "limited" || body.RetryAfter == nil {
		t.Fatalf("429 body: %+v %v", body, err)
	}
	// An allowed answer carries the policy and the remaining count.
	ok := get("tok-2")
	ok.Body.Close()
	if ok.StatusCode != 200 || ok.Header.Get("RateLimit") == "" || ok.Header.Get("Retry-After") != "" {
		t.Fatalf("200 headers: %v", ok.Header)
	}
	// A revoked token: 403, no Retry-After.
	if _, err := e.Revoke("tok-3"); err != nil {
		t.Fatal(err)
	}
	forbidden := get("tok-3")
	forbidden.Body.Close()
	if forbidden.StatusCode != 403 || forbidden.Header.Get("Retry-After") != "" {
		t.Fatalf("revoked: %d %v", forbidden.StatusCode, forbidden.Header)
	}
	// A token that is not UTF-8 cannot be decided: 400.
	bad := get("\xff\xfe")
	bad.Body.Close()
	if bad.StatusCode != 400 {
		t.Fatalf("not UTF-8: %d", bad.StatusCode)
	}
}

func TestFromHeaders(t *testing.T) {
	r := httptest.NewRequest("POST", "http://example.test/v1/orders", nil)
	r.RemoteAddr = "[2001:db8::1]:4242"
	r.Header.Set("X-Api-Key", "k1")
	r.Header.Set("X-Tenant", "acme")
	got := FromHeaders(r)
	want := Request{Token: "k1", Tenant: "acme", Client: "2001:db8::1", Route: "/v1/orders", Method: "POST"}
	if got.Token != want.Token || got.Tenant != want.Tenant || got.Client != want.Client ||
		got.Route != want.Route || got.Method != want.Method {
		t.Fatalf("%+v, want %+v", got, want)
	}
	r.Header.Set("Authorization", "Bearer tok-9")
	if got := FromHeaders(r); got.Token != "tok-9" {
		t.Fatalf("bearer: %q", got.Token)
	}
}

func TestStatusByReason(t *testing.T) {
	for reason, want := range map[Reason]int{
		ReasonAllowed: 200, ReasonLimited: 429, ReasonQuotaExceeded: 429, ReasonCannotPass: 429,
		ReasonRevoked: 403, ReasonUnknownKey: 403, ReasonUnavailable: 503, ReasonJournalFailing: 503, ReasonTerminated: 403,
	} {
		if got := Status(reason); got != want {
			t.Errorf("%v: %d, want %d", reason, got, want)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
