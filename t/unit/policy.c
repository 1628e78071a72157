
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


/*
 * Drives ngx_qqfail_policy_choose() for t/045-policy.t: each line of
 * the standard input is one case,
 *
 *     STATES ACTIVE SOURCE RECOVER
 *
 * STATES the round's result per name, in order, comma separated (ok,
 * failed, noquorum, unknown); ACTIVE the name in use; SOURCE none, live,
 * stale, state_file or literal; RECOVER the good rounds of a better name
 * so far.  Each answer line is "CHOSEN RECOVER", CHOSEN being "keep" when
 * every name failed.
 */


#include <stdio.h>
#include <string.h>

#include "ngx_qqfail_policy.h"


static const char  *states[] = { "unknown", "ok", "failed", "noquorum" };
static const char  *sources[] = { "none", "live", "stale", "state_file",
                                  "literal" };


static int
lookup(const char *word, const char **table, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (strcmp(word, table[i]) == 0) {
            return i;
        }
    }

    return -1;
}


int
main(void)
{
    int         k, source;
    char        line[1024], list[512], src[32], *w, *save;
    ngx_int_t   chosen;
    ngx_uint_t  n, active, recover, state[16];

    while (fgets(line, sizeof(line), stdin) != NULL) {

        if (sscanf(line, "%511s %lu %31s %lu", list, &active, src, &recover)
            != 4)
        {
            printf("error: bad line\n");
            continue;
        }

        source = lookup(src, sources, 5);
        n = 0;

        for (w = strtok_r(list, ",", &save); w && n < 16;
             w = strtok_r(NULL, ",", &save))
        {
            k = lookup(w, states, 4);

            if (k < 0) {
                break;
            }

            state[n++] = k;
        }

        if (source < 0 || w != NULL) {
            printf("error: bad word\n");
            continue;
        }

        chosen = ngx_qqfail_policy_choose(n, state, active, source,
                                          &recover);

        if (chosen < 0) {
            printf("keep %lu\n", recover);

        } else {
            printf("%ld %lu\n", (long) chosen, recover);
        }

        fflush(stdout);
    }

    return 0;
}
