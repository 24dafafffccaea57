package tollgate

import (
	"fmt"
	"net"
	"net/http"
)

// RequestFunc builds the engine's request from an HTTP request: which header holds the
// token, which the tenant, and so on, is the service's to say.
type RequestFunc func(r *http.Request) Request

// FromHeaders is a RequestFunc for the common case: the token from the
// Authorization header's Bearer value (or X-Api-Key), the tenant from X-Tenant, the
// client from the remote address, the route and method from the request line.
func FromHeaders(r *http.Request) Request {
	token := r.Header.Get("X-Api-Key")
	if a := r.Header.Get("Authorization"); len(a) > 7 && a[:7] == "Bearer " {
		token = a[7:]
	}
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	return Request{
		Token:  token,
		Tenant: r.Header.Get("X-Tenant"),
		Client: client,
		Route:  r.URL.Path,
		Method: r.Method,
	}
}

// Status is the HTTP status of a refusal, as the reason says: 429 when retrying later
// can pass (limited, over the quota, a cost above the capacity), 403 for a revoked
// token, an unknown key or a terminated company, 503 when a limit could not decide or the quota's journal
// is failing (fail closed). The same as the
// tollgate-async tower layer.
func Status(reason Reason) int {
	switch reason {
	case ReasonAllowed:
		return http.StatusOK
	case ReasonLimited, ReasonQuotaExceeded, ReasonCannotPass:
		return http.StatusTooManyRequests
	case ReasonUnavailable, ReasonJournalFailing:
		return http.StatusServiceUnavailable
	default:
		return http.StatusForbidden
	}
}

// Middleware decides every request before next sees it. Allowed requests go on with
// the RateLimit-Policy and RateLimit headers set; refused ones are answered with the
// reason's status (Status), a JSON body {"error": reason, "retry_after": seconds or
// null}, and on a 429 the RateLimit-Policy, RateLimit and Retry-After headers. A
// request the engine cannot decide (an attribute that is not UTF-8) is answered 400.
func Middleware(e *Engine, req RequestFunc, next http.Handler) http.Handler {
	if req == nil {
		req = FromHeaders
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr := req(r)
		d, err := e.Decide(&tr)
		if err != nil {
			status := http.StatusInternalServerError
			if code, ok := err.(*Error); ok && (code.Code == ResultInvalidUTF8 || code.Code == ResultInvalidArgument) {
				status = http.StatusBadRequest
			}
			http.Error(w, http.StatusText(status), status)
			return
		}
		h, err := e.Headers(&d)
		if err != nil {
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			return
		}
		status := Status(d.Reason)
		out := w.Header()
		if d.Allowed || status == http.StatusTooManyRequests {
			set := func(name, v string) {
				if v != "" {
					out.Set(name, v)
				}
			}
			set("RateLimit-Policy", h.Policy)
			set("RateLimit", h.RateLimit)
			if !d.Allowed {
				set("Retry-After", h.RetryAfter)
			}
		}
		if d.Allowed {
			next.ServeHTTP(w, r)
			return
		}
		retry := "null"
		if h.RetryAfter != "" {
			retry = h.RetryAfter
		}
		out.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, "{\"error\":%q,\"retry_after\":%s}\n", d.Reason.String(), retry)
	})
}
