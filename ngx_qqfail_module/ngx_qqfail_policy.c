
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail_policy.h"


/*
 * Which name a server uses now, from what a round found for its first
 * "n" names ("state", in the order of the qqfail_server line), the name in
 * use ("active") and where its addresses come from ("source").  Returns
 * the name, or -1 when every name failed and the server keeps its last
 * good addresses.
 *
 * The first name in order that resolves wins; the name in use also wins
 * when its answers lack only the quorum (its addresses stay).  Going back
 * to a better name, while the name in use still works, takes
 * NGX_QQFAIL_RECOVER good rounds in a row ("recover" counts them
 * across rounds), so that a name that flaps does not move the traffic
 * at each round; a server without live addresses (none yet, or only from
 * the state file) takes the best name at once.
 */

ngx_int_t
ngx_qqfail_policy_choose(ngx_uint_t n, ngx_uint_t *state,
    ngx_uint_t active, ngx_uint_t source, ngx_uint_t *recover)
{
    ngx_int_t   best, chosen;
    ngx_uint_t  i, active_ok;

    best = -1;

    for (i = 0; i < n; i++) {
        if (state[i] == NGX_QQFAIL_NAME_OK
            || (state[i] == NGX_QQFAIL_NAME_NOQUORUM && i == active
                && source != NGX_QQFAIL_SOURCE_NONE))
        {
            best = i;
            break;
        }
    }

    active_ok = (active < n
                 && (state[active] == NGX_QQFAIL_NAME_OK
                     || state[active] == NGX_QQFAIL_NAME_NOQUORUM));

    chosen = best;

    if (best >= 0 && (ngx_uint_t) best < active && active_ok
        && source != NGX_QQFAIL_SOURCE_NONE
        && source != NGX_QQFAIL_SOURCE_STATE)
    {
        if (++*recover < NGX_QQFAIL_RECOVER) {
            chosen = active;
        }

    } else {
        *recover = 0;
    }

    if (chosen >= 0 && (ngx_uint_t) chosen != active) {
        *recover = 0;
    }

    return chosen;
}
