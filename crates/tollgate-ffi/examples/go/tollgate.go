// Package tollgate is a Go binding of the tollgate engine's C library (an example,
// standard library only): an engine built from a policy file or text, decisions from
// the struct entry point tollgate_engine_decide_request, the RateLimit headers,
// events, revocation, reloads, metrics, quota reservations, the
// administration calls (admin.go) and a net/http middleware (middleware.go).
//
// It links the installed library through pkg-config (`#cgo pkg-config: tollgate`):
//
//	make -C crates/tollgate-ffi install PREFIX=$HOME/.local
//	export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig LD_LIBRARY_PATH=$HOME/.local/lib
//	go test -race ./...
//
// One *Engine is shared by every goroutine. Errors carry the message of their own
// call: the binding never reads the library's thread-local last error, which belongs
// to whichever OS thread the goroutine happened to run on. Policy loads and reloads
// use the _err entry points (the message in a buffer of the call's own); every other
// failure is described by tollgate_result_message().
package tollgate

/*
#cgo pkg-config: tollgate
#include <stdlib.h>
#include <string.h>
#include <tollgate.h>
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Result is a tollgate_result code. A failed call's *Error unwraps to it, so
// errors.Is(err, tollgate.ResultPolicy) works.
type Result uint32

// The result codes (tollgate.h; values never change).
const (
	ResultOK              Result = C.TOLLGATE_RESULT_OK
	ResultNullParameter   Result = C.TOLLGATE_RESULT_NULL_PARAMETER
	ResultInvalidUTF8     Result = C.TOLLGATE_RESULT_INVALID_UTF8
	ResultInvalidArgument Result = C.TOLLGATE_RESULT_INVALID_ARGUMENT
	ResultBufferTooSmall  Result = C.TOLLGATE_RESULT_BUFFER_TOO_SMALL
	ResultPolicy          Result = C.TOLLGATE_RESULT_POLICY
	ResultEngine          Result = C.TOLLGATE_RESULT_ENGINE
	ResultNoEvent         Result = C.TOLLGATE_RESULT_NO_EVENT
	ResultNoValue         Result = C.TOLLGATE_RESULT_NO_VALUE
	ResultPanic           Result = C.TOLLGATE_RESULT_PANIC
	ResultNoQuota         Result = C.TOLLGATE_RESULT_NO_QUOTA
	ResultUnknownKey      Result = C.TOLLGATE_RESULT_UNKNOWN_KEY
	ResultDisabledUser    Result = C.TOLLGATE_RESULT_DISABLED_USER
	ResultQuota           Result = C.TOLLGATE_RESULT_QUOTA
	// ResultJournal: the quota's journal could not record the change.
	ResultJournal Result = C.TOLLGATE_RESULT_JOURNAL
	// The refusals of administrative changes (admin.go).
	ResultUnknownCompany    Result = C.TOLLGATE_RESULT_UNKNOWN_COMPANY
	ResultUnknownUser       Result = C.TOLLGATE_RESULT_UNKNOWN_USER
	ResultDuplicate         Result = C.TOLLGATE_RESULT_DUPLICATE
	ResultCompanyTerminated Result = C.TOLLGATE_RESULT_COMPANY_TERMINATED
	ResultUnknownLimit      Result = C.TOLLGATE_RESULT_UNKNOWN_LIMIT
)

// Name is the code's name, e.g. "policy".
func (r Result) Name() string { return C.GoString(C.tollgate_result_name(C.uint32_t(r))) }

// Error is the code's static description (tollgate_result_message).
func (r Result) Error() string { return C.GoString(C.tollgate_result_message(C.uint32_t(r))) }

// Error is a failed call: which function, its result code and its message.
type Error struct {
	// Op is the C function that failed, e.g. "tollgate_engine_from_file_err".
	Op string
	// Code is its result.
	Code Result
	// Message has the call's details (line, column and field of a policy error) for
	// loads and reloads, and the code's description otherwise.
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s (%s)", e.Op, e.Message, e.Code.Name()) }

// Unwrap gives the result code.
func (e *Error) Unwrap() error { return e.Code }

// ErrClosed is returned by calls on a closed engine.
var ErrClosed = errors.New("tollgate: engine is closed")

func fail(op string, rc C.tollgate_result) error {
	if rc == C.TOLLGATE_RESULT_OK {
		return nil
	}
	code := Result(rc)
	return &Error{Op: op, Code: code, Message: code.Error()}
}

// Version is the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.tollgate_version()) }

// ABIVersion is the library's C ABI version; HeaderABIVersion the header's this
// package was compiled with. NewEngine refuses a mismatch.
func ABIVersion() uint32 { return uint32(C.tollgate_abi_version()) }

// HeaderABIVersion is TOLLGATE_ABI_VERSION of the header at build time.
const HeaderABIVersion = uint32(C.TOLLGATE_ABI_VERSION)

// Engine is one tollgate engine, shared by all goroutines. Close releases it; an
// engine that becomes unreachable without Close is released by a finalizer.
type Engine struct {
	// The read lock is held during every call, the write lock by Close: a call never
	// uses a freed engine, and Close waits for calls in flight.
	mu  sync.RWMutex
	ptr *C.tollgate_engine
}

const errBufLen = 1024

// load runs one of the _err constructors or reloads with an error buffer of its own.
func load(op string, call func(err *C.char, errLen C.size_t, errN *C.size_t) C.tollgate_result) error {
	buf := make([]byte, errBufLen)
	var n C.size_t
	rc := call((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
	if rc == C.TOLLGATE_RESULT_OK {
		return nil
	}
	msg := C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
	if int(n) >= len(buf) {
		msg += "…"
	}
	return &Error{Op: op, Code: Result(rc), Message: msg}
}

func checkABI() error {
	if ABIVersion() != HeaderABIVersion {
		return fmt.Errorf("tollgate: the library's C ABI is version %d, the header's %d", ABIVersion(), HeaderABIVersion)
	}
	return nil
}

func newEngine(ptr *C.tollgate_engine) *Engine {
	e := &Engine{ptr: ptr}
	runtime.SetFinalizer(e, (*Engine).Close)
	return e
}

// cbytes is s in C memory (freed by the caller); nil for "".
func cbytes(s string) *C.char {
	if s == "" {
		return nil
	}
	return (*C.char)(C.CBytes([]byte(s)))
}

// FromFile builds an engine from a policy file.
func FromFile(path string) (*Engine, error) {
	if err := checkABI(); err != nil {
		return nil, err
	}
	p := cbytes(path)
	defer C.free(unsafe.Pointer(p))
	var out *C.tollgate_engine
	err := load("tollgate_engine_from_file_err", func(b *C.char, l C.size_t, n *C.size_t) C.tollgate_result {
		return C.tollgate_engine_from_file_err(p, C.size_t(len(path)), &out, b, l, n)
	})
	if err != nil {
		return nil, err
	}
	return newEngine(out), nil
}

// FromTOML builds an engine from policy text.
func FromTOML(policy string) (*Engine, error) {
	if err := checkABI(); err != nil {
		return nil, err
	}
	p := cbytes(policy)
	defer C.free(unsafe.Pointer(p))
	var out *C.tollgate_engine
	err := load("tollgate_engine_from_toml_err", func(b *C.char, l C.size_t, n *C.size_t) C.tollgate_result {
		return C.tollgate_engine_from_toml_err(p, C.size_t(len(policy)), &out, b, l, n)
	})
	if err != nil {
		return nil, err
	}
	return newEngine(out), nil
}

// Close releases the engine after the calls in flight; later calls return ErrClosed.
// Closing twice is fine.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ptr != nil {
		C.tollgate_engine_free(e.ptr)
		e.ptr = nil
		runtime.SetFinalizer(e, nil)
	}
	return nil
}

// with runs f with the live engine, holding the read lock.
func (e *Engine) with(f func(p *C.tollgate_engine) error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return ErrClosed
	}
	err := f(e.ptr)
	runtime.KeepAlive(e)
	return err
}

// Attr is a further attribute of a request (a host attribute of the policy).
type Attr struct{ Name, Value string }

// Request is what a decision is made on. Empty fields are absent.
type Request struct {
	Token, Tenant, User, Company, Client, Route, Method string
	// Attrs are further attributes (the policy's host_attributes).
	Attrs []Attr
	// Cost, when not 0, is charged instead of the class's cost.
	Cost uint64
	// Now, when not zero, is the decision's time instead of the engine's clock.
	Now time.Time
}

// Reason is why a request was allowed or refused.
type Reason uint32

// The reasons (tollgate.h).
const (
	ReasonAllowed       Reason = C.TOLLGATE_REASON_ALLOWED
	ReasonLimited       Reason = C.TOLLGATE_REASON_LIMITED
	ReasonRevoked       Reason = C.TOLLGATE_REASON_REVOKED
	ReasonQuotaExceeded Reason = C.TOLLGATE_REASON_QUOTA_EXCEEDED
	ReasonUnknownKey    Reason = C.TOLLGATE_REASON_UNKNOWN_KEY
	ReasonCannotPass    Reason = C.TOLLGATE_REASON_CANNOT_PASS
	ReasonUnavailable   Reason = C.TOLLGATE_REASON_UNAVAILABLE
	// ReasonJournalFailing: the quota's journal has been failing for longer than its
	// fail_closed_after; retry after RetryAfter (HTTP 503).
	ReasonJournalFailing Reason = C.TOLLGATE_REASON_JOURNAL_FAILING
	// ReasonTerminated: the API key's company is terminated, refused for good (HTTP 403).
	ReasonTerminated Reason = C.TOLLGATE_REASON_TERMINATED
)

func (r Reason) String() string { return C.GoString(C.tollgate_reason_name(C.uint32_t(r))) }

// Quota is the quota's part in a decision.
type Quota struct {
	// Outcome: 0 none, 1 within, 2 over the limit (served), 3 refused.
	Outcome     uint32
	Used, Limit uint64
	ResetsAt    time.Time
}

// Decision is the engine's answer.
type Decision struct {
	Allowed      bool
	ShadowDenied bool
	Reason       Reason
	// DecidedBy is the deciding limit's index in the policy, or -1.
	DecidedBy        int
	Limit, Remaining uint64
	// RetryAfter is the wait before a retry can pass; RetryNever says waiting cannot
	// help (revoked, a cost above the capacity).
	RetryAfter time.Duration
	RetryNever bool
	ResetAfter time.Duration
	Generation uint64
	Quota      Quota

	c C.tollgate_decision
}

// One C allocation holds the request struct, its attributes and every string: a
// struct passed to C may not hold pointers to Go memory.
func (r *Request) toC() (*C.tollgate_request, unsafe.Pointer) {
	fields := [7]string{r.Token, r.Tenant, r.User, r.Company, r.Client, r.Route, r.Method}
	size := C.sizeof_tollgate_request + len(r.Attrs)*C.sizeof_tollgate_attr
	for _, f := range fields {
		size += len(f)
	}
	for _, a := range r.Attrs {
		size += len(a.Name) + len(a.Value)
	}
	mem := C.calloc(1, C.size_t(size))
	if mem == nil {
		panic("tollgate: out of memory")
	}
	req := (*C.tollgate_request)(mem)
	attrs := unsafe.Slice((*C.tollgate_attr)(unsafe.Add(mem, C.sizeof_tollgate_request)), len(r.Attrs))
	text := unsafe.Add(mem, C.sizeof_tollgate_request+len(r.Attrs)*C.sizeof_tollgate_attr)
	put := func(s string) (*C.char, C.size_t) {
		if s == "" {
			return nil, 0
		}
		p := text
		copy(unsafe.Slice((*byte)(p), len(s)), s)
		text = unsafe.Add(text, len(s))
		return (*C.char)(p), C.size_t(len(s))
	}
	strs := [7]*C.tollgate_str{&req.token, &req.tenant, &req.user, &req.company, &req.client, &req.route, &req.method}
	for i, f := range fields {
		strs[i].ptr, strs[i].len = put(f)
	}
	for i, a := range r.Attrs {
		attrs[i].name, attrs[i].name_len = put(a.Name)
		attrs[i].value, attrs[i].value_len = put(a.Value)
	}
	if len(r.Attrs) > 0 {
		req.attrs = &attrs[0]
		req.attrs_len = C.size_t(len(r.Attrs))
	}
	if r.Cost != 0 {
		req.explicit_cost = true
		req.cost = C.uint64_t(r.Cost)
	}
	if !r.Now.IsZero() {
		req.now_unix_ns = C.uint64_t(r.Now.UnixNano())
	}
	return req, mem
}

func millis(ms C.uint64_t) time.Duration { return time.Duration(ms) * time.Millisecond }

// Decide decides a request (tollgate_engine_decide_request).
func (e *Engine) Decide(r *Request) (Decision, error) {
	var d Decision
	err := e.with(func(p *C.tollgate_engine) error {
		req, mem := r.toC()
		defer C.free(mem)
		return fail("tollgate_engine_decide_request", C.tollgate_engine_decide_request(p, req, &d.c))
	})
	if err != nil {
		return Decision{}, err
	}
	c := &d.c
	d.Allowed = bool(c.allowed)
	d.ShadowDenied = bool(c.shadow_denied)
	d.Reason = Reason(c.reason)
	d.DecidedBy = int(c.decided_by)
	d.Limit = uint64(c.limit)
	d.Remaining = uint64(c.remaining)
	if uint64(c.retry_after_ms) == uint64(C.TOLLGATE_NEVER) {
		d.RetryNever = true
	} else {
		d.RetryAfter = millis(c.retry_after_ms)
	}
	d.ResetAfter = millis(c.reset_after_ms)
	d.Generation = uint64(c.generation)
	d.Quota = Quota{Outcome: uint32(c.quota.outcome), Used: uint64(c.quota.used), Limit: uint64(c.quota.limit)}
	if c.quota.resets_at_unix != 0 {
		d.Quota.ResetsAt = time.Unix(int64(c.quota.resets_at_unix), 0)
	}
	return d, nil
}

// text reads a text the library writes into a caller buffer, growing the buffer when
// it is too small. ok is false when the call answered `absent` (no value, no event).
func text(op string, absent C.tollgate_result, call func(buf *C.char, l C.size_t, n *C.size_t) C.tollgate_result) (s string, ok bool, err error) {
	size := 256
	for {
		buf := make([]byte, size)
		var n C.size_t
		rc := call((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		switch {
		case rc == C.TOLLGATE_RESULT_OK:
			return string(buf[:n]), true, nil
		case rc == C.TOLLGATE_RESULT_BUFFER_TOO_SMALL && int(n) > size:
			size = int(n)
		case rc == absent:
			return "", false, nil
		default:
			return "", false, fail(op, rc)
		}
	}
}

// Headers are a decision's response headers; an empty value is not sent.
type Headers struct {
	Policy     string // RateLimit-Policy
	RateLimit  string // RateLimit
	RetryAfter string // Retry-After (refusals that may retry)
}

// Headers gives the decision's RateLimit-Policy, RateLimit and Retry-After values.
func (e *Engine) Headers(d *Decision) (Headers, error) {
	var h Headers
	dc := d.c
	err := e.with(func(p *C.tollgate_engine) error {
		for which, dst := range map[C.uint32_t]*string{
			C.TOLLGATE_HEADER_POLICY:      &h.Policy,
			C.TOLLGATE_HEADER_RATELIMIT:   &h.RateLimit,
			C.TOLLGATE_HEADER_RETRY_AFTER: &h.RetryAfter,
		} {
			v, _, err := text("tollgate_engine_header", C.TOLLGATE_RESULT_NO_VALUE, func(b *C.char, l C.size_t, n *C.size_t) C.tollgate_result {
				return C.tollgate_engine_header(p, &dc, which, b, l, n)
			})
			if err != nil {
				return err
			}
			*dst = v
		}
		return nil
	})
	return h, err
}

// token calls one of revoke, restore, is_revoked.
func (e *Engine) token(op string, value string, call func(p *C.tollgate_engine, v *C.char, l C.size_t, out *C.bool) C.tollgate_result) (bool, error) {
	var out C.bool
	err := e.with(func(p *C.tollgate_engine) error {
		v := cbytes(value)
		defer C.free(unsafe.Pointer(v))
		return fail(op, call(p, v, C.size_t(len(value)), &out))
	})
	return bool(out), err
}

// Revoke revokes a token (the policy's revocation attribute); changed says it was not
// revoked already. A `revoked` event follows.
func (e *Engine) Revoke(token string) (changed bool, err error) {
	return e.token("tollgate_engine_revoke", token, func(p *C.tollgate_engine, v *C.char, l C.size_t, o *C.bool) C.tollgate_result {
		return C.tollgate_engine_revoke(p, v, l, o)
	})
}

// Restore restores a revoked token; changed says it was revoked.
func (e *Engine) Restore(token string) (changed bool, err error) {
	return e.token("tollgate_engine_restore", token, func(p *C.tollgate_engine, v *C.char, l C.size_t, o *C.bool) C.tollgate_result {
		return C.tollgate_engine_restore(p, v, l, o)
	})
}

// IsRevoked says whether a token is revoked.
func (e *Engine) IsRevoked(token string) (bool, error) {
	return e.token("tollgate_engine_is_revoked", token, func(p *C.tollgate_engine, v *C.char, l C.size_t, o *C.bool) C.tollgate_result {
		return C.tollgate_engine_is_revoked(p, v, l, o)
	})
}

// ReloadReport says what a reload did per limit.
type ReloadReport struct{ Kept, Carried, Fresh, Removed int }

func (e *Engine) reload(op, arg string, call func(p *C.tollgate_engine, a *C.char, l C.size_t, rep *C.tollgate_reload_report, b *C.char, bl C.size_t, n *C.size_t) C.tollgate_result) (ReloadReport, error) {
	var rep C.tollgate_reload_report
	err := e.with(func(p *C.tollgate_engine) error {
		a := cbytes(arg)
		defer C.free(unsafe.Pointer(a))
		return load(op, func(b *C.char, bl C.size_t, n *C.size_t) C.tollgate_result {
			return call(p, a, C.size_t(len(arg)), &rep, b, bl, n)
		})
	})
	if err != nil {
		return ReloadReport{}, err
	}
	return ReloadReport{int(rep.kept), int(rep.carried), int(rep.fresh), int(rep.removed)}, nil
}

// ReloadTOML replaces the policy while other goroutines decide; on failure the old
// policy stays in force.
func (e *Engine) ReloadTOML(policy string) (ReloadReport, error) {
	return e.reload("tollgate_engine_reload_toml_err", policy, func(p *C.tollgate_engine, a *C.char, l C.size_t, rep *C.tollgate_reload_report, b *C.char, bl C.size_t, n *C.size_t) C.tollgate_result {
		return C.tollgate_engine_reload_toml_err(p, a, l, rep, b, bl, n)
	})
}

// ReloadFile is ReloadTOML from a file.
func (e *Engine) ReloadFile(path string) (ReloadReport, error) {
	return e.reload("tollgate_engine_reload_file_err", path, func(p *C.tollgate_engine, a *C.char, l C.size_t, rep *C.tollgate_reload_report, b *C.char, bl C.size_t, n *C.size_t) C.tollgate_result {
		return C.tollgate_engine_reload_file_err(p, a, l, rep, b, bl, n)
	})
}

// Event is one engine event: its kind ("warning", "overage", "revoked", "restored")
// and its JSON object (tokens redacted).
type Event struct {
	Kind string
	JSON json.RawMessage
}

// NextEvent gives the next event without blocking; ok is false when none is waiting.
func (e *Engine) NextEvent() (ev Event, ok bool, err error) {
	var s string
	err = e.with(func(p *C.tollgate_engine) error {
		var err error
		s, ok, err = text("tollgate_engine_next_event", C.TOLLGATE_RESULT_NO_EVENT, func(b *C.char, l C.size_t, n *C.size_t) C.tollgate_result {
			return C.tollgate_engine_next_event(p, b, l, n)
		})
		return err
	})
	if err != nil || !ok {
		return Event{}, false, err
	}
	var kind struct{ Kind string }
	if err := json.Unmarshal([]byte(s), &kind); err != nil {
		return Event{}, false, fmt.Errorf("tollgate: an event is not JSON: %w", err)
	}
	return Event{Kind: kind.Kind, JSON: json.RawMessage(s)}, true, nil
}

// Metrics is the engine's counters as Prometheus text.
func (e *Engine) Metrics() (string, error) {
	return e.engineText("tollgate_engine_metrics", func(p *C.tollgate_engine, b *C.char, l C.size_t, n *C.size_t) C.tollgate_result {
		return C.tollgate_engine_metrics(p, b, l, n)
	})
}

// Warnings are the deprecation warnings and notes of the last load or reload.
func (e *Engine) Warnings() (string, error) {
	return e.engineText("tollgate_engine_warnings", func(p *C.tollgate_engine, b *C.char, l C.size_t, n *C.size_t) C.tollgate_result {
		return C.tollgate_engine_warnings(p, b, l, n)
	})
}

func (e *Engine) engineText(op string, call func(p *C.tollgate_engine, b *C.char, l C.size_t, n *C.size_t) C.tollgate_result) (string, error) {
	var s string
	err := e.with(func(p *C.tollgate_engine) error {
		var err error
		s, _, err = text(op, C.TOLLGATE_RESULT_OK, func(b *C.char, l C.size_t, n *C.size_t) C.tollgate_result {
			return call(p, b, l, n)
		})
		return err
	})
	return s, err
}

// Reservation holds part of a company's monthly quota for a call whose final cost is
// known only afterwards (tollgate_engine_quota_reserve). Settle it exactly once with
// Commit or Refund; a Reservation left unsettled and unreachable is refunded by a
// finalizer. It may be settled after its engine is closed.
type Reservation struct {
	mu  sync.Mutex
	ptr *C.tollgate_reservation
	// Status is the quota's verdict at reservation time. When Status.Outcome is
	// QuotaRefused (over the hard cap) the reservation holds nothing: refuse the call
	// and Refund it.
	Status Quota
}

// The quota outcomes (Quota.Outcome).
const (
	QuotaNone      = uint32(C.TOLLGATE_QUOTA_OUTCOME_NONE)
	QuotaWithin    = uint32(C.TOLLGATE_QUOTA_OUTCOME_WITHIN)
	QuotaOverLimit = uint32(C.TOLLGATE_QUOTA_OUTCOME_OVER_LIMIT)
	QuotaRefused   = uint32(C.TOLLGATE_QUOTA_OUTCOME_REFUSED)
)

// MaxCommitCost is the largest final cost Commit accepts (TOLLGATE_MAX_COMMIT_COST).
const MaxCommitCost = uint64(C.TOLLGATE_MAX_COMMIT_COST)

// ErrSettled is returned by Commit or Refund on a reservation already settled.
var ErrSettled = errors.New("tollgate: reservation already settled")

// Reserve reserves cost of the monthly quota of API key apiKey at now (the engine's
// clock when now is the zero time). It counts at once, so concurrent calls see it.
// Fails with ResultNoQuota, ResultUnknownKey or ResultDisabledUser (as *Error).
func (e *Engine) Reserve(apiKey string, cost uint64, now time.Time) (*Reservation, error) {
	r := &Reservation{}
	err := e.with(func(p *C.tollgate_engine) error {
		k := cbytes(apiKey)
		defer C.free(unsafe.Pointer(k))
		at := C.uint64_t(C.TOLLGATE_ENGINE_CLOCK)
		if !now.IsZero() {
			at = C.uint64_t(now.UnixNano())
		}
		var st C.tollgate_quota_status
		rc := C.tollgate_engine_quota_reserve(p, k, C.size_t(len(apiKey)), C.uint64_t(cost), at, &r.ptr, &st)
		if err := fail("tollgate_engine_quota_reserve", rc); err != nil {
			return err
		}
		r.Status = Quota{Outcome: uint32(st.outcome), Used: uint64(st.used), Limit: uint64(st.limit)}
		if st.resets_at_unix != 0 {
			r.Status.ResetsAt = time.Unix(int64(st.resets_at_unix), 0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	runtime.SetFinalizer(r, func(r *Reservation) { _ = r.Refund() })
	return r, nil
}

// Commit settles the reservation at finalCost. idempotencyKey (e.g. the request id)
// makes a retried commit count once: duplicate says this key was already committed
// this period and nothing was counted. A finalCost above MaxCommitCost is refused
// (ResultInvalidArgument) before anything is settled: the reservation stays usable.
func (r *Reservation) Commit(finalCost uint64, idempotencyKey string) (duplicate bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr == nil {
		return false, ErrSettled
	}
	k := cbytes(idempotencyKey)
	defer C.free(unsafe.Pointer(k))
	var outcome C.uint32_t
	rc := C.tollgate_reservation_commit(r.ptr, C.uint64_t(finalCost), k, C.size_t(len(idempotencyKey)), &outcome)
	if rc == C.TOLLGATE_RESULT_OK || rc == C.TOLLGATE_RESULT_PANIC {
		// Settled (or gone after a panic): never touch the pointer again.
		r.ptr = nil
	}
	if err := fail("tollgate_reservation_commit", rc); err != nil {
		return false, err
	}
	return outcome == C.TOLLGATE_COMMIT_OUTCOME_DUPLICATE, nil
}

// Refund releases the reservation without counting it (the call failed, not billed).
func (r *Reservation) Refund() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr == nil {
		return ErrSettled
	}
	rc := C.tollgate_reservation_refund(r.ptr)
	r.ptr = nil
	return fail("tollgate_reservation_refund", rc)
}
