package tollgate

/*
#include <stdlib.h>
#include <tollgate.h>
*/
import "C"

import (
	"time"
	"unsafe"
)

// The administration calls (tollgate_engine_admin_*): every change an operator makes
// at run time, applied atomically and seen by the next decision, each reported as an
// `admin` event. A refused change changes nothing and returns an *Error that unwraps
// to its code (ResultUnknownCompany, ResultUnknownUser, ResultUnknownKey,
// ResultDuplicate, ResultCompanyTerminated, ResultUnknownLimit, ResultNoQuota,
// ResultInvalidArgument).

// CompanyOp is a change of a company's standing.
type CompanyOp uint32

// The company operations (the `op` of tollgate_engine_admin_company).
const (
	// CompanySuspend refuses the company's keys (as revoked) until resumed.
	CompanySuspend CompanyOp = 0
	// CompanyResume serves a suspended company again.
	CompanyResume CompanyOp = 1
	// CompanyTerminate refuses its keys for good (ReasonTerminated); usage is kept.
	CompanyTerminate CompanyOp = 2
	// CompanyRemove removes it: its keys are unknown; usage is kept for statements.
	CompanyRemove CompanyOp = 3
)

// UserOp is a change of a user.
type UserOp uint32

// The user operations (the `op` of tollgate_engine_admin_user).
const (
	// UserDisable refuses the user's keys (as revoked) until enabled.
	UserDisable UserOp = 0
	// UserEnable serves a disabled user again.
	UserEnable UserOp = 1
	// UserRemove removes the user: its keys are unknown; its usage stays in its company's.
	UserRemove UserOp = 2
)

// withC calls f with each of values in C memory (nil for ""), freed afterwards.
func withC(values []string, f func(p []*C.char) C.tollgate_result) C.tollgate_result {
	ps := make([]*C.char, len(values))
	for i, v := range values {
		ps[i] = cbytes(v)
	}
	defer func() {
		for _, p := range ps {
			C.free(unsafe.Pointer(p))
		}
	}()
	return f(ps)
}

// admin runs one administration call with the live engine and its strings.
func (e *Engine) admin(op string, values []string, call func(p *C.tollgate_engine, s []*C.char) C.tollgate_result) error {
	return e.with(func(p *C.tollgate_engine) error {
		return fail(op, withC(values, func(s []*C.char) C.tollgate_result { return call(p, s) }))
	})
}

func clen(s string) C.size_t { return C.size_t(len(s)) }

// AddCompany registers a company with its machines and apps on the default plan.
func (e *Engine) AddCompany(id string, machines, apps uint64) error {
	return e.admin("tollgate_engine_admin_add_company", []string{id}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_add_company(p, s[0], clen(id), C.uint64_t(machines), C.uint64_t(apps))
	})
}

// SetCompanyUnits sets a company's machines and apps: its limit changes at once.
func (e *Engine) SetCompanyUnits(id string, machines, apps uint64) error {
	return e.admin("tollgate_engine_admin_set_company_units", []string{id}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_set_company_units(p, s[0], clen(id), C.uint64_t(machines), C.uint64_t(apps))
	})
}

// SetCompanyPlans sets the plans a company subscribes to (comma-separated names; "":
// the default plan only).
func (e *Engine) SetCompanyPlans(id, plans string) error {
	return e.admin("tollgate_engine_admin_set_company_plans", []string{id, plans}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_set_company_plans(p, s[0], clen(id), s[1], clen(plans))
	})
}

// SetCompanyLimit sets a company's explicit monthly limit (calls), or removes it when
// set is false (its plans decide again).
func (e *Engine) SetCompanyLimit(id string, set bool, calls uint64) error {
	return e.admin("tollgate_engine_admin_set_company_limit", []string{id}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_set_company_limit(p, s[0], clen(id), C.bool(set), C.uint64_t(calls))
	})
}

// Company suspends, resumes, terminates or removes a company.
func (e *Engine) Company(id string, op CompanyOp) error {
	return e.admin("tollgate_engine_admin_company", []string{id}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_company(p, s[0], clen(id), C.uint32_t(op))
	})
}

// AddUser adds a user to a company.
func (e *Engine) AddUser(user, company string) error {
	return e.admin("tollgate_engine_admin_add_user", []string{user, company}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_add_user(p, s[0], clen(user), s[1], clen(company))
	})
}

// User disables, enables or removes a user.
func (e *Engine) User(user string, op UserOp) error {
	return e.admin("tollgate_engine_admin_user", []string{user}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_user(p, s[0], clen(user), C.uint32_t(op))
	})
}

// AddKey adds an API key for a user.
func (e *Engine) AddKey(key, user string) error {
	return e.admin("tollgate_engine_admin_add_key", []string{key, user}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_add_key(p, s[0], clen(key), s[1], clen(user))
	})
}

// RotateKey gives oldKey's user newKey (usage and limits carry on); oldKey is refused
// after grace (0: at once; whole milliseconds).
func (e *Engine) RotateKey(oldKey, newKey string, grace time.Duration) error {
	if grace < 0 {
		grace = 0
	}
	return e.admin("tollgate_engine_admin_rotate_key", []string{oldKey, newKey}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_rotate_key(p, s[0], clen(oldKey), s[1], clen(newKey), C.uint64_t(grace.Milliseconds()))
	})
}

// RemoveKey removes an API key: refused at once.
func (e *Engine) RemoveKey(key string) error {
	return e.admin("tollgate_engine_admin_remove_key", []string{key}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_remove_key(p, s[0], clen(key))
	})
}

// SetOverride sets the override of limit matching match (a TOML inline table as in
// the policy, e.g. `{ company = "acme" }`) to rate (e.g. "100/h").
func (e *Engine) SetOverride(limit, match, rate string) error {
	return e.admin("tollgate_engine_admin_set_override", []string{limit, match, rate}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_set_override(p, s[0], clen(limit), s[1], clen(match), s[2], clen(rate))
	})
}

// RemoveOverride removes the override of limit matching exactly match.
func (e *Engine) RemoveOverride(limit, match string) error {
	return e.admin("tollgate_engine_admin_remove_override", []string{limit, match}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_remove_override(p, s[0], clen(limit), s[1], clen(match))
	})
}

// SuspendToken refuses a token (as revoked) for d (whole milliseconds), then serves it
// again; changed says it was not revoked already.
func (e *Engine) SuspendToken(token string, d time.Duration) (changed bool, err error) {
	if d < 0 {
		d = 0
	}
	var out C.bool
	err = e.admin("tollgate_engine_admin_suspend_token", []string{token}, func(p *C.tollgate_engine, s []*C.char) C.tollgate_result {
		return C.tollgate_engine_admin_suspend_token(p, s[0], clen(token), C.uint64_t(d.Milliseconds()), &out)
	})
	return bool(out), err
}
