/* The whole C API of tollgate, and every error path: built with -Wall -Wextra -Werror
 * -Wpedantic and AddressSanitizer + UndefinedBehaviorSanitizer by the Makefile beside
 * this file (`make -C crates/tollgate-ffi test`), and run under valgrind. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* 2027-01-15T08:00:00Z in Unix nanoseconds: every decision below is at an explicit time. */
#define T0 UINT64_C(1800000000000000000)
#define SEC UINT64_C(1000000000)

static const char RATE_POLICY[] =
    "version = 1\n"
    "[classes]\n"
    "read = [\"GET\", \"HEAD\"]\n"
    "default = \"write\"\n"
    "\n"
    "[[limit]]\n"
    "name = \"per-token\"\n"
    "key = [\"token\"]\n"
    "rate = \"10/min\"\n"
    "cost = { read = 1, write = 3 }\n"
    "\n"
    "[[limit]]\n"
    "name = \"per-tenant\"\n"
    "key = [\"tenant\"]\n"
    "rate = \"100/min\"\n"
    "\n"
    "[revocation]\n"
    "key = \"token\"\n"
    "denials = 3\n"
    "window = \"10m\"\n";

/* A limit on an attribute of the host's own (absent attributes count as empty). */
static const char REGION_POLICY[] =
    "version = 1\n"
    "host_attributes = [\"region\"]\n"
    "[[limit]]\n"
    "name = \"per-token\"\n"
    "key = [\"token\"]\n"
    "rate = \"100/min\"\n"
    "\n"
    "[[limit]]\n"
    "name = \"per-region\"\n"
    "key = [\"region\"]\n"
    "rate = \"5/min\"\n";

static const char QUOTA_POLICY[] =
    "version = 1\n"
    "[[limit]]\n"
    "name = \"per-token\"\n"
    "key = [\"token\"]\n"
    "rate = \"1000/s\"\n"
    "\n"
    "[quota]\n"
    "key = \"token\"\n"
    "warning_percent = 80\n"
    "hard_cap_percent = 150\n"
    "\n"
    "[[quota.plans]]\n"
    "name = \"tiny\"\n"
    "calls = 10\n"
    "default = true\n"
    "\n"
    "[[quota.companies]]\n"
    "id = \"acme\"\n"
    "users = [\n"
    "  { id = \"alice\", keys = [\"key-alice\"] },\n"
    "  { id = \"bob\", keys = [\"key-bob\"], disabled = true },\n"
    "]\n";

static tollgate_engine *engine_from(const char *policy) {
    tollgate_engine *e = NULL;
    CHECK_OK(tollgate_engine_from_toml(policy, strlen(policy), &e));
    CHECK(e != NULL);
    return e;
}

/* A GET (cost 1) or POST (cost 3) for token/tenant at `now`. */
static tollgate_decision decide(const tollgate_engine *e, const char *method, const char *token,
                                uint64_t now) {
    tollgate_attr attrs[3];
    attrs[0] = attr("token", token);
    attrs[1] = attr("tenant", "t1");
    attrs[2] = attr("method", method);
    tollgate_decision d;
    CHECK_OK(tollgate_engine_decide(e, attrs, 3, TOLLGATE_CLASS_COST, now, &d));
    return d;
}

static const char *header(const tollgate_engine *e, const tollgate_decision *d, uint32_t which) {
    static char buf[256];
    size_t n = 0;
    tollgate_result rc = tollgate_engine_header(e, d, which, buf, sizeof buf, &n);
    if (rc == TOLLGATE_RESULT_NO_VALUE) {
        return NULL;
    }
    CHECK_RC(rc, TOLLGATE_RESULT_OK);
    CHECK(n == strlen(buf));
    return buf;
}

static void test_versions(void) {
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", TOLLGATE_VERSION_MAJOR, TOLLGATE_VERSION_MINOR,
             TOLLGATE_VERSION_PATCH);
    CHECK(strcmp(tollgate_version(), expected) == 0);
    CHECK(tollgate_abi_version() == TOLLGATE_ABI_VERSION);
    CHECK(strcmp(tollgate_result_name(TOLLGATE_RESULT_BUFFER_TOO_SMALL), "buffer_too_small") == 0);
    CHECK(strcmp(tollgate_result_name(9999), "unknown") == 0);
    CHECK(strcmp(tollgate_reason_name(TOLLGATE_REASON_QUOTA_EXCEEDED), "quota_exceeded") == 0);
    CHECK(strcmp(tollgate_reason_name(77), "unknown") == 0);
    CHECK(strcmp(tollgate_header_name(TOLLGATE_HEADER_RETRY_AFTER), "Retry-After") == 0);
    CHECK(tollgate_header_name(3) == NULL);
}

static void test_build_errors(void) {
    tollgate_engine *sentinel = (tollgate_engine *)&checks_run; /* never dereferenced */
    tollgate_engine *e = sentinel;

    /* A policy error names the line, the column and the field; the output is untouched. */
    const char *bad = "version = 1\n[[limit]]\nname = \"x\"\nkey = [\"token\"]\nrate = \"ten per second\"\n";
    CHECK_RC(tollgate_engine_from_toml(bad, strlen(bad), &e), TOLLGATE_RESULT_POLICY);
    CHECK(e == sentinel);
    CHECK(strstr(last_error(), "5:") != NULL);
    CHECK(strstr(last_error(), "rate") != NULL);

    const char *version2 = "version = 2\n";
    CHECK_RC(tollgate_engine_from_toml(version2, strlen(version2), &e), TOLLGATE_RESULT_POLICY);
    CHECK(strstr(last_error(), "version") != NULL);

    const char not_utf8[] = "version = 1 # \xff\xfe\n";
    CHECK_RC(tollgate_engine_from_toml(not_utf8, strlen(not_utf8), &e), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK(strstr(last_error(), "offset 14") != NULL);
    CHECK_RC(tollgate_engine_from_toml(NULL, 10, &e), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(last_error(), "policy") != NULL);
    CHECK_RC(tollgate_engine_from_toml(RATE_POLICY, strlen(RATE_POLICY), NULL),
             TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(last_error(), "out") != NULL);
    /* An empty policy lacks its version. */
    CHECK_RC(tollgate_engine_from_toml(NULL, 0, &e), TOLLGATE_RESULT_POLICY);
    CHECK(e == sentinel);

    /* Files: a missing one is named in the message. */
    const char *missing = "/nonexistent/tollgate/policy.toml";
    CHECK_RC(tollgate_engine_from_file(missing, strlen(missing), &e), TOLLGATE_RESULT_POLICY);
    CHECK(strstr(last_error(), missing) != NULL);
    CHECK(e == sentinel);
    CHECK_RC(tollgate_engine_from_file(NULL, 3, &e), TOLLGATE_RESULT_NULL_PARAMETER);

    char path[] = "/tmp/tollgate-api-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    /* A deprecated setting loads, with a warning that says where. */
    const char *deprecated = "version = 1\n[[limit]]\nname = \"old\"\nkey = [\"token\"]\nper_second = 5\n";
    CHECK(write(fd, deprecated, strlen(deprecated)) == (ssize_t)strlen(deprecated));
    close(fd);
    CHECK_OK(tollgate_engine_from_file(path, strlen(path), &e));
    char warnings[512];
    size_t n = 0;
    CHECK_OK(tollgate_engine_warnings(e, warnings, sizeof warnings, &n));
    CHECK(strstr(warnings, "5:14: limit[0].per_second: deprecated") != NULL);
    CHECK(n == strlen(warnings));
    tollgate_engine_free(e);
    unlink(path);

    tollgate_engine_free(NULL); /* documented no-op */
}

static void test_decide_and_headers(void) {
    tollgate_engine *e = engine_from(RATE_POLICY);

    /* 10/min for a token: a GET costs 1, a POST 3. */
    tollgate_decision d = decide(e, "GET", "tok-a", T0);
    CHECK(d.allowed);
    CHECK(d.reason == TOLLGATE_REASON_ALLOWED);
    CHECK(d.decided_by == 0);
    CHECK(d.limit == 10);
    CHECK(d.remaining == 9);
    CHECK(d.retry_after_ms == 0);
    CHECK(d.reset_after_ms == 6000);
    CHECK(d.generation == 1);
    CHECK(d.quota.outcome == TOLLGATE_QUOTA_OUTCOME_NONE);
    CHECK(strcmp(header(e, &d, TOLLGATE_HEADER_POLICY), "\"per-token\";q=10;w=60") == 0);
    CHECK(strcmp(header(e, &d, TOLLGATE_HEADER_RATELIMIT), "\"per-token\";r=9;t=6") == 0);
    CHECK(header(e, &d, TOLLGATE_HEADER_RETRY_AFTER) == NULL);

    d = decide(e, "POST", "tok-a", T0); /* 3 more */
    CHECK(d.allowed && d.remaining == 6);
    for (int i = 0; i < 2; i++) {
        CHECK(decide(e, "POST", "tok-a", T0).allowed);
    }
    d = decide(e, "POST", "tok-a", T0); /* 0 left */
    CHECK(!d.allowed);
    CHECK(d.reason == TOLLGATE_REASON_LIMITED);
    CHECK(d.decided_by == 0);
    CHECK(d.remaining == 0);
    CHECK(d.retry_after_ms == 18000); /* three emission intervals of 6 s */
    CHECK(strcmp(header(e, &d, TOLLGATE_HEADER_RETRY_AFTER), "18") == 0);
    CHECK(strcmp(header(e, &d, TOLLGATE_HEADER_RATELIMIT), "\"per-token\";r=0;t=18") == 0); /* t: until the request fits, as Retry-After */
    /* The GET still fits after 6 s, exactly. */
    CHECK(!decide(e, "GET", "tok-a", T0 + 6 * SEC - 1).allowed);
    CHECK(decide(e, "GET", "tok-a", T0 + 6 * SEC).allowed);

    /* A cost the limit can never admit. */
    tollgate_attr attrs[2];
    attrs[0] = attr("token", "tok-b");
    CHECK_OK(tollgate_engine_decide(e, attrs, 1, UINT64_C(1) << 62, T0, &d));
    CHECK(d.reason == TOLLGATE_REASON_CANNOT_PASS);
    CHECK(d.retry_after_ms == TOLLGATE_NEVER);
    CHECK(header(e, &d, TOLLGATE_HEADER_RETRY_AFTER) == NULL);
    /* The engine's own clock. */
    CHECK_OK(tollgate_engine_decide(e, attrs, 1, TOLLGATE_CLASS_COST, TOLLGATE_ENGINE_CLOCK, &d));
    CHECK(d.allowed && d.decided_by == 0);
    tollgate_engine_free(e);

    /* An explicit cost and an attribute of the host's own: the tightest limit decides. */
    e = engine_from(REGION_POLICY);
    attrs[1] = attr("region", "eu");
    CHECK_OK(tollgate_engine_decide(e, attrs, 2, 5, T0, &d));
    CHECK(d.allowed && d.decided_by == 1 && d.remaining == 0);
    CHECK_OK(tollgate_engine_decide(e, attrs, 2, 1, T0, &d));
    CHECK(!d.allowed && d.decided_by == 1);
    CHECK(strcmp(header(e, &d, TOLLGATE_HEADER_RATELIMIT), "\"per-region\";r=0;t=12") == 0);
    attrs[1] = attr("region", "us");
    CHECK_OK(tollgate_engine_decide(e, attrs, 2, 1, T0, &d));
    CHECK(d.allowed && d.decided_by == 1 && d.remaining == 4);
    /* A NULL value with length 0 is the empty value. */
    attrs[0].value = NULL;
    attrs[0].value_len = 0;
    CHECK_OK(tollgate_engine_decide(e, attrs, 1, 1, T0, &d));
    CHECK(d.allowed);
    tollgate_engine_free(e);
    e = engine_from(RATE_POLICY);

    /* Header errors: a small buffer says what it needs and writes nothing else. */
    d = decide(e, "GET", "tok-c", T0);
    char small[8];
    memset(small, 'x', sizeof small);
    size_t n = 0;
    CHECK_RC(tollgate_engine_header(e, &d, TOLLGATE_HEADER_POLICY, small, sizeof small, &n),
             TOLLGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK(n == strlen("\"per-token\";q=10;w=60") + 1);
    for (size_t i = 0; i < sizeof small; i++) {
        CHECK(small[i] == 'x');
    }
    CHECK_RC(tollgate_engine_header(e, &d, 3, small, sizeof small, &n), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tollgate_engine_header(e, NULL, 0, small, sizeof small, &n), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_header(NULL, &d, 0, small, sizeof small, &n), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_header(e, &d, 0, small, sizeof small, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_header(e, &d, 0, NULL, 100, &n), TOLLGATE_RESULT_NULL_PARAMETER);
    tollgate_decision forged = d;
    forged.reason = 42;
    CHECK_RC(tollgate_engine_header(e, &forged, 0, small, sizeof small, &n), TOLLGATE_RESULT_INVALID_ARGUMENT);
    forged = d;
    forged.decided_by = -7;
    CHECK_RC(tollgate_engine_header(e, &forged, 0, small, sizeof small, &n), TOLLGATE_RESULT_INVALID_ARGUMENT);
    forged = d;
    forged.quota.outcome = 9;
    CHECK_RC(tollgate_engine_header(e, &forged, 0, small, sizeof small, &n), TOLLGATE_RESULT_INVALID_ARGUMENT);
    forged = d;
    forged.decided_by = 1000; /* no such limit: no policy header, no crash */
    CHECK_RC(tollgate_engine_header(e, &forged, 0, small, sizeof small, &n), TOLLGATE_RESULT_NO_VALUE);

    tollgate_engine_free(e);
}

static void test_decide_errors(void) {
    tollgate_engine *e = engine_from(RATE_POLICY);
    tollgate_decision before;
    memset(&before, 0xAB, sizeof before);
    tollgate_decision d = before;
    tollgate_attr attrs[TOLLGATE_MAX_ATTRS + 1];
    attrs[0] = attr("token", "tok");

    CHECK_RC(tollgate_engine_decide(NULL, attrs, 1, 1, T0, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(last_error(), "engine") != NULL);
    CHECK_RC(tollgate_engine_decide(e, attrs, 1, 1, T0, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_decide(e, NULL, 1, 1, T0, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(last_error(), "attrs") != NULL);

    const char bad_value[] = "tok\xc3";
    attrs[0].value = bad_value;
    attrs[0].value_len = 4;
    CHECK_RC(tollgate_engine_decide(e, attrs, 1, 1, T0, &d), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK(strstr(last_error(), "\"token\"") != NULL);
    attrs[0] = attr("token", "tok");
    attrs[0].name = "tok\xff";
    CHECK_RC(tollgate_engine_decide(e, attrs, 1, 1, T0, &d), TOLLGATE_RESULT_INVALID_UTF8);
    attrs[0] = attr("", "x");
    CHECK_RC(tollgate_engine_decide(e, attrs, 1, 1, T0, &d), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "empty name") != NULL);
    attrs[0] = attr("token", "a");
    attrs[1] = attr("token", "b");
    CHECK_RC(tollgate_engine_decide(e, attrs, 2, 1, T0, &d), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "more than once") != NULL);
    attrs[0] = attr("region", "a");
    attrs[1] = attr("region", "b");
    CHECK_RC(tollgate_engine_decide(e, attrs, 2, 1, T0, &d), TOLLGATE_RESULT_INVALID_ARGUMENT);
    attrs[1].value = NULL;
    attrs[1].value_len = 3;
    attrs[1].name = "zone";
    attrs[1].name_len = 4;
    CHECK_RC(tollgate_engine_decide(e, attrs, 2, 1, T0, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    attrs[1] = attr("zone", "z");
    attrs[1].name = NULL;
    CHECK_RC(tollgate_engine_decide(e, attrs, 2, 1, T0, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    for (int i = 0; i < TOLLGATE_MAX_ATTRS + 1; i++) {
        attrs[i] = attr("token", "t");
    }
    CHECK_RC(tollgate_engine_decide(e, attrs, TOLLGATE_MAX_ATTRS + 1, 1, T0, &d),
             TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tollgate_engine_decide(e, attrs, SIZE_MAX, 1, T0, &d), TOLLGATE_RESULT_INVALID_ARGUMENT);
    /* Nothing was written by any failed call, and nothing was taken. */
    CHECK(memcmp(&d, &before, sizeof d) == 0);
    attrs[0] = attr("token", "tok");
    CHECK_OK(tollgate_engine_decide(e, attrs, 1, 10, T0, &d));
    CHECK(d.allowed && d.remaining == 0);

    /* Thirty-two distinct attributes are fine. */
    static char names[TOLLGATE_MAX_ATTRS][16];
    for (int i = 0; i < TOLLGATE_MAX_ATTRS; i++) {
        snprintf(names[i], sizeof names[i], "a%d", i);
        attrs[i] = attr(names[i], "v");
    }
    CHECK_OK(tollgate_engine_decide(e, attrs, TOLLGATE_MAX_ATTRS, 1, T0, &d));
    tollgate_engine_free(e);
}

static tollgate_str str_of(const char *s) {
    tollgate_str v = {s, strlen(s)};
    return v;
}

/* tollgate_engine_decide_request: the same decisions as tollgate_engine_decide, from a
 * zeroed struct with the fields set; every error path, writing nothing. */
static void test_decide_request(void) {
    tollgate_engine *e = engine_from(RATE_POLICY);
    tollgate_decision a, b;
    /* Two tokens, one decided through each entry point, step by step alike. */
    for (int i = 0; i < 5; i++) {
        a = decide(e, "POST", "tok-attrs", T0);
        tollgate_request r;
        memset(&r, 0, sizeof r);
        r.token = str_of("tok-fields");
        r.tenant = str_of("t2");
        r.method = str_of("POST");
        r.now_unix_ns = T0;
        CHECK_OK(tollgate_engine_decide_request(e, &r, &b));
        CHECK(a.allowed == b.allowed && a.reason == b.reason && a.decided_by == b.decided_by);
        CHECK(a.remaining == b.remaining && a.retry_after_ms == b.retry_after_ms);
        CHECK(a.reset_after_ms == b.reset_after_ms && a.limit == b.limit);
    }
    CHECK(!b.allowed && b.remaining == 1 && b.retry_after_ms == 12000); /* 2 units short */

    /* A zeroed struct: no attributes, the class's cost (write: 3), the engine's clock. */
    tollgate_request r;
    memset(&r, 0, sizeof r);
    CHECK_OK(tollgate_engine_decide_request(e, &r, &b));
    CHECK(b.allowed && b.decided_by == 0 && b.remaining == 7);
    /* An explicit cost; the method as a further attribute; an attribute of the host's. */
    tollgate_attr extra[2];
    extra[0] = attr("method", "GET");
    extra[1] = attr("region", "eu");
    r.token = str_of("tok-extra");
    r.attrs = extra;
    r.attrs_len = 2;
    r.now_unix_ns = T0;
    CHECK_OK(tollgate_engine_decide_request(e, &r, &b));
    CHECK(b.allowed && b.remaining == 9);
    r.explicit_cost = true;
    r.cost = 4;
    CHECK_OK(tollgate_engine_decide_request(e, &r, &b));
    CHECK(b.allowed && b.remaining == 5);

    /* Errors: each refused, named in the message, nothing written, nothing taken. */
    tollgate_decision before;
    memset(&before, 0xAB, sizeof before);
    tollgate_decision d = before;
    memset(&r, 0, sizeof r);
    r.token = str_of("tok-bad");
    r.now_unix_ns = T0;
    CHECK_RC(tollgate_engine_decide_request(NULL, &r, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_decide_request(e, NULL, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(last_error(), "request") != NULL);
    CHECK_RC(tollgate_engine_decide_request(e, &r, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    r.tenant.ptr = NULL;
    r.tenant.len = 2;
    CHECK_RC(tollgate_engine_decide_request(e, &r, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(last_error(), "request.tenant") != NULL);
    r.tenant = str_of("t\xc3");
    CHECK_RC(tollgate_engine_decide_request(e, &r, &d), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK(strstr(last_error(), "request.tenant is not UTF-8") != NULL);
    r.tenant.len = SIZE_MAX;
    CHECK_RC(tollgate_engine_decide_request(e, &r, &d), TOLLGATE_RESULT_INVALID_ARGUMENT);
    r.tenant = str_of("t1");
    extra[0] = attr("token", "again");
    r.attrs = extra;
    r.attrs_len = 1;
    CHECK_RC(tollgate_engine_decide_request(e, &r, &d), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "more than once") != NULL);
    r.attrs = NULL;
    CHECK_RC(tollgate_engine_decide_request(e, &r, &d), TOLLGATE_RESULT_NULL_PARAMETER);
    r.attrs_len = TOLLGATE_MAX_ATTRS + 1;
    CHECK_RC(tollgate_engine_decide_request(e, &r, &d), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK(memcmp(&d, &before, sizeof d) == 0);
    /* Non-ASCII UTF-8 is a value like any other. */
    r.attrs_len = 0;
    r.tenant = str_of("z\xc3\xbcrich");
    r.explicit_cost = true;
    r.cost = 10;
    CHECK_OK(tollgate_engine_decide_request(e, &r, &d));
    CHECK(d.allowed && d.remaining == 0);
    tollgate_engine_free(e);
}

/* Reads the next event into `buf`; returns 0 when there is none. */
static int next_event(const tollgate_engine *e, char *buf, size_t len) {
    size_t n = 0;
    tollgate_result rc = tollgate_engine_next_event(e, buf, len, &n);
    if (rc == TOLLGATE_RESULT_NO_EVENT) {
        return 0;
    }
    CHECK_RC(rc, TOLLGATE_RESULT_OK);
    CHECK(n == strlen(buf));
    return 1;
}

static void test_revocation_and_events(void) {
    tollgate_engine *e = engine_from(RATE_POLICY);
    char buf[512];
    CHECK(!next_event(e, buf, sizeof buf));

    /* Three denials within the window revoke the token automatically. */
    for (int i = 0; i < 10; i++) {
        CHECK(decide(e, "GET", "tok-x", T0).allowed);
    }
    for (int i = 0; i < 3; i++) {
        tollgate_decision d = decide(e, "GET", "tok-x", T0);
        CHECK(d.reason == TOLLGATE_REASON_LIMITED);
    }
    tollgate_decision d = decide(e, "GET", "tok-x", T0 + 3600 * SEC);
    CHECK(d.reason == TOLLGATE_REASON_REVOKED);
    CHECK(d.retry_after_ms == TOLLGATE_NEVER);
    bool yes = false;
    CHECK_OK(tollgate_engine_is_revoked(e, "tok-x", 5, &yes));
    CHECK(yes);

    /* The event waits when the buffer is too small, and nothing is lost. */
    char tiny[4];
    size_t n = 0;
    CHECK_RC(tollgate_engine_next_event(e, tiny, sizeof tiny, &n), TOLLGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK(n > sizeof tiny);
    CHECK(n <= sizeof buf);
    CHECK(next_event(e, buf, n));
    CHECK(strstr(buf, "\"kind\":\"revoked\"") != NULL);
    CHECK(strstr(buf, "\"automatic\":true") != NULL);
    /* The key only as a reference that shows none of it. */
    CHECK(strstr(buf, "\"key\":\"key#") != NULL);
    CHECK(strstr(buf, "tok-x") == NULL);
    CHECK(!next_event(e, buf, sizeof buf));

    /* By hand: revoke, revoke again, restore. */
    bool changed = false;
    CHECK_OK(tollgate_engine_revoke(e, "tok-y", 5, &changed));
    CHECK(changed);
    CHECK_OK(tollgate_engine_revoke(e, "tok-y", 5, &changed));
    CHECK(!changed);
    CHECK_OK(tollgate_engine_revoke(e, "tok-z", 5, NULL));
    CHECK(decide(e, "GET", "tok-y", T0).reason == TOLLGATE_REASON_REVOKED);
    CHECK_OK(tollgate_engine_restore(e, "tok-y", 5, &changed));
    CHECK(changed);
    CHECK_OK(tollgate_engine_restore(e, "tok-y", 5, &changed));
    CHECK(!changed);
    CHECK(decide(e, "GET", "tok-y", T0).allowed);
    CHECK(next_event(e, buf, sizeof buf) && strstr(buf, "\"automatic\":false") != NULL);
    CHECK(next_event(e, buf, sizeof buf) && strstr(buf, "\"kind\":\"revoked\"") != NULL);
    CHECK(next_event(e, buf, sizeof buf) && strstr(buf, "\"kind\":\"restored\"") != NULL);
    CHECK(!next_event(e, buf, sizeof buf));

    /* Errors. */
    CHECK_RC(tollgate_engine_revoke(NULL, "a", 1, &changed), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_revoke(e, NULL, 1, &changed), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_revoke(e, "\xff", 1, &changed), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK_RC(tollgate_engine_restore(e, "\xff", 1, &changed), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK_RC(tollgate_engine_is_revoked(e, "a", 1, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_is_revoked(NULL, "a", 1, &yes), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_next_event(e, buf, sizeof buf, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_next_event(NULL, buf, sizeof buf, &n), TOLLGATE_RESULT_NULL_PARAMETER);
    tollgate_engine_free(e);
}

static void test_quota(void) {
    tollgate_engine *e = engine_from(QUOTA_POLICY);
    char buf[512];
    tollgate_attr a[1];
    tollgate_decision d;

    /* The plan allows 10 calls; a warning at 8, an overage at 11, refused past 15. */
    a[0] = attr("token", "key-alice");
    for (int i = 1; i <= 15; i++) {
        CHECK_OK(tollgate_engine_decide(e, a, 1, TOLLGATE_CLASS_COST, T0, &d));
        CHECK(d.allowed);
        CHECK(d.quota.used == (uint64_t)i && d.quota.limit == 10);
        CHECK(d.quota.outcome == (i <= 10 ? TOLLGATE_QUOTA_OUTCOME_WITHIN : TOLLGATE_QUOTA_OUTCOME_OVER_LIMIT));
        CHECK(d.quota.resets_at_unix == INT64_C(1801439999) + 1); /* 2027-02-01T00:00:00Z */
    }
    CHECK_OK(tollgate_engine_decide(e, a, 1, TOLLGATE_CLASS_COST, T0, &d));
    CHECK(!d.allowed && d.reason == TOLLGATE_REASON_QUOTA_EXCEEDED);
    CHECK(d.quota.outcome == TOLLGATE_QUOTA_OUTCOME_REFUSED && d.quota.used == 15);
    CHECK(strcmp(header(e, &d, TOLLGATE_HEADER_POLICY), "\"quota\";q=10") == 0);
    CHECK(next_event(e, buf, sizeof buf));
    CHECK(strstr(buf, "\"kind\":\"warning\"") && strstr(buf, "\"company\":\"acme\"") &&
          strstr(buf, "\"used\":8"));
    CHECK(next_event(e, buf, sizeof buf));
    CHECK(strstr(buf, "\"kind\":\"overage\"") && strstr(buf, "\"used\":11") &&
          strstr(buf, "\"period\":\"2027-01\""));
    CHECK(!next_event(e, buf, sizeof buf));

    /* Unknown and disabled keys. */
    a[0] = attr("token", "key-nobody");
    CHECK_OK(tollgate_engine_decide(e, a, 1, TOLLGATE_CLASS_COST, T0, &d));
    CHECK(d.reason == TOLLGATE_REASON_UNKNOWN_KEY);
    a[0] = attr("token", "key-bob");
    CHECK_OK(tollgate_engine_decide(e, a, 1, TOLLGATE_CLASS_COST, T0, &d));
    CHECK(d.reason == TOLLGATE_REASON_REVOKED);

    /* Reservations in the next month: reserve, commit once, a retried commit counts
     * nothing, a refund gives everything back. */
    uint64_t feb = T0 + 31 * 24 * 3600 * SEC;
    tollgate_reservation *r = NULL;
    tollgate_quota_status st;
    CHECK_OK(tollgate_engine_quota_reserve(e, "key-alice", 9, 4, feb, &r, &st));
    CHECK(r != NULL && st.outcome == TOLLGATE_QUOTA_OUTCOME_WITHIN && st.used == 4);
    uint32_t outcome = 99;
    CHECK_RC(tollgate_reservation_commit(r, 2, "\xff", 1, &outcome), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK(outcome == 99); /* the reservation is still ours after a bad argument */
    CHECK_OK(tollgate_reservation_commit(r, 2, "req-1", 5, &outcome));
    CHECK(outcome == TOLLGATE_COMMIT_OUTCOME_COMMITTED);
    CHECK_OK(tollgate_engine_quota_reserve(e, "key-alice", 9, 4, feb, &r, &st));
    CHECK(st.used == 2 + 4);
    CHECK_OK(tollgate_reservation_commit(r, 4, "req-1", 5, &outcome));
    CHECK(outcome == TOLLGATE_COMMIT_OUTCOME_DUPLICATE);
    CHECK_OK(tollgate_engine_quota_reserve(e, "key-alice", 9, 3, feb, &r, &st));
    CHECK(st.used == 2 + 3);
    CHECK_OK(tollgate_reservation_refund(r));
    CHECK_OK(tollgate_engine_quota_reserve(e, "key-alice", 9, 1, feb, &r, &st));
    CHECK(st.used == 3);
    CHECK_OK(tollgate_reservation_commit(r, 1, "req-2", 5, NULL));
    CHECK_OK(tollgate_reservation_refund(NULL));
    /* A final cost above TOLLGATE_MAX_COMMIT_COST is refused before anything is settled
     * (UINT64_MAX used to wrap usage below what it was): the reservation is still ours.
     * A commit that crosses the warning raises it. */
    CHECK_OK(tollgate_engine_quota_reserve(e, "key-alice", 9, 1, feb, &r, &st));
    CHECK(st.used == 4);
    outcome = 99;
    CHECK_RC(tollgate_reservation_commit(r, UINT64_MAX, "req-4", 5, &outcome), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "TOLLGATE_MAX_COMMIT_COST") != NULL);
    CHECK_RC(tollgate_reservation_commit(r, TOLLGATE_MAX_COMMIT_COST + 1, "req-4", 5, &outcome),
             TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK(outcome == 99);
    CHECK(!next_event(e, buf, sizeof buf));
    CHECK_OK(tollgate_reservation_commit(r, 5, "req-4", 5, &outcome));
    CHECK(outcome == TOLLGATE_COMMIT_OUTCOME_COMMITTED);
    CHECK(next_event(e, buf, sizeof buf));
    CHECK(strstr(buf, "\"kind\":\"warning\"") && strstr(buf, "\"used\":8") &&
          strstr(buf, "\"period\":\"2027-02\""));
    CHECK(!next_event(e, buf, sizeof buf));
    /* Past the hard cap the reservation holds nothing. */
    CHECK_OK(tollgate_engine_quota_reserve(e, "key-alice", 9, 100, feb, &r, &st));
    CHECK(st.outcome == TOLLGATE_QUOTA_OUTCOME_REFUSED && st.used == 8);
    CHECK_OK(tollgate_reservation_refund(r));

    tollgate_reservation *keep = (tollgate_reservation *)&checks_run; /* never dereferenced */
    r = keep;
    CHECK_RC(tollgate_engine_quota_reserve(e, "key-nobody", 10, 1, feb, &r, &st), TOLLGATE_RESULT_UNKNOWN_KEY);
    CHECK(strstr(last_error(), "key#") != NULL && strstr(last_error(), "nobo") == NULL);
    CHECK_RC(tollgate_engine_quota_reserve(e, "key-bob", 7, 1, feb, &r, &st), TOLLGATE_RESULT_DISABLED_USER);
    CHECK_RC(tollgate_engine_quota_reserve(e, "key-alice", 9, 1, feb, NULL, &st), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_quota_reserve(e, "key-alice", 9, 1, feb, &r, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_quota_reserve(e, NULL, 9, 1, feb, &r, &st), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_reservation_commit(NULL, 1, "k", 1, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(r == keep);
    tollgate_engine *plain = engine_from(RATE_POLICY);
    CHECK_RC(tollgate_engine_quota_reserve(plain, "key-alice", 9, 1, feb, &r, &st), TOLLGATE_RESULT_NO_QUOTA);
    tollgate_engine_free(plain);

    /* A reservation keeps its ledger alive: it may be settled after the engine is gone. */
    CHECK_OK(tollgate_engine_quota_reserve(e, "key-alice", 9, 1, feb, &r, &st));
    tollgate_engine_free(e);
    CHECK_OK(tollgate_reservation_commit(r, 1, "req-3", 5, &outcome));
    CHECK(outcome == TOLLGATE_COMMIT_OUTCOME_COMMITTED);
}

static void test_reload_and_metrics(void) {
    tollgate_engine *e = engine_from(RATE_POLICY);
    for (int i = 0; i < 4; i++) {
        CHECK(decide(e, "GET", "tok-r", TOLLGATE_ENGINE_CLOCK).allowed);
    }
    /* Raise per-token to 20/min (the 4 used carry over), add per-token-hour. Carrying
     * over works at the engine's clock, so these decisions are at it too (a few
     * milliseconds apart: the 3 s emission interval leaves room for slow machines). */
    const char *raised =
        "version = 1\n"
        "[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"20/min\"\n"
        "[[limit]]\nname = \"per-tenant\"\nkey = [\"tenant\"]\nrate = \"100/min\"\n"
        "[[limit]]\nname = \"per-token-hour\"\nkey = [\"token\"]\nrate = \"1000/h\"\n";
    tollgate_reload_report rep;
    CHECK_OK(tollgate_engine_reload_toml(e, raised, strlen(raised), &rep));
    CHECK(rep.kept == 1 && rep.carried == 1 && rep.fresh == 1 && rep.removed == 0);
    tollgate_decision d = decide(e, "GET", "tok-r", TOLLGATE_ENGINE_CLOCK);
    CHECK(d.allowed && d.limit == 20 && d.remaining == 15 && d.generation == 2);

    /* A bad reload keeps the policy in force. */
    const char *bad = "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"0/s\"\n";
    CHECK_RC(tollgate_engine_reload_toml(e, bad, strlen(bad), &rep), TOLLGATE_RESULT_POLICY);
    CHECK(strstr(last_error(), "rate") != NULL);
    d = decide(e, "GET", "tok-r", TOLLGATE_ENGINE_CLOCK);
    CHECK(d.allowed && d.remaining == 14 && d.generation == 2);
    CHECK_RC(tollgate_engine_reload_toml(e, "\xff", 1, NULL), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK_RC(tollgate_engine_reload_toml(NULL, raised, strlen(raised), NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    const char *missing = "/nonexistent/policy.toml";
    CHECK_RC(tollgate_engine_reload_file(e, missing, strlen(missing), NULL), TOLLGATE_RESULT_POLICY);

    /* From a file, with a deprecation warning and no report wanted. */
    char path[] = "/tmp/tollgate-reload-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *deprecated = "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nper_second = 100\n";
    CHECK(write(fd, deprecated, strlen(deprecated)) == (ssize_t)strlen(deprecated));
    close(fd);
    CHECK_OK(tollgate_engine_reload_file(e, path, strlen(path), NULL));
    unlink(path);
    char text[4096];
    size_t n = 0;
    CHECK_OK(tollgate_engine_warnings(e, text, sizeof text, &n));
    CHECK(strstr(text, "per_second") != NULL);
    d = decide(e, "GET", "tok-r", TOLLGATE_ENGINE_CLOCK);
    CHECK(d.allowed && d.limit == 100 && d.generation == 3);

    /* Metrics: a small buffer says how much is needed. */
    char small[16];
    CHECK_RC(tollgate_engine_metrics(e, small, sizeof small, &n), TOLLGATE_RESULT_BUFFER_TOO_SMALL);
    size_t needed = n;
    char *big = malloc(needed);
    CHECK(big != NULL);
    CHECK_OK(tollgate_engine_metrics(e, big, needed, &n));
    CHECK(n + 1 == needed && strlen(big) == n);
    CHECK(strstr(big, "tollgate_decisions_total") != NULL || strstr(big, "tollgate_") != NULL);
    CHECK(strstr(big, "per-token") != NULL);
    free(big);
    CHECK_RC(tollgate_engine_metrics(NULL, small, sizeof small, &n), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_warnings(e, text, sizeof text, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    tollgate_engine_free(e);
}

/* The stateless forms (issue 21): tollgate_result_message() for any code, and the _err
 * entry points write their own call's message into the caller's buffer. */
static void test_stateless_errors(void) {
    for (uint32_t code = 0; code <= 19; code++) {
        const char *m = tollgate_result_message(code);
        CHECK(m != NULL && m[0] != '\0' && strcmp(m, "unknown result code") != 0);
    }
    CHECK(strcmp(tollgate_result_message(TOLLGATE_RESULT_BUFFER_TOO_SMALL),
                 "the caller's buffer is too small") == 0);
    CHECK(strcmp(tollgate_result_message(20), "unknown result code") == 0);
    CHECK(strcmp(tollgate_result_message(UINT32_MAX), "unknown result code") == 0);

    tollgate_engine *sentinel = (tollgate_engine *)&checks_run; /* never dereferenced */
    tollgate_engine *e = sentinel;
    const char *bad = "version = 1\n[[limit]]\nname = \"x\"\nkey = [\"token\"]\nrate = \"ten per second\"\n";
    char err[512];
    size_t err_n = 12345;
    CHECK_RC(tollgate_engine_from_toml_err(bad, strlen(bad), &e, err, sizeof err, &err_n),
             TOLLGATE_RESULT_POLICY);
    CHECK(e == sentinel);
    CHECK(strstr(err, "5:") != NULL && strstr(err, "rate") != NULL);
    CHECK(err_n == strlen(err));
    CHECK(strcmp(err, last_error()) == 0);
    size_t whole = err_n;

    /* A small buffer: cut and NUL-terminated; *err_n is the whole length. */
    char small[6];
    memset(small, 'x', sizeof small);
    CHECK_RC(tollgate_engine_from_toml_err(bad, strlen(bad), &e, small, sizeof small, &err_n),
             TOLLGATE_RESULT_POLICY);
    CHECK(err_n == whole && small[5] == '\0' && strncmp(small, err, 5) == 0);
    /* No buffer, no length: the same result. */
    CHECK_RC(tollgate_engine_from_toml_err(bad, strlen(bad), &e, NULL, 100, NULL), TOLLGATE_RESULT_POLICY);
    CHECK_RC(tollgate_engine_from_toml_err(bad, strlen(bad), &e, small, 0, NULL), TOLLGATE_RESULT_POLICY);
    CHECK(e == sentinel);
    CHECK_RC(tollgate_engine_from_toml_err(bad, strlen(bad), NULL, err, sizeof err, &err_n),
             TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(err, "out") != NULL);

    /* Files. */
    const char *missing = "/nonexistent/tollgate/policy.toml";
    CHECK_RC(tollgate_engine_from_file_err(missing, strlen(missing), &e, err, sizeof err, &err_n),
             TOLLGATE_RESULT_POLICY);
    CHECK(strstr(err, missing) != NULL && err_n == strlen(err));

    /* Success: an empty message. */
    CHECK_OK(tollgate_engine_from_toml_err(RATE_POLICY, strlen(RATE_POLICY), &e, err, sizeof err, &err_n));
    CHECK(e != sentinel && err[0] == '\0' && err_n == 0);

    /* Reloads: a bad one keeps the policy and says why, in the buffer. */
    tollgate_reload_report rep;
    const char *zero = "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"0/s\"\n";
    CHECK_RC(tollgate_engine_reload_toml_err(e, zero, strlen(zero), &rep, err, sizeof err, &err_n),
             TOLLGATE_RESULT_POLICY);
    CHECK(strstr(err, "rate") != NULL);
    CHECK_RC(tollgate_engine_reload_file_err(e, missing, strlen(missing), NULL, err, sizeof err, &err_n),
             TOLLGATE_RESULT_POLICY);
    CHECK(strstr(err, missing) != NULL);
    CHECK_RC(tollgate_engine_reload_toml_err(NULL, zero, strlen(zero), NULL, err, sizeof err, &err_n),
             TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK(strstr(err, "engine") != NULL);
    CHECK_OK(tollgate_engine_reload_toml_err(e, RATE_POLICY, strlen(RATE_POLICY), &rep, err, sizeof err, &err_n));
    CHECK(err[0] == '\0' && err_n == 0 && rep.kept == 2);
    tollgate_engine_free(e);
}

static void test_last_error(void) {
    tollgate_engine *e = NULL;
    CHECK_RC(tollgate_engine_from_toml(NULL, 1, &e), TOLLGATE_RESULT_NULL_PARAMETER);
    char small[4];
    size_t n = 0;
    CHECK_RC(tollgate_last_error(small, sizeof small, &n), TOLLGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK(n == strlen("policy is NULL") + 1);
    CHECK_RC(tollgate_last_error(small, sizeof small, NULL), TOLLGATE_RESULT_NULL_PARAMETER);
    /* Reading the message does not change it. */
    CHECK(strcmp(last_error(), "policy is NULL") == 0);
    /* A successful call leaves it as it was. */
    tollgate_engine *ok = engine_from(RATE_POLICY);
    CHECK(strcmp(last_error(), "policy is NULL") == 0);
    tollgate_engine_free(ok);
}


/* The administration API: a company, its users and keys changed while deciding. */
static tollgate_reason key_reason(const tollgate_engine *e, const char *key) {
    return decide(e, "GET", key, TOLLGATE_ENGINE_CLOCK).reason;
}

#define S(x) x, strlen(x)

static void test_admin(void) {
    tollgate_engine *e = engine_from(QUOTA_POLICY);
    char buf[512];
    CHECK_OK(tollgate_engine_admin_add_company(e, S("globex"), 2, 0));
    CHECK_RC(tollgate_engine_admin_add_company(e, S("globex"), 2, 0), TOLLGATE_RESULT_DUPLICATE);
    CHECK_OK(tollgate_engine_admin_add_user(e, S("gil"), S("globex")));
    CHECK_RC(tollgate_engine_admin_add_user(e, S("gil"), S("nowhere")), TOLLGATE_RESULT_DUPLICATE);
    CHECK_RC(tollgate_engine_admin_add_user(e, S("hal"), S("nowhere")), TOLLGATE_RESULT_UNKNOWN_COMPANY);
    CHECK_OK(tollgate_engine_admin_add_key(e, S("key-gil-1"), S("gil")));
    CHECK_RC(tollgate_engine_admin_add_key(e, S("key-gil-1"), S("gil")), TOLLGATE_RESULT_DUPLICATE);
    CHECK_RC(tollgate_engine_admin_add_key(e, S("key-x"), S("nobody")), TOLLGATE_RESULT_UNKNOWN_USER);
    CHECK(key_reason(e, "key-gil-1") == TOLLGATE_REASON_ALLOWED);

    /* Rotation: the new key serves at once, the old one is refused at once. */
    CHECK_OK(tollgate_engine_admin_rotate_key(e, S("key-gil-1"), S("key-gil-2"), 0));
    CHECK(key_reason(e, "key-gil-1") == TOLLGATE_REASON_UNKNOWN_KEY);
    CHECK(key_reason(e, "key-gil-2") == TOLLGATE_REASON_ALLOWED);
    /* With a grace period the old key still works meanwhile. */
    CHECK_OK(tollgate_engine_admin_rotate_key(e, S("key-gil-2"), S("key-gil-3"), 3600000));
    CHECK(key_reason(e, "key-gil-2") == TOLLGATE_REASON_ALLOWED);
    CHECK(key_reason(e, "key-gil-3") == TOLLGATE_REASON_ALLOWED);
    CHECK_OK(tollgate_engine_admin_remove_key(e, S("key-gil-2")));
    CHECK(key_reason(e, "key-gil-2") == TOLLGATE_REASON_UNKNOWN_KEY);
    CHECK_RC(tollgate_engine_admin_remove_key(e, S("key-gil-2")), TOLLGATE_RESULT_UNKNOWN_KEY);

    /* Users: disable, enable, remove. */
    CHECK_OK(tollgate_engine_admin_user(e, S("gil"), 0));
    CHECK(key_reason(e, "key-gil-3") == TOLLGATE_REASON_REVOKED);
    CHECK_OK(tollgate_engine_admin_user(e, S("gil"), 1));
    CHECK(key_reason(e, "key-gil-3") == TOLLGATE_REASON_ALLOWED);
    CHECK_RC(tollgate_engine_admin_user(e, S("gil"), 9), TOLLGATE_RESULT_INVALID_ARGUMENT);

    /* Units, plans, the company's limit. */
    CHECK_OK(tollgate_engine_admin_set_company_units(e, S("globex"), 3, 1));
    CHECK_OK(tollgate_engine_admin_set_company_plans(e, S("globex"), S("")));
    CHECK_RC(tollgate_engine_admin_set_company_plans(e, S("globex"), S("gold")), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK_OK(tollgate_engine_admin_set_company_limit(e, S("globex"), true, 500));
    tollgate_decision d = decide(e, "GET", "key-gil-3", TOLLGATE_ENGINE_CLOCK);
    CHECK(d.allowed && d.quota.limit == 500);
    CHECK_OK(tollgate_engine_admin_set_company_limit(e, S("globex"), false, 0));

    /* Suspend, resume, terminate (for good). */
    CHECK_OK(tollgate_engine_admin_company(e, S("globex"), 0));
    CHECK(key_reason(e, "key-gil-3") == TOLLGATE_REASON_REVOKED);
    CHECK_OK(tollgate_engine_admin_company(e, S("globex"), 1));
    CHECK(key_reason(e, "key-gil-3") == TOLLGATE_REASON_ALLOWED);
    CHECK_OK(tollgate_engine_admin_company(e, S("globex"), 2));
    CHECK(key_reason(e, "key-gil-3") == TOLLGATE_REASON_TERMINATED);
    CHECK(strcmp(tollgate_reason_name(TOLLGATE_REASON_TERMINATED), "terminated") == 0);
    CHECK_RC(tollgate_engine_admin_company(e, S("globex"), 1), TOLLGATE_RESULT_COMPANY_TERMINATED);
    CHECK(strcmp(tollgate_result_name(TOLLGATE_RESULT_COMPANY_TERMINATED), "company_terminated") == 0);
    CHECK_RC(tollgate_engine_admin_company(e, S("globex"), 7), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tollgate_engine_admin_company(e, S("nowhere"), 0), TOLLGATE_RESULT_UNKNOWN_COMPANY);

    /* Overrides: the key keeps its used capacity (on a limit of 3/h, so that no
     * capacity comes back while the test runs, however slowly). */
    static const char HOURLY[] =
        "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"3/h\"\n";
    tollgate_engine *h = engine_from(HOURLY);
    for (int i = 0; i < 3; i++) {
        CHECK(key_reason(h, "key-alice") == TOLLGATE_REASON_ALLOWED);
    }
    CHECK(key_reason(h, "key-alice") == TOLLGATE_REASON_LIMITED);
    CHECK_OK(tollgate_engine_admin_set_override(h, S("per-token"), S("{ token = \"key-alice\" }"), S("4/h")));
    CHECK(key_reason(h, "key-alice") == TOLLGATE_REASON_ALLOWED);
    CHECK(key_reason(h, "key-alice") == TOLLGATE_REASON_LIMITED);
    CHECK_OK(tollgate_engine_admin_remove_override(h, S("per-token"), S("token = \"key-alice\"")));
    CHECK(key_reason(h, "key-alice") == TOLLGATE_REASON_LIMITED);
    CHECK_RC(tollgate_engine_admin_remove_override(h, S("per-token"), S("token = \"key-alice\"")), TOLLGATE_RESULT_UNKNOWN_LIMIT);
    CHECK_RC(tollgate_engine_admin_set_override(h, S("nope"), S("token = \"a\""), S("1/h")), TOLLGATE_RESULT_UNKNOWN_LIMIT);
    CHECK_RC(tollgate_engine_admin_set_override(h, S("per-token"), S("token = 3"), S("1/h")), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tollgate_engine_admin_set_override(h, S("per-token"), S("{"), S("1/h")), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tollgate_engine_admin_set_override(h, S("per-token"), S("token = \"a\""), S("fast")), TOLLGATE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tollgate_engine_admin_set_override(h, S("per-token"), S("route = \"/x\""), S("1/h")), TOLLGATE_RESULT_INVALID_ARGUMENT);
    while (next_event(h, buf, sizeof buf)) {
        CHECK(strstr(buf, "key-alice") == NULL);
    }
    tollgate_engine_free(h);

    /* A token suspended for a while. */
    bool changed = false;
    CHECK_OK(tollgate_engine_admin_suspend_token(e, S("key-alice"), 60000, &changed));
    CHECK(changed);
    CHECK(key_reason(e, "key-alice") == TOLLGATE_REASON_REVOKED);

    /* Every change was an event, keys only as references. */
    int admin_events = 0;
    while (next_event(e, buf, sizeof buf)) {
        if (strstr(buf, "\"kind\":\"admin\"") != NULL) {
            admin_events++;
        }
        CHECK(strstr(buf, "key-gil") == NULL && strstr(buf, "key-alice") == NULL);
    }
    CHECK(admin_events >= 15);

    /* Errors: NULL, bad UTF-8, no quota. */
    CHECK_RC(tollgate_engine_admin_add_company(NULL, S("x"), 0, 0), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_admin_add_company(e, NULL, 1, 0, 0), TOLLGATE_RESULT_NULL_PARAMETER);
    CHECK_RC(tollgate_engine_admin_add_user(e, "\xff", 1, S("acme")), TOLLGATE_RESULT_INVALID_UTF8);
    CHECK_RC(tollgate_engine_admin_rotate_key(e, S("a"), NULL, 1, 0), TOLLGATE_RESULT_NULL_PARAMETER);
    tollgate_engine_free(e);
    tollgate_engine *plain = engine_from(RATE_POLICY);
    CHECK_RC(tollgate_engine_admin_add_user(plain, S("u"), S("c")), TOLLGATE_RESULT_NO_QUOTA);
    tollgate_engine_free(plain);
}

int main(void) {
    test_versions();
    test_build_errors();
    test_decide_and_headers();
    test_decide_errors();
    test_decide_request();
    test_revocation_and_events();
    test_quota();
    test_admin();
    test_reload_and_metrics();
    test_last_error();
    test_stateless_errors();
    printf("api: %d checks passed\n", checks_run);
    return 0;
}
