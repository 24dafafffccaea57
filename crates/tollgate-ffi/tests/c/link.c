/* A program as a user of the installed library writes it: built by tests/c/package.sh
 * through `pkg-config --cflags --libs tollgate` (shared, then --static). It prints the
 * library's ABI version (the script compares it with the SONAME), checks it against the
 * header's, and makes one engine decide. */
#include <stdio.h>
#include <string.h>

#include <tollgate.h>

static const char POLICY[] =
    "version = 1\n"
    "[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"2/min\"\n";

int main(void) {
    if (tollgate_abi_version() != TOLLGATE_ABI_VERSION) {
        fprintf(stderr, "link: library ABI %u, header ABI %u\n", tollgate_abi_version(),
                (unsigned)TOLLGATE_ABI_VERSION);
        return 1;
    }
    char err[256];
    size_t err_n = 0;
    tollgate_engine *engine = NULL;
    if (tollgate_engine_from_toml_err(POLICY, strlen(POLICY), &engine, err, sizeof err, &err_n) !=
        TOLLGATE_RESULT_OK) {
        fprintf(stderr, "link: %s\n", err);
        return 1;
    }
    tollgate_request request;
    memset(&request, 0, sizeof request);
    request.token.ptr = "t1";
    request.token.len = 2;
    int allowed = 0;
    for (int i = 0; i < 3; i++) {
        tollgate_decision d;
        tollgate_result rc = tollgate_engine_decide_request(engine, &request, &d);
        if (rc != TOLLGATE_RESULT_OK) {
            fprintf(stderr, "link: decide: %s\n", tollgate_result_message(rc));
            return 1;
        }
        allowed += d.allowed;
    }
    tollgate_engine_free(engine);
    if (allowed != 2) {
        fprintf(stderr, "link: %d of 3 allowed, the policy allows 2\n", allowed);
        return 1;
    }
    printf("abi %u version %s\n", tollgate_abi_version(), tollgate_version());
    return 0;
}
