/* An example gateway: reads requests, one per line, and answers each as a gateway
 * would: 200, or 429 (403 when the token is revoked), with the RateLimit-Policy,
 * RateLimit and Retry-After headers. Events (revoked tokens, quota notices) are polled
 * after each request, as a gateway's timer would, and logged to stderr.
 *
 *   make -C crates/tollgate-ffi gateway
 *   target/ffi-c/gateway crates/tollgate-ffi/examples/gateway.toml \
 *       < crates/tollgate-ffi/examples/requests.txt
 *
 * Input lines: `METHOD ROUTE TOKEN TENANT CLIENT` (missing fields are absent
 * attributes); `reload` re-reads the policy file; `metrics` prints Prometheus text;
 * `#` starts a comment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate.h"

static void fail(const char *what) {
    char msg[1024];
    size_t n = 0;
    tollgate_last_error(msg, sizeof msg, &n);
    fprintf(stderr, "gateway: %s: %s\n", what, msg);
    exit(1);
}

static void print_header(const tollgate_engine *engine, const tollgate_decision *d, uint32_t which) {
    char value[256];
    size_t n = 0;
    if (tollgate_engine_header(engine, d, which, value, sizeof value, &n) == TOLLGATE_RESULT_OK) {
        printf("%s: %s\n", tollgate_header_name(which), value);
    }
}

static void drain_events(const tollgate_engine *engine) {
    char event[1024];
    size_t n = 0;
    while (tollgate_engine_next_event(engine, event, sizeof event, &n) == TOLLGATE_RESULT_OK) {
        fprintf(stderr, "event: %s\n", event);
    }
}

static void print_metrics(const tollgate_engine *engine) {
    /* The text can grow between two calls (a counter gains a digit): ask for the size,
     * add some slack, and ask again with the size the library reports until it fits. */
    size_t n = 0;
    char probe[1];
    tollgate_result rc = tollgate_engine_metrics(engine, probe, sizeof probe, &n);
    char *text = NULL;
    for (int attempt = 0; rc == TOLLGATE_RESULT_BUFFER_TOO_SMALL && attempt < 8; attempt++) {
        size_t size = n + n / 8 + 64;
        free(text);
        text = malloc(size);
        if (text == NULL) {
            fail("metrics");
        }
        rc = tollgate_engine_metrics(engine, text, size, &n);
    }
    if (rc != TOLLGATE_RESULT_OK || text == NULL) {
        fail("metrics");
    }
    fputs(text, stdout);
    free(text);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s POLICY.toml < requests\n", argv[0]);
        return 2;
    }
    if (tollgate_abi_version() != TOLLGATE_ABI_VERSION) {
        fprintf(stderr, "gateway: built against ABI %d, linked with ABI %u\n", TOLLGATE_ABI_VERSION,
                tollgate_abi_version());
        return 1;
    }
    const char *path = argv[1];
    tollgate_engine *engine = NULL;
    if (tollgate_engine_from_file(path, strlen(path), &engine) != TOLLGATE_RESULT_OK) {
        fail("loading the policy");
    }

    char line[4096];
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        if (strcmp(line, "metrics") == 0) {
            print_metrics(engine);
            continue;
        }
        if (strcmp(line, "reload") == 0) {
            tollgate_reload_report r;
            if (tollgate_engine_reload_file(engine, path, strlen(path), &r) != TOLLGATE_RESULT_OK) {
                char msg[1024];
                size_t n = 0;
                tollgate_last_error(msg, sizeof msg, &n);
                fprintf(stderr, "reload refused, the old policy stays: %s\n", msg);
            } else {
                fprintf(stderr, "reloaded: %zu kept, %zu carried, %zu fresh, %zu removed\n", r.kept,
                        r.carried, r.fresh, r.removed);
            }
            continue;
        }

        /* Split the line into up to five fields. */
        static const char *const names[] = {"method", "route", "token", "tenant", "client"};
        tollgate_attr attrs[5];
        size_t n_attrs = 0;
        char *save = NULL;
        for (char *field = strtok_r(line, " \t", &save); field != NULL && n_attrs < 5;
             field = strtok_r(NULL, " \t", &save)) {
            attrs[n_attrs].name = names[n_attrs];
            attrs[n_attrs].name_len = strlen(names[n_attrs]);
            attrs[n_attrs].value = field;
            attrs[n_attrs].value_len = strlen(field);
            n_attrs++;
        }

        tollgate_decision d;
        tollgate_result rc = tollgate_engine_decide(engine, attrs, n_attrs, TOLLGATE_CLASS_COST,
                                                    TOLLGATE_ENGINE_CLOCK, &d);
        if (rc != TOLLGATE_RESULT_OK) {
            char msg[1024];
            size_t n = 0;
            tollgate_last_error(msg, sizeof msg, &n);
            printf("400 Bad Request\n%s\n\n", msg);
            continue;
        }
        if (d.allowed) {
            printf("200 OK\n");
        } else if (d.reason == TOLLGATE_REASON_REVOKED || d.reason == TOLLGATE_REASON_UNKNOWN_KEY ||
                   d.reason == TOLLGATE_REASON_TERMINATED) {
            printf("403 Forbidden (%s)\n", tollgate_reason_name(d.reason));
        } else if (d.reason == TOLLGATE_REASON_UNAVAILABLE || d.reason == TOLLGATE_REASON_JOURNAL_FAILING) {
            printf("503 Service Unavailable (%s)\n", tollgate_reason_name(d.reason));
        } else {
            printf("429 Too Many Requests (%s)\n", tollgate_reason_name(d.reason));
        }
        print_header(engine, &d, TOLLGATE_HEADER_POLICY);
        print_header(engine, &d, TOLLGATE_HEADER_RATELIMIT);
        print_header(engine, &d, TOLLGATE_HEADER_RETRY_AFTER);
        printf("\n");
        fflush(stdout);
        drain_events(engine);
    }
    tollgate_engine_free(engine);
    return 0;
}
