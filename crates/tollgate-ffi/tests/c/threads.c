/* Many threads share one engine: the totals allowed must match the policy exactly.
 *
 * Every decision is at the same explicit time, so nothing refills while the threads
 * race: each token's limit admits exactly its burst, and the tenant's limit (smaller
 * than the tokens' together) exactly its own. Requests a later limit denies must give
 * back what earlier limits took (all or nothing), or the token totals would come out
 * short. A reader thread polls events and metrics meanwhile, and a reload of an
 * unchanged policy must not disturb anything. Half the threads decide through
 * tollgate_engine_decide, half through tollgate_engine_decide_request. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

#define THREADS 8
#define PER_THREAD 2000
#define TOKENS 4
#define TOKEN_BURST 1000
#define TENANT_BURST 3000
#define NOW UINT64_C(1800000000000000000)

static const char POLICY[] =
    "version = 1\n"
    "[[limit]]\n"
    "name = \"per-token\"\n"
    "key = [\"token\"]\n"
    "rate = \"1000/h\"\n"
    "\n"
    "[[limit]]\n"
    "name = \"per-tenant\"\n"
    "key = [\"tenant\"]\n"
    "rate = \"3000/h\"\n";

static const char *const TOKEN_NAMES[TOKENS] = {"tok-0", "tok-1", "tok-2", "tok-3"};

struct worker {
    const tollgate_engine *engine;
    int id;
    long allowed[TOKENS];
    long limited;
};

static void *work(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        int t = (i + w->id) % TOKENS;
        tollgate_decision d;
        if (w->id % 2 == 0) {
            tollgate_attr attrs[2];
            attrs[0] = attr("token", TOKEN_NAMES[t]);
            attrs[1] = attr("tenant", "shared-tenant");
            CHECK_OK(tollgate_engine_decide(w->engine, attrs, 2, 1, NOW, &d));
        } else {
            /* Half the threads decide through the struct entry point. */
            tollgate_request r;
            memset(&r, 0, sizeof r);
            r.token.ptr = TOKEN_NAMES[t];
            r.token.len = strlen(TOKEN_NAMES[t]);
            r.tenant.ptr = "shared-tenant";
            r.tenant.len = strlen("shared-tenant");
            r.explicit_cost = true;
            r.cost = 1;
            r.now_unix_ns = NOW;
            CHECK_OK(tollgate_engine_decide_request(w->engine, &r, &d));
        }
        if (d.allowed) {
            w->allowed[t]++;
        } else {
            CHECK(d.reason == TOLLGATE_REASON_LIMITED);
            CHECK(d.retry_after_ms > 0);
            w->limited++;
        }
    }
    return NULL;
}

static volatile int done = 0;

static void *observe(void *arg) {
    const tollgate_engine *e = arg;
    static char buf[65536]; /* the metrics text of every family (about 8 KB for this policy) */
    size_t n;
    long polls = 0;
    while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        CHECK_RC(tollgate_engine_next_event(e, buf, sizeof buf, &n), TOLLGATE_RESULT_NO_EVENT);
        CHECK_OK(tollgate_engine_metrics(e, buf, sizeof buf, &n));
        if (polls++ == 10) {
            tollgate_reload_report rep;
            CHECK_OK(tollgate_engine_reload_toml(e, POLICY, strlen(POLICY), &rep));
            CHECK(rep.kept == 2 && rep.carried == 0 && rep.fresh == 0);
        }
    }
    return NULL;
}

int main(void) {
    tollgate_engine *e = NULL;
    CHECK_OK(tollgate_engine_from_toml(POLICY, strlen(POLICY), &e));

    pthread_t threads[THREADS], observer;
    struct worker workers[THREADS];
    memset(workers, 0, sizeof workers);
    CHECK(pthread_create(&observer, NULL, observe, e) == 0);
    for (int i = 0; i < THREADS; i++) {
        workers[i].engine = e;
        workers[i].id = i;
        CHECK(pthread_create(&threads[i], NULL, work, &workers[i]) == 0);
    }
    long total = 0, limited = 0, per_token[TOKENS] = {0};
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        for (int t = 0; t < TOKENS; t++) {
            per_token[t] += workers[i].allowed[t];
            total += workers[i].allowed[t];
        }
        limited += workers[i].limited;
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    CHECK(pthread_join(observer, NULL) == 0);

    printf("threads: %d threads x %d decisions: %ld allowed (", THREADS, PER_THREAD, total);
    for (int t = 0; t < TOKENS; t++) {
        printf("%s%ld", t ? " + " : "", per_token[t]);
    }
    printf("), %ld limited\n", limited);
    CHECK(total == TENANT_BURST);
    CHECK(total + limited == (long)THREADS * PER_THREAD);
    for (int t = 0; t < TOKENS; t++) {
        CHECK(per_token[t] <= TOKEN_BURST);
    }

    /* Whatever is left: each token has exactly its burst minus what it was allowed. */
    for (int t = 0; t < TOKENS; t++) {
        tollgate_attr a = attr("token", TOKEN_NAMES[t]);
        tollgate_decision d;
        CHECK_OK(tollgate_engine_decide(e, &a, 1, 0, NOW, &d));
        CHECK(d.remaining == (uint64_t)(TOKEN_BURST - per_token[t]));
    }
    /* The tenant has nothing left. */
    tollgate_attr a = attr("tenant", "shared-tenant");
    tollgate_decision d;
    CHECK_OK(tollgate_engine_decide(e, &a, 1, 1, NOW, &d));
    CHECK(!d.allowed && d.remaining == 0);

    tollgate_engine_free(e);
    printf("threads: %d checks passed\n", checks_run);
    return 0;
}
