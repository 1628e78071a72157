
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#ifndef _NGX_QQFAIL_POLICY_H_INCLUDED_
#define _NGX_QQFAIL_POLICY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * The failover policy: which name a server uses after a round of
 * lookups.  nginx core headers only and no side effect, so that it is
 * tested alone, from a table (t/045-policy.t, t/unit/policy.c).
 */

/* where a server's addresses come from ($qqfail_source) */
#define NGX_QQFAIL_SOURCE_NONE           0
#define NGX_QQFAIL_SOURCE_LIVE           1
#define NGX_QQFAIL_SOURCE_STALE          2
#define NGX_QQFAIL_SOURCE_STATE          3
#define NGX_QQFAIL_SOURCE_LITERAL        4

/* what the round found for one name */
#define NGX_QQFAIL_NAME_UNKNOWN          0   /* not asked, or undecided */
#define NGX_QQFAIL_NAME_OK               1
#define NGX_QQFAIL_NAME_FAILED           2
#define NGX_QQFAIL_NAME_NOQUORUM         3   /* answers, no quorum */

/* going back to a better name takes this many good rounds in a row */
#define NGX_QQFAIL_RECOVER               2


ngx_int_t ngx_qqfail_policy_choose(ngx_uint_t n, ngx_uint_t *state,
    ngx_uint_t active, ngx_uint_t source, ngx_uint_t *recover);


#endif /* _NGX_QQFAIL_POLICY_H_INCLUDED_ */
