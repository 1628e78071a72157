
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_resolver.h"
#include "ngx_qqfail_dns.h"


static void ngx_qqfail_query_ended(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_query_t *q);
static ngx_uint_t ngx_qqfail_answer_parse(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_qqfail_query_t *q, u_char *abuf,
    size_t alen);
static ngx_uint_t ngx_qqfail_answer_read(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_query_t *q, u_char *abuf, size_t alen, ngx_str_t *host,
    ngx_uint_t qtype, ngx_qqfail_dns_answer_t *ans);
static ngx_uint_t ngx_qqfail_answer_dnssec(ngx_qqfail_query_t *q,
    ngx_qqfail_answer_t *a, ngx_int_t rc, ngx_uint_t ad);
static ngx_uint_t ngx_qqfail_dns_outcome(ngx_int_t rc);
static ngx_uint_t ngx_qqfail_answer_srv(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_qqfail_query_t *q, u_char *abuf,
    size_t alen);
static void ngx_qqfail_targets_send(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p);
static void ngx_qqfail_answer_add(ngx_qqfail_answer_t *a, in_port_t port,
    uint32_t srv, ngx_uint_t type, u_char *ip, ngx_uint_t n);
static socklen_t ngx_qqfail_addr_len(ngx_qqfail_sockaddr_t *sa);
static ngx_int_t ngx_qqfail_addr_cmp(const void *one, const void *two);
static ngx_int_t ngx_qqfail_answer_cmp(ngx_qqfail_sockaddr_t *one,
    uint32_t srv1, ngx_qqfail_sockaddr_t *two, uint32_t srv2);
static void ngx_qqfail_answer_done(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p);
static ngx_uint_t ngx_qqfail_answer_error(ngx_qqfail_answer_t *a,
    ngx_uint_t *transport);
static ngx_uint_t ngx_qqfail_answer_same(ngx_qqfail_answer_t *a,
    ngx_qqfail_answer_t *b);
static void ngx_qqfail_answer_allow(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p);
static ngx_int_t ngx_qqfail_shared_cmp(const void *one, const void *two);
static ngx_uint_t ngx_qqfail_shared_take(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p);
static void ngx_qqfail_shared_keep(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p);
static ngx_qqfail_lookup_t *ngx_qqfail_lookup_create(
    ngx_qqfail_resolver_t *rs, ngx_qqfail_job_t *job, ngx_uint_t n);
static void ngx_qqfail_lookup_send(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, u_char *host);
static void ngx_qqfail_lookup_decide(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t all);
static ngx_int_t ngx_qqfail_lookup_best(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t *nok);
static ngx_uint_t ngx_qqfail_lookup_settled(ngx_qqfail_lookup_t *lk);
static void ngx_qqfail_lookup_accept(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_int_t best);
static void ngx_qqfail_lookup_noquorum(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk);
static ngx_uint_t ngx_qqfail_lookup_error(ngx_qqfail_lookup_t *lk);
static ngx_uint_t ngx_qqfail_lookup_nodata(ngx_qqfail_lookup_t *lk);
static void ngx_qqfail_lookup_release(ngx_qqfail_lookup_t *lk);
static void ngx_qqfail_provider_account(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p, ngx_uint_t ok,
    ngx_uint_t error, ngx_uint_t transport, ngx_uint_t disagree);


/*
 * A query ended: one less in flight to its provider.  The servers waiting
 * for their turn get it from a posted event, not from inside c-ares.
 */

static void
ngx_qqfail_query_ended(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_query_t *q)
{
    if (!q->sent) {
        return;
    }

    q->sent = 0;

    if (rs->inflight[q->provider]) {
        rs->inflight[q->provider]--;
    }

    if (!rs->sync && rs->leading
        && !ngx_queue_empty(&rs->waiting)
        && !rs->resume_ev.posted)
    {
        /* the round layer set its handler (ngx_qqfail_jobs_create) */
        ngx_post_event(&rs->resume_ev, &ngx_posted_events);
    }
}


void
ngx_qqfail_job_lookup(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_uint_t n)
{
    u_char                 *host;
    ngx_uint_t              p, types;
    ngx_qqfail_name_t      *name;
    ngx_qqfail_result_t    *res;
    ngx_qqfail_lookup_t    *lk;
    ngx_qqfail_provider_t  *pr;

    name = &((ngx_qqfail_name_t *) job->server->names.elts)[n];
    res = &job->result[n];

    if (name->literal) {
        res->state = NGX_QQFAIL_NAME_OK;
        res->naddrs = 1;
        res->ttl = -1;
        res->addrs = &name->addr;
        res->srv = NULL;
        res->owned = 0;
        return;
    }

    lk = ngx_qqfail_lookup_create(rs, job, n);
    host = lk ? ngx_alloc(name->qname.len + 1, rs->log) : NULL;

    if (host == NULL) {
        if (lk) {
            ngx_qqfail_lookup_release(lk);
        }

        res->state = NGX_QQFAIL_NAME_FAILED;
        res->error = NGX_QQFAIL_ERR_OTHER;
        return;
    }

    ngx_memcpy(host, name->qname.data, name->qname.len);
    host[name->qname.len] = '\0';

    ngx_qqfail_lookup_send(rs, lk, host);

    ngx_free(host);

    /* queries count when sent: an answer may never come */

    types = lk->srv ? 1 : lk->types;
    pr = rs->qmcf->providers.elts;

    if (ngx_qqfail_lead_check(rs)) {
        for (p = 0; p < lk->nproviders; p++) {
            if (!lk->answer[p].abandoned && !lk->answer[p].reused) {
                ngx_qqfail_zone_counter(rs->qmcf, pr[p].sh,
                                        NGX_QQFAIL_COUNT_QUERIES,
                                        types);
            }
        }
    }

    if (--lk->queries == 0) {
        /* every query failed at once */

        if (!lk->decided) {
            ngx_qqfail_lookup_decide(rs, lk, 1);
        }

        ngx_qqfail_lookup_release(lk);
    }
}


/*
 * The names more than one server asks, found once per set of jobs (the
 * start-up pass, a leadership): sorted by name, a run of two or more
 * gets one shared record; a name asked by one server gets none and costs
 * nothing
 */

typedef struct {
    ngx_qqfail_name_t               *name;
    ngx_qqfail_result_t             *result;
} ngx_qqfail_asked_t;


ngx_int_t
ngx_qqfail_lookups_share(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t            i, j, k, n, nasked;
    ngx_qqfail_job_t    **jobp;
    ngx_qqfail_name_t    *name;
    ngx_qqfail_asked_t   *asked;
    ngx_qqfail_shared_t  *sh;

    jobp = rs->jobs->elts;
    n = 0;

    for (i = 0; i < rs->jobs->nelts; i++) {
        n += jobp[i]->server->names.nelts;
    }

    if (n < 2) {
        return NGX_OK;
    }

    asked = ngx_alloc(n * sizeof(ngx_qqfail_asked_t), rs->log);
    if (asked == NULL) {
        return NGX_ERROR;
    }

    nasked = 0;

    for (i = 0; i < rs->jobs->nelts; i++) {
        name = jobp[i]->server->names.elts;

        for (k = 0; k < jobp[i]->server->names.nelts; k++) {
            if (!name[k].literal) {
                asked[nasked].name = &name[k];
                asked[nasked].result = &jobp[i]->result[k];
                nasked++;
            }
        }
    }

    ngx_sort(asked, nasked, sizeof(ngx_qqfail_asked_t),
             ngx_qqfail_shared_cmp);

    /* the runs of one name: counted, then given their records */

    n = 0;

    for (i = 0; i < nasked; i = j) {
        for (j = i + 1;
             j < nasked && ngx_qqfail_shared_cmp(&asked[i], &asked[j]) == 0;
             j++)
        { /* void */ }

        n += (j - i > 1);
    }

    if (n) {
        rs->shared = ngx_calloc(n * sizeof(ngx_qqfail_shared_t), rs->log);
        if (rs->shared == NULL) {
            ngx_free(asked);
            return NGX_ERROR;
        }
    }

    for (i = 0; i < nasked; i = j) {
        for (j = i + 1;
             j < nasked && ngx_qqfail_shared_cmp(&asked[i], &asked[j]) == 0;
             j++)
        { /* void */ }

        if (j - i == 1) {
            continue;
        }

        sh = &rs->shared[rs->nshared++];
        sh->qname = asked[i].name->qname;
        sh->srv = asked[i].name->srv;

        for (k = i; k < j; k++) {
            asked[k].result->shared = sh;
        }
    }

    ngx_free(asked);

    return NGX_OK;
}


static ngx_int_t
ngx_qqfail_shared_cmp(const void *one, const void *two)
{
    ngx_qqfail_name_t  *a, *b;

    a = ((ngx_qqfail_asked_t *) one)->name;
    b = ((ngx_qqfail_asked_t *) two)->name;

    if (a->srv != b->srv) {
        return a->srv ? 1 : -1;
    }

    if (a->qname.len != b->qname.len) {
        return (a->qname.len < b->qname.len) ? -1 : 1;
    }

    return ngx_memcmp(a->qname.data, b->qname.data, a->qname.len);
}


void
ngx_qqfail_lookups_unshare(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t  i;

    for (i = 0; i < rs->nshared; i++) {
        if (rs->shared[i].answer) {
            ngx_free(rs->shared[i].answer);
        }
    }

    if (rs->shared) {
        ngx_free(rs->shared);
    }

    rs->shared = NULL;
    rs->nshared = 0;
}


/*
 * what a shared answer was asked as: the types; whether the provider was
 * asked to validate (qqfail_dnssec), which an answer to a query without
 * the DO bit says nothing of; and for an SRV name whether the server is
 * a backup one, which keeps the records of the lowest priority alone
 */

#define ngx_qqfail_shared_kind(lk)                                            \
    ((lk)->types | ((lk)->server->upstream->dnssec ? 0x10 : 0)               \
     | (((lk)->srv && (lk)->server->backup) ? 0x20 : 0))


/*
 * A provider's answer that another server's lookup of the name got (a
 * server's own last answer is never taken for its next lookup), if
 * it is younger than this upstream's qqfail_refresh and than its TTL (a
 * second at least, as a server's own lookups), and asked for the same
 * types: the provider is not asked again.  Only answers with addresses
 * are shared; a failure is asked again by each server.
 */

static ngx_uint_t
ngx_qqfail_shared_take(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p)
{
    ngx_uint_t             i;
    in_port_t              port;
    ngx_msec_t             fresh;
    ngx_qqfail_answer_t   *a, *from;
    ngx_qqfail_shared_t   *sh;

    sh = lk->shared;

    if (!(sh->stored & ((ngx_uint_t) 1 << p))
        || sh->types[p] != ngx_qqfail_shared_kind(lk)
        || sh->from[p] == lk->server)
    {
        return 0;
    }

    a = &lk->answer[p];
    from = &sh->answer[p];

    fresh = lk->server->upstream->refresh;

    if (from->ttl >= 0 && (ngx_msec_t) from->ttl * 1000 < fresh) {
        fresh = ngx_max((ngx_msec_t) from->ttl * 1000, 1000);
    }

    if (ngx_current_msec - sh->when[p] >= fresh) {
        return 0;
    }

    a->naddrs = from->naddrs;

    /* the TTL left, as a provider's cache gives it */

    a->ttl = from->ttl;

    if (a->ttl > 0) {
        a->ttl -= (int) ngx_min((ngx_msec_t) a->ttl,
                                (ngx_current_msec - sh->when[p]) / 1000);
    }
    a->status[0] = from->status[0];
    a->status[1] = from->status[1];

    ngx_memcpy(a->addrs, from->addrs,
               from->naddrs * sizeof(ngx_qqfail_sockaddr_t));
    ngx_memcpy(a->socklen, from->socklen, from->naddrs * sizeof(socklen_t));
    ngx_memcpy(a->srv, from->srv, from->naddrs * sizeof(uint32_t));

    /* the port is this server's, but an SRV record's */

    if (!lk->srv) {
        port = ((ngx_qqfail_name_t *)
                lk->server->names.elts)[lk->name].port;

        for (i = 0; i < a->naddrs; i++) {
            ngx_inet_set_port(&a->addrs[i].sockaddr, port);
        }
    }

    a->pending = 0;
    a->reused = 1;

    lk->queries -= lk->srv ? 1 : lk->types;

    return 1;
}


/* an answer with addresses, as it came, for the name's other servers */

static void
ngx_qqfail_shared_keep(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p)
{
    ngx_qqfail_answer_t  *a;
    ngx_qqfail_shared_t  *sh;

    sh = lk->shared;
    a = &lk->answer[p];

    if (a->naddrs == 0
        || (lk->srv && a->status[1] != NGX_QQFAIL_Q_OK
            && a->status[1] != NGX_QQFAIL_Q_NODATA))
    {
        sh->stored &= ~((ngx_uint_t) 1 << p);
        return;
    }

    if (sh->answer == NULL) {
        sh->answer = ngx_alloc(lk->nproviders * sizeof(ngx_qqfail_answer_t),
                               rs->log);
        if (sh->answer == NULL) {
            return;
        }
    }

    sh->answer[p] = *a;
    sh->types[p] = ngx_qqfail_shared_kind(lk);
    sh->from[p] = lk->server;
    sh->when[p] = ngx_current_msec;
    sh->stored |= (ngx_uint_t) 1 << p;
}


/*
 * A lookup of name "n" of a job, its answers waiting for every provider
 * it will ask, and its deadline.  Its queries are counted first, plus one
 * for the caller: callbacks may run inside the sending, and must not free
 * the lookup under it.
 */

static ngx_qqfail_lookup_t *
ngx_qqfail_lookup_create(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_uint_t n)
{
    size_t                  size;
    ngx_uint_t              p, types;
    ngx_qqfail_name_t      *name;
    ngx_qqfail_lookup_t    *lk;
    ngx_qqfail_provider_t  *pr;
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = job->server->upstream;
    name = &((ngx_qqfail_name_t *) job->server->names.elts)[n];

    size = sizeof(ngx_qqfail_lookup_t)
           + (rs->nproviders - 1) * sizeof(ngx_qqfail_answer_t);

    lk = ngx_calloc(size, rs->log);
    if (lk == NULL) {
        return NULL;
    }

    lk->rs = rs;
    lk->job = job;
    lk->server = job->server;
    lk->name = n;
    lk->nproviders = rs->nproviders;
    lk->accepted = -1;
    lk->shared = job->result[n].shared;

    if (name->srv) {
        /* one SRV query to each provider, then its targets' */

        lk->targets = ngx_calloc(rs->nproviders
                                 * sizeof(ngx_qqfail_targets_t), rs->log);
        if (lk->targets == NULL) {
            ngx_free(lk);
            return NULL;
        }

        lk->srv = 1;
    }

    job->result[n].lookup = lk;
    job->pending++;

    lk->types = job->types;
    types = lk->srv ? 1 : lk->types;
    pr = rs->qmcf->providers.elts;

    lk->queries = 1;

    for (p = 0; p < lk->nproviders; p++) {
        lk->answer[p].pending = types;
        lk->answer[p].status[0] = NGX_QQFAIL_Q_NODATA;
        lk->answer[p].status[1] = NGX_QQFAIL_Q_NODATA;
        lk->answer[p].ttl = -1;
        lk->answer[p].sent = ngx_current_msec;

        /*
         * a provider marked down and without room is not asked: the
         * turn did not wait for it (ngx_qqfail_job_turn), and
         * a query it was never sent proves nothing against it
         */

        if (pr[p].sh->down
            && rs->inflight[p] + types > pr[p].max_inflight)
        {
            lk->answer[p].abandoned = 1;
            lk->answer[p].pending = 0;
            continue;
        }

        lk->queries += types;
    }

    lk->deadline.handler = ngx_qqfail_lookup_deadline;
    lk->deadline.data = lk;
    lk->deadline.log = rs->log;
    lk->deadline.cancelable = 1;

    if (!rs->sync) {
        /* an SRV name takes two queries in a row */
        ngx_add_timer(&lk->deadline,
                      (lk->srv ? 2 : 1) * qscf->timeout + 50);
    }

    return lk;
}


/*
 * the queries of a lookup, A (and AAAA, see ngx_qqfail_job_types)
 * to every provider it asks
 */

static void
ngx_qqfail_lookup_send(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, u_char *host)
{
    ngx_uint_t              p, i, nq, types, reused;
    ngx_qqfail_channel_t   *ch;
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = lk->server->upstream;
    types = lk->srv ? 1 : lk->types;
    nq = 0;
    reused = 0;

    for (p = 0; p < lk->nproviders; p++) {

        if (lk->answer[p].abandoned) {
            continue;
        }

        if (lk->shared && ngx_qqfail_shared_take(rs, lk, p)) {
            reused = 1;
            continue;
        }

        /* the channels of this upstream's qqfail_timeout */

        ch = ngx_qqfail_channel(rs, qscf->channels * lk->nproviders + p);

        for (i = 0; i < types; i++) {
            lk->query[nq].lookup = lk;
            lk->query[nq].provider = p;
            lk->query[nq].type = lk->srv ? NGX_QQFAIL_QTYPE_SRV : i;
            lk->query[nq].target = -1;
            lk->query[nq].sent = 0;
            lk->query[nq].dnssec = qscf->dnssec ? 1 : 0;

            if (ch == NULL) {
                ngx_qqfail_query_done(&lk->query[nq],
                                      NGX_QQFAIL_Q_UNREACHABLE,
                                      NULL, 0);

            } else {
                /* in flight until it ends, however the lookup is decided */
                lk->query[nq].sent = 1;
                rs->inflight[p]++;

                ngx_qqfail_channel_query(rs, ch, host, lk->query[nq].type,
                                         &lk->query[nq]);
            }

            nq++;
        }

        if (ch) {
            ngx_qqfail_channel_timer(rs, ch);
        }
    }

    /* the answers another server's lookup got, once the queries are sent */

    for (p = 0; reused && p < lk->nproviders; p++) {
        if (lk->answer[p].reused && !lk->answer[p].done) {
            ngx_qqfail_answer_done(rs, lk, p);
        }
    }
}


void
ngx_qqfail_query_done(ngx_qqfail_query_t *q, ngx_uint_t outcome,
    u_char *abuf, size_t alen)
{
    ngx_uint_t              p;
    ngx_qqfail_lookup_t    *lk;
    ngx_qqfail_answer_t    *a;
    ngx_qqfail_resolver_t  *rs;

    lk = q->lookup;
    rs = lk->rs;
    p = q->provider;
    a = &lk->answer[p];

    lk->queries--;

    ngx_qqfail_query_ended(rs, q);

    if (!a->abandoned && outcome != NGX_QQFAIL_Q_CANCELLED) {

        /* every message received is read by our parser, errors too */

        if (abuf != NULL) {
            outcome = (q->type == NGX_QQFAIL_QTYPE_SRV)
                      ? ngx_qqfail_answer_srv(rs, lk, q, abuf, alen)
                      : ngx_qqfail_answer_parse(rs, lk, q, abuf, alen);
        }

        if (q->target < 0) {
            a->status[q->type == NGX_QQFAIL_QTYPE_SRV ? 0 : q->type] =
                                                                      outcome;

        } else if (outcome != NGX_QQFAIL_Q_OK
                   && outcome != NGX_QQFAIL_Q_NODATA
                   && (a->status[1] == NGX_QQFAIL_Q_OK
                       || a->status[1] == NGX_QQFAIL_Q_NODATA))
        {
            /* a target that failed fails the provider's answer */
            a->status[1] = outcome;
        }

    } else if (outcome == NGX_QQFAIL_Q_CANCELLED) {

        /*
         * the channel went away before this provider answered (the end of
         * the start-up pass, or of the leadership): nothing to account
         */

        a->abandoned = 1;
    }

    if (--a->pending == 0 && !a->abandoned) {
        ngx_qqfail_answer_done(rs, lk, p);
    }

    if (lk->queries == 0) {

        /*
         * the last query ended with its channel, at the end of the start-up
         * pass or of the leadership: the lookup is abandoned undecided, it
         * must not report a missing quorum or a failure it never saw
         */

        if (!lk->decided && outcome != NGX_QQFAIL_Q_CANCELLED) {
            ngx_qqfail_lookup_decide(rs, lk, 1);
        }

        ngx_qqfail_lookup_release(lk);
    }
}


/*
 * The answer of one provider to one query, read by the strict parser
 * (ngx_qqfail_dns.c): a message that is not the answer to the
 * question asked counts as a failure "other" of the provider
 */

static ngx_uint_t
ngx_qqfail_answer_parse(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_qqfail_query_t *q, u_char *abuf,
    size_t alen)
{
    uint32_t                 srv;
    ngx_str_t                host;
    ngx_uint_t               outcome;
    in_port_t                port;
    ngx_qqfail_name_t       *name;
    ngx_qqfail_target_t     *t;
    ngx_qqfail_answer_t     *a;
    ngx_qqfail_dns_answer_t  ans;
    u_char                   addrs[NGX_QQFAIL_MAX_ADDRS * 16];

    a = &lk->answer[q->provider];
    name = &((ngx_qqfail_name_t *) lk->server->names.elts)[lk->name];

    if (q->target >= 0) {
        /* an SRV target: its port and weight are the record's */
        t = &lk->targets[q->provider].target[q->target];
        host.data = t->host;
        host.len = t->len;
        port = t->port;
        srv = t->srv;

    } else {
        host = name->host;
        port = name->port;
        srv = 0;
    }

    ans.addrs = addrs;
    ans.srvs = NULL;
    ans.extras = NULL;
    ans.max = NGX_QQFAIL_MAX_ADDRS - a->naddrs;

    outcome = ngx_qqfail_answer_read(rs, q, abuf, alen, &host,
                                     q->type ? NGX_QQFAIL_DNS_AAAA
                                             : NGX_QQFAIL_DNS_A,
                                     &ans);

    if (outcome != NGX_QQFAIL_Q_OK) {
        return outcome;
    }

#if !(NGX_HAVE_INET6)
    if (q->type) {
        return NGX_QQFAIL_Q_NODATA;
    }
#endif

    ngx_qqfail_answer_add(a, port, srv, q->type, addrs, ans.naddrs);

    /* TTLs above 2^31 - 1 are zero (RFC 2181), so this fits in an int */

    if (a->ttl < 0 || (int) ans.ttl < a->ttl) {
        a->ttl = ans.ttl;
    }

    return NGX_QQFAIL_Q_OK;
}


/*
 * One message read by the strict parser as the answer to "host" and
 * "qtype", with qqfail_dnssec's rule: its outcome; a message refused by
 * the parser is logged, as the provider's failure "bad_answer"
 */

static ngx_uint_t
ngx_qqfail_answer_read(ngx_qqfail_resolver_t *rs, ngx_qqfail_query_t *q,
    u_char *abuf, size_t alen, ngx_str_t *host, ngx_uint_t qtype,
    ngx_qqfail_dns_answer_t *ans)
{
    ngx_int_t               rc;
    ngx_uint_t              outcome;
    ngx_qqfail_provider_t  *pr;

    rc = ngx_qqfail_dns_parse(abuf, alen, host->data, host->len, qtype, ans);

    if (!ngx_qqfail_answer_dnssec(q, &q->lookup->answer[q->provider], rc,
                                  ans->ad))
    {
        return NGX_QQFAIL_Q_UNVALIDATED;
    }

    outcome = ngx_qqfail_dns_outcome(rc);

    if (outcome == NGX_QQFAIL_Q_BADANSWER) {
        pr = rs->qmcf->providers.elts;

        ngx_log_error(NGX_LOG_INFO, rs->log, 0,
                      "qqfail: %s answer for \"%V\" from provider \"%V\" "
                      "refused: %s",
                      qtype == NGX_QQFAIL_DNS_SRV ? "SRV"
                      : qtype == NGX_QQFAIL_DNS_AAAA ? "AAAA" : "A",
                      host, &pr[q->provider].name, ans->reason);
    }

    return outcome;
}


/*
 * qqfail_dnssec: an answer counts only if the provider validated it (the
 * AD bit); its errors (SERVFAIL for bogus data) are errors as they are
 */

static ngx_uint_t
ngx_qqfail_answer_dnssec(ngx_qqfail_query_t *q, ngx_qqfail_answer_t *a,
    ngx_int_t rc, ngx_uint_t ad)
{
    if (!q->dnssec
        || (rc != NGX_QQFAIL_DNS_OK && rc != NGX_QQFAIL_DNS_NODATA
            && rc != NGX_QQFAIL_DNS_NXDOMAIN))
    {
        return 1;
    }

    if (!ad) {
        a->unvalidated = 1;
        return 0;
    }

    a->validated = 1;

    return 1;
}


/* what the parser's verdict is, as a query's outcome */

static ngx_uint_t
ngx_qqfail_dns_outcome(ngx_int_t rc)
{
    switch (rc) {

    case NGX_QQFAIL_DNS_OK:
        return NGX_QQFAIL_Q_OK;

    case NGX_QQFAIL_DNS_NODATA:
        return NGX_QQFAIL_Q_NODATA;

    case NGX_QQFAIL_DNS_NXDOMAIN:
        return NGX_QQFAIL_Q_NXDOMAIN;

    case NGX_QQFAIL_DNS_SERVFAIL:
        return NGX_QQFAIL_Q_SERVFAIL;

    case NGX_QQFAIL_DNS_REFUSED:
        return NGX_QQFAIL_Q_REFUSED;

    default: /* NGX_QQFAIL_DNS_RCODE, _MALFORMED, _MISMATCH */
        return NGX_QQFAIL_Q_BADANSWER;
    }
}


/*
 * A provider's SRV answer for a name with "service=": its records become
 * targets, whose addresses are asked of the same provider (A, and AAAA
 * as the name's job asks), with the record's port and weight.  The lowest
 * priority value gives the primary addresses and the others are backup,
 * as nginx's "service=" does; a backup server takes the lowest alone.
 */

static ngx_uint_t
ngx_qqfail_answer_srv(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_qqfail_query_t *q, u_char *abuf,
    size_t alen)
{
    ngx_uint_t               i, k, low, outcome, type;
    ngx_qqfail_name_t       *name;
    ngx_qqfail_answer_t     *a;
    ngx_qqfail_target_t     *t;
    ngx_qqfail_targets_t    *ts;
    ngx_qqfail_dns_answer_t  ans;
    ngx_qqfail_dns_extra_t  *x;
    u_char                   target[NGX_QQFAIL_MAX_TARGETS];
    ngx_qqfail_dns_srv_t     srvs[NGX_QQFAIL_MAX_TARGETS];
    ngx_qqfail_dns_extra_t   extras[NGX_QQFAIL_MAX_ADDRS];

    a = &lk->answer[q->provider];
    ts = &lk->targets[q->provider];
    name = &((ngx_qqfail_name_t *) lk->server->names.elts)[lk->name];

    ans.addrs = NULL;
    ans.srvs = srvs;
    ans.max = NGX_QQFAIL_MAX_TARGETS;
    /*
     * the additional section, unless the answer must be validated: the AD
     * bit vouches for the answer and authority sections alone (RFC 4035,
     * section 3.2.3)
     */

    ans.extras = q->dnssec ? NULL : extras;
    ans.max_extras = NGX_QQFAIL_MAX_ADDRS;

    outcome = ngx_qqfail_answer_read(rs, q, abuf, alen, &name->qname,
                                     NGX_QQFAIL_DNS_SRV, &ans);

    if (outcome != NGX_QQFAIL_Q_OK) {
        return outcome;
    }

    low = 65536;

    for (i = 0; i < ans.naddrs; i++) {
        if (srvs[i].port && srvs[i].priority < low) {
            low = srvs[i].priority;
        }
    }

    ts->ntargets = 0;

    for (i = 0; i < ans.naddrs; i++) {

        /* port 0 reaches nothing */

        target[i] = NGX_QQFAIL_MAX_TARGETS;

        if (srvs[i].port == 0
            || (lk->server->backup && srvs[i].priority != low))
        {
            continue;
        }

        target[i] = (u_char) ts->ntargets;
        t = &ts->target[ts->ntargets++];
        t->given[0] = 0;
        t->given[1] = 0;

        t->port = srvs[i].port;
        t->srv = NGX_QQFAIL_SRV | (uint32_t) (srvs[i].weight & 0xffff)
                 | (srvs[i].priority != low ? NGX_QQFAIL_SRV_BACKUP : 0);
        t->len = srvs[i].len;
        ngx_memcpy(t->host, srvs[i].target, srvs[i].len);
        t->host[t->len] = '\0';
    }

    if (a->ttl < 0 || (int) ans.ttl < a->ttl) {
        a->ttl = ans.ttl;
    }

    /*
     * the targets' addresses the provider added to its answer are its
     * answer for them, of the types the name is asked for: those are not
     * asked again
     */

    for (k = 0; k < ans.nextras; k++) {
        x = &extras[k];
        type = (x->type == NGX_QQFAIL_DNS_A) ? 0 : 1;

        if (target[x->srv] == NGX_QQFAIL_MAX_TARGETS || type >= lk->types
            || a->naddrs == NGX_QQFAIL_MAX_ADDRS)
        {
            continue;
        }

#if !(NGX_HAVE_INET6)
        if (type) {
            continue;
        }
#endif

        t = &ts->target[target[x->srv]];
        t->given[type] = 1;

        ngx_qqfail_answer_add(a, t->port, t->srv, type, x->addr, 1);

        if ((int) x->ttl < a->ttl) {
            a->ttl = x->ttl;
        }
    }

    ngx_qqfail_targets_send(rs, lk, q->provider);

    return NGX_QQFAIL_Q_OK;
}


/*
 * The targets' queries, to the provider that gave them; counted first,
 * with one more held while they are sent, as for the lookup's own
 */

static void
ngx_qqfail_targets_send(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p)
{
    ngx_uint_t              i, k, type, n;
    ngx_qqfail_query_t     *q;
    ngx_qqfail_channel_t   *ch;
    ngx_qqfail_targets_t   *ts;
    ngx_qqfail_provider_t  *pr;
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = lk->server->upstream;
    ts = &lk->targets[p];
    n = 0;

    for (i = 0; i < ts->ntargets; i++) {
        for (type = 0; type < lk->types; type++) {
            n += !ts->target[i].given[type];
        }
    }

    if (n == 0) {
        return;
    }

    lk->answer[p].pending += n;
    lk->queries += n + 1;

    ch = ngx_qqfail_channel(rs, qscf->channels * lk->nproviders + p);

    for (i = 0, k = 0; i < ts->ntargets; i++) {
        for (type = 0; type < lk->types; type++) {
            if (ts->target[i].given[type]) {
                continue;
            }

            q = &ts->query[k++];

            q->lookup = lk;
            q->provider = p;
            q->type = type;
            q->target = i;
            q->sent = 0;
            q->dnssec = qscf->dnssec ? 1 : 0;

            if (ch == NULL) {
                ngx_qqfail_query_done(q, NGX_QQFAIL_Q_UNREACHABLE, NULL, 0);
                continue;
            }

            q->sent = 1;
            rs->inflight[p]++;

            ngx_qqfail_channel_query(rs, ch, ts->target[i].host, type, q);
        }
    }

    if (ch) {
        ngx_qqfail_channel_timer(rs, ch);
    }

    /*
     * the pacing's "rate=" pays for them, once a lookup, as the turn
     * counts a name's queries: all but the target the turn reserved
     */

    if (rs->rate && !lk->charged && n > lk->types) {
        rs->tokens -= ngx_min(rs->tokens, (n - lk->types) * 1000);
    }

    lk->charged = 1;

    if (ngx_qqfail_lead_check(rs)) {
        pr = rs->qmcf->providers.elts;
        ngx_qqfail_zone_counter(rs->qmcf, pr[p].sh,
                                NGX_QQFAIL_COUNT_QUERIES, n);
    }

    /* the caller's query_done() ends the lookup, if it is to end */

    lk->queries--;
}


/* the addresses of one answer (A: 4 bytes each, AAAA: 16) join the rest */

static void
ngx_qqfail_answer_add(ngx_qqfail_answer_t *a, in_port_t port,
    uint32_t srv, ngx_uint_t type, u_char *ip, ngx_uint_t n)
{
    ngx_uint_t            i, j;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    for (i = 0; i < n; i++) {
        j = a->naddrs;
        ngx_memzero(&a->addrs[j], sizeof(ngx_qqfail_sockaddr_t));
        a->srv[j] = srv;

        if (type == 0) {
            sin = &a->addrs[j].sockaddr_in;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(port);
            ngx_memcpy(&sin->sin_addr, ip, 4);
            a->socklen[j] = sizeof(struct sockaddr_in);
            ip += 4;

#if (NGX_HAVE_INET6)
        } else {
            sin6 = &a->addrs[j].sockaddr_in6;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(port);
            ngx_memcpy(&sin6->sin6_addr, ip, 16);
            a->socklen[j] = sizeof(struct sockaddr_in6);
            ip += 16;
#endif
        }

        a->naddrs++;
    }
}


static ngx_uint_t
ngx_qqfail_answer_error(ngx_qqfail_answer_t *a,
    ngx_uint_t *transport)
{
    ngx_uint_t  i, error;

    error = NGX_QQFAIL_ERR_OTHER;
    *transport = 0;

    for (i = 0; i < 2; i++) {
        switch (a->status[i]) {

        case NGX_QQFAIL_Q_OK:
        case NGX_QQFAIL_Q_NODATA:
            continue;

        case NGX_QQFAIL_Q_TIMEOUT:
            *transport = 1;
            return NGX_QQFAIL_ERR_TIMEOUT;

        case NGX_QQFAIL_Q_SERVFAIL:
            error = NGX_QQFAIL_ERR_SERVFAIL;
            break;

        case NGX_QQFAIL_Q_NXDOMAIN:
            if (error == NGX_QQFAIL_ERR_OTHER) {
                error = NGX_QQFAIL_ERR_NXDOMAIN;
            }
            break;

        case NGX_QQFAIL_Q_REFUSED:
            error = NGX_QQFAIL_ERR_REFUSED;
            break;

        case NGX_QQFAIL_Q_UNREACHABLE:
            *transport = 1;
            break;

        case NGX_QQFAIL_Q_BADANSWER:
            /* not an answer to the question, or not well formed */
            if (error == NGX_QQFAIL_ERR_OTHER) {
                error = NGX_QQFAIL_ERR_BADANSWER;
            }
            break;

        case NGX_QQFAIL_Q_UNVALIDATED:
            /* an answer, but qqfail_dnssec takes validated ones only */
            if (error == NGX_QQFAIL_ERR_OTHER) {
                error = NGX_QQFAIL_ERR_UNVALIDATED;
            }
            break;

        default:
            break;
        }
    }

    return error;
}


static socklen_t
ngx_qqfail_addr_len(ngx_qqfail_sockaddr_t *sa)
{
#if (NGX_HAVE_INET6)
    if (sa->sockaddr.sa_family == AF_INET6) {
        return sizeof(struct sockaddr_in6);
    }
#endif

    return sizeof(struct sockaddr_in);
}


static ngx_int_t
ngx_qqfail_addr_cmp(const void *one, const void *two)
{
    socklen_t  len1, len2;

    len1 = ngx_qqfail_addr_len((ngx_qqfail_sockaddr_t *) one);
    len2 = ngx_qqfail_addr_len((ngx_qqfail_sockaddr_t *) two);

    if (len1 != len2) {
        return (len1 < len2) ? -1 : 1;
    }

    return ngx_memcmp(one, two, len1);
}


/*
 * by address, then, for one address from several SRV records, the best
 * record first: a primary before a backup, then the greater weight, so
 * that every provider keeps the same one whatever the order of arrival
 */

static ngx_int_t
ngx_qqfail_answer_cmp(ngx_qqfail_sockaddr_t *one, uint32_t srv1,
    ngx_qqfail_sockaddr_t *two, uint32_t srv2)
{
    ngx_int_t  rc;

    rc = ngx_qqfail_addr_cmp(one, two);

    if (rc || srv1 == srv2) {
        return rc;
    }

    if ((srv1 ^ srv2) & NGX_QQFAIL_SRV_BACKUP) {
        return (srv1 & NGX_QQFAIL_SRV_BACKUP) ? 1 : -1;
    }

    return ((srv1 & 0xffff) > (srv2 & 0xffff)) ? -1 : 1;
}


static void
ngx_qqfail_answer_sort(ngx_qqfail_answer_t *a)
{
    uint32_t               srv;
    ngx_uint_t             i, j;
    ngx_qqfail_sockaddr_t  sa;

    /*
     * by length (IPv4 first), then by their bytes (ports too), each with
     * what its SRV record gave it: an insertion sort, 32 addresses at most
     */

    for (i = 1; i < a->naddrs; i++) {
        sa = a->addrs[i];
        srv = a->srv[i];

        for (j = i;
             j && ngx_qqfail_answer_cmp(&a->addrs[j - 1], a->srv[j - 1],
                                        &sa, srv) > 0;
             j--)
        {
            a->addrs[j] = a->addrs[j - 1];
            a->srv[j] = a->srv[j - 1];
        }

        a->addrs[j] = sa;
        a->srv[j] = srv;
    }

    for (i = 0; i < a->naddrs; i++) {
        a->socklen[i] = ngx_qqfail_addr_len(&a->addrs[i]);
    }

    /* drop duplicates: the first, the best of their records, stays */

    for (i = 1, j = 1; a->naddrs && i < a->naddrs; i++) {
        if (a->socklen[i] == a->socklen[j - 1]
            && ngx_memcmp(&a->addrs[i], &a->addrs[j - 1], a->socklen[i]) == 0)
        {
            continue;
        }

        a->addrs[j] = a->addrs[i];
        a->socklen[j] = a->socklen[i];
        a->srv[j] = a->srv[i];
        j++;
    }

    if (a->naddrs) {
        a->naddrs = j;
    }
}


static ngx_uint_t
ngx_qqfail_answer_same(ngx_qqfail_answer_t *a,
    ngx_qqfail_answer_t *b)
{
    ngx_uint_t  i;

    if (a->naddrs != b->naddrs) {
        return 0;
    }

    for (i = 0; i < a->naddrs; i++) {
        if (a->socklen[i] != b->socklen[i]
            || a->srv[i] != b->srv[i]
            || ngx_memcmp(&a->addrs[i], &b->addrs[i], a->socklen[i]) != 0)
        {
            return 0;
        }
    }

    return 1;
}


/*
 * Drop the addresses the filter refuses: ones no backend can have, this
 * nginx's own sockets, metadata services, and those qqfail_ipv6 and
 * qqfail_allow refuse.  Logged once per name and episode.
 */

static void
ngx_qqfail_answer_allow(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p)
{
    u_char                  text[NGX_QQFAIL_ADDR_STRLEN];
    size_t                  len;
    uint32_t                srv[NGX_QQFAIL_MAX_ADDRS];
    ngx_uint_t              i, j, n, rejected, first, why;
    ngx_addr_t              addrs[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_geo_t        geo[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_answer_t    *a;
    ngx_qqfail_name_sh_t   *nsh;
    ngx_qqfail_sockaddr_t   kept[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_provider_t  *pr;

    a = &lk->answer[p];

    for (i = 0; i < a->naddrs; i++) {
        addrs[i].sockaddr = &a->addrs[i].sockaddr;
        addrs[i].socklen = a->socklen[i];
    }

    n = ngx_qqfail_filter(lk->server->upstream, addrs, geo, a->naddrs,
                          &why);

    rejected = a->naddrs - n;

    if (rejected == 0) {
        return;
    }

    /* the filter kept the order: the first address it skipped is named */

    len = 0;

    for (i = 0, j = 0; i < a->naddrs; i++) {
        if (j < n && addrs[j].sockaddr == &a->addrs[i].sockaddr) {
            kept[j] = a->addrs[i];
            addrs[j].socklen = a->socklen[i];
            srv[j] = a->srv[i];
            j++;

        } else if (len == 0) {
            len = ngx_sock_ntop(&a->addrs[i].sockaddr, a->socklen[i], text,
                                NGX_QQFAIL_ADDR_STRLEN, 0);
        }
    }

    for (j = 0; j < n; j++) {
        a->addrs[j] = kept[j];
        a->socklen[j] = addrs[j].socklen;
        a->srv[j] = srv[j];
    }

    a->naddrs = n;

    if (!ngx_qqfail_lead_check(rs)) {
        return;
    }

    lk->rejected += rejected;

    pr = &((ngx_qqfail_provider_t *) rs->qmcf->providers.elts)[p];
    nsh = &lk->server->sh->names[lk->name];
    first = ngx_qqfail_zone_rejected(rs->qmcf, pr->sh, nsh, rejected);

    if (first) {
        ngx_qqfail_event(rs->qmcf, NGX_LOG_WARN,
                         rs->log, 0, lk->server,
                         "answer %*s for \"%V\" from provider \"%V\" "
                         "refused: %V (%ui address(es))",
                         len, text,
                         &((ngx_qqfail_name_t *)
                           lk->server->names.elts)[lk->name].host,
                         &pr->name, &ngx_qqfail_refusals[why],
                         rejected);
    }
}


/* all queries of one provider for one name are complete */

static void
ngx_qqfail_answer_done(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p)
{
    ngx_uint_t            error, transport, disagree;
    ngx_qqfail_answer_t  *a;

    a = &lk->answer[p];
    a->done = 1;

    ngx_qqfail_answer_sort(a);

    if (lk->shared && !a->reused) {
        ngx_qqfail_shared_keep(rs, lk, p);
    }

    if (a->naddrs) {
        ngx_qqfail_answer_allow(rs, lk, p);
    }

    error = ngx_qqfail_answer_error(a, &transport);

    /*
     * an empty answer, or one emptied by the filter, is a failure; so is
     * an SRV answer with a target that failed: the set is kept as it was
     */

    a->ok = (a->naddrs > 0);

    if (lk->srv && a->status[1] != NGX_QQFAIL_Q_OK
        && a->status[1] != NGX_QQFAIL_Q_NODATA)
    {
        a->ok = 0;
    }

    disagree = 0;

    if (a->ok && lk->accepted >= 0
        && !ngx_qqfail_answer_same(a, &lk->answer[lk->accepted]))
    {
        disagree = 1;
    }

    /* a shared answer was counted when it came */

    if (!a->reused && ngx_qqfail_lead_check(rs)) {
        ngx_qqfail_provider_account(rs, lk, p, a->ok, error, transport,
                                    disagree);
    }

    if (!lk->decided) {
        ngx_qqfail_lookup_decide(rs, lk, 0);
    }
}


static void
ngx_qqfail_provider_account(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p, ngx_uint_t ok,
    ngx_uint_t error, ngx_uint_t transport, ngx_uint_t disagree)
{
    u_char                      text[NGX_QQFAIL_ERRLEN];
    ngx_int_t                   change;
    ngx_qqfail_name_t          *name;
    ngx_qqfail_provider_t      *pr;
    ngx_qqfail_result_report_t  r;

    pr = &((ngx_qqfail_provider_t *) rs->qmcf->providers.elts)[p];
    name = &((ngx_qqfail_name_t *) lk->server->names.elts)[lk->name];

    r.ok = ok;
    r.error = error;
    r.transport = transport;
    r.disagree = disagree;
    r.validated = lk->answer[p].validated;
    r.unvalidated = lk->answer[p].unvalidated;
    r.rtt = ngx_current_msec - lk->answer[p].sent;
    r.text = text;
    r.len = 0;

    /* the last error is formatted before the lock is taken */

    if (!ok) {
        r.len = ngx_snprintf(text, NGX_QQFAIL_ERRLEN - 1, "%V for %V",
                             &ngx_qqfail_errors[error], &name->host)
                - text;
    }

    change = ngx_qqfail_zone_provider_result(rs->qmcf, pr->sh, &r);

    if (change > 0) {
        ngx_qqfail_event(rs->qmcf, NGX_LOG_NOTICE,
                         rs->log, 0, NULL,
                         "provider \"%V\" is up again", &pr->name);

    } else if (change < 0) {
        ngx_qqfail_event(rs->qmcf, NGX_LOG_WARN,
                         rs->log, 0, NULL,
                         "provider \"%V\" is down (%V for \"%V\")",
                         &pr->name, &ngx_qqfail_errors[error],
                         &name->host);

    } else if (!ok) {
        ngx_log_error(NGX_LOG_INFO, rs->log, 0,
                      "qqfail: provider \"%V\" failed for \"%V\" (%V)",
                      &pr->name, &name->host, &ngx_qqfail_errors[error]);
    }
}


/*
 * Decide a name once enough providers have answered: the first answer
 * agreed by "qqfail_quorum" providers, or equal to the addresses in use,
 * wins; slow providers never delay it.  With "all", every provider is
 * done (or abandoned) and the name either has an answer or failed.
 */

static void
ngx_qqfail_lookup_decide(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t all)
{
    ngx_int_t             best;
    ngx_uint_t            nok;
    ngx_qqfail_job_t     *job;
    ngx_qqfail_result_t  *res;

    job = lk->job;

    /* a leader that lost its lease decides nothing: the lookup is dropped */

    if (job == NULL || !ngx_qqfail_lead_check(rs)) {
        return;
    }

    best = ngx_qqfail_lookup_best(rs, lk, &nok);

    if (best < 0 && !all && !ngx_qqfail_lookup_settled(lk)) {
        return;
    }

    lk->decided = 1;
    lk->accepted = best;

    if (lk->deadline.timer_set) {
        ngx_del_timer(&lk->deadline);
    }

    res = &job->result[lk->name];

    if (best >= 0) {
        ngx_qqfail_lookup_accept(rs, lk, best);

    } else if (nok) {
        ngx_qqfail_lookup_noquorum(rs, lk);

    } else {
        res->state = NGX_QQFAIL_NAME_FAILED;
        res->error = ngx_qqfail_lookup_error(lk);
        res->nodata = ngx_qqfail_lookup_nodata(lk);
    }

    res->lookup = NULL;
    res->rejected = lk->rejected;
    lk->job = NULL;

    job->pending--;

    rs->lookup_done(rs, job);
}


/*
 * The provider whose answer wins, or -1: the first answer agreed by
 * "qqfail_quorum" providers, or equal to the addresses in use (an
 * unchanged set needs no quorum); "nok": the answers with addresses
 */

static ngx_int_t
ngx_qqfail_lookup_best(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t *nok)
{
    ngx_uint_t            p, q, i, agree;
    ngx_addr_t            addrs[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_answer_t  *a;
    ngx_qqfail_server_t  *server;

    server = lk->server;
    *nok = 0;

    for (p = 0; p < lk->nproviders; p++) {
        a = &lk->answer[p];

        if (!a->done || !a->ok) {
            continue;
        }

        (*nok)++;
        agree = 0;

        for (q = 0; q < lk->nproviders; q++) {
            if (lk->answer[q].done && lk->answer[q].ok
                && ngx_qqfail_answer_same(a, &lk->answer[q]))
            {
                agree++;
            }
        }

        if (agree >= server->upstream->quorum) {
            return p;
        }

        for (i = 0; i < a->naddrs; i++) {
            addrs[i].sockaddr = &a->addrs[i].sockaddr;
            addrs[i].socklen = a->socklen[i];
        }

        if (ngx_qqfail_zone_same(rs->qmcf, server, lk->name, addrs,
                                 lk->srv ? a->srv : NULL, a->naddrs))
        {
            return p;
        }
    }

    return -1;
}


/* has every provider answered, or been given up? */

static ngx_uint_t
ngx_qqfail_lookup_settled(ngx_qqfail_lookup_t *lk)
{
    ngx_uint_t  p;

    for (p = 0; p < lk->nproviders; p++) {
        if (!lk->answer[p].done && !lk->answer[p].abandoned) {
            return 0;
        }
    }

    return 1;
}


/*
 * The winning answer's addresses go to the round's result, with the
 * sockaddrs they point to in one block; providers that answered
 * otherwise are counted as disagreeing
 */

static void
ngx_qqfail_lookup_accept(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_int_t best)
{
    ngx_uint_t              p, i;
    ngx_qqfail_result_t    *res;
    ngx_qqfail_answer_t    *a;
    ngx_qqfail_sockaddr_t  *sa;
    ngx_qqfail_provider_t  *pr;

    res = &lk->job->result[lk->name];
    a = &lk->answer[best];

    res->addrs = ngx_alloc(a->naddrs * (sizeof(ngx_addr_t)
                                      + sizeof(ngx_qqfail_sockaddr_t)
                                      + sizeof(uint32_t)),
                           rs->log);

    if (res->addrs == NULL) {
        res->state = NGX_QQFAIL_NAME_FAILED;
        res->error = NGX_QQFAIL_ERR_OTHER;
        return;
    }

    res->owned = 1;
    res->state = NGX_QQFAIL_NAME_OK;
    res->naddrs = a->naddrs;
    res->ttl = a->ttl;

    /* an agreed or unchanged set ends a quorum episode */

    (void) ngx_qqfail_zone_noquorum(rs->qmcf,
                                    &lk->server->sh->names[lk->name], 0);

    sa = (ngx_qqfail_sockaddr_t *) &res->addrs[a->naddrs];
    res->srv = lk->srv ? (uint32_t *) &sa[a->naddrs] : NULL;

    for (i = 0; i < a->naddrs; i++) {
        if (res->srv) {
            res->srv[i] = a->srv[i];
        }

        sa[i] = a->addrs[i];
        res->addrs[i].sockaddr = &sa[i].sockaddr;
        res->addrs[i].socklen = a->socklen[i];
        res->addrs[i].name.len = 0;
        res->addrs[i].name.data = NULL;
    }

    pr = rs->qmcf->providers.elts;

    for (p = 0; p < lk->nproviders; p++) {
        if (p != (ngx_uint_t) best && lk->answer[p].done
            && lk->answer[p].ok && !lk->answer[p].reused
            && !ngx_qqfail_answer_same(a, &lk->answer[p]))
        {
            ngx_qqfail_zone_counter(rs->qmcf, pr[p].sh,
                                    NGX_QQFAIL_COUNT_DISAGREEMENTS,
                                    1);
        }
    }
}


/* answers, but fewer agree than the quorum asks: logged once an episode */

static void
ngx_qqfail_lookup_noquorum(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk)
{
    ngx_qqfail_result_t  *res;
    ngx_qqfail_server_t  *server;

    server = lk->server;
    res = &lk->job->result[lk->name];

    res->state = NGX_QQFAIL_NAME_NOQUORUM;
    res->error = NGX_QQFAIL_ERR_OTHER;

    if (!ngx_qqfail_zone_noquorum(rs->qmcf,
                                  &server->sh->names[lk->name], 1))
    {
        return;
    }

    ngx_qqfail_event(rs->qmcf, NGX_LOG_WARN, rs->log, 0, server,
                     "fewer than %ui providers agree on the "
                     "addresses of \"%V\"", server->upstream->quorum,
                     &((ngx_qqfail_name_t *)
                       server->names.elts)[lk->name].host);
}


/* every provider failed: the most telling reason, an answer beats a timeout */

static ngx_uint_t
ngx_qqfail_lookup_error(ngx_qqfail_lookup_t *lk)
{
    ngx_uint_t  p, i, error, transport;
    ngx_uint_t  errors[NGX_QQFAIL_NERRS];

    ngx_memzero(errors, sizeof(errors));

    for (p = 0; p < lk->nproviders; p++) {
        error = lk->answer[p].abandoned
                ? NGX_QQFAIL_ERR_TIMEOUT
                : ngx_qqfail_answer_error(&lk->answer[p], &transport);
        errors[error]++;
    }

    error = NGX_QQFAIL_ERR_TIMEOUT;

    for (i = NGX_QQFAIL_ERR_SERVFAIL; i < NGX_QQFAIL_NERRS; i++) {
        if (errors[i]
            && (error == NGX_QQFAIL_ERR_TIMEOUT
                || errors[i] > errors[error]))
        {
            error = i;
        }
    }

    return error;
}


/* did a provider say that the name has no record of the types asked? */

static ngx_uint_t
ngx_qqfail_lookup_nodata(ngx_qqfail_lookup_t *lk)
{
    ngx_uint_t            p;
    ngx_qqfail_answer_t  *a;

    for (p = 0; p < lk->nproviders; p++) {
        a = &lk->answer[p];

        if (a->done && !a->abandoned
            && a->status[0] == NGX_QQFAIL_Q_NODATA
            && (lk->types == 1 || a->status[1] == NGX_QQFAIL_Q_NODATA))
        {
            return 1;
        }

        /* SRV: records, but no target has an address of the types asked */

        if (lk->srv && a->done && !a->abandoned && a->naddrs == 0
            && a->status[0] == NGX_QQFAIL_Q_OK
            && a->status[1] == NGX_QQFAIL_Q_NODATA)
        {
            return 1;
        }
    }

    return 0;
}


void
ngx_qqfail_lookup_deadline(ngx_event_t *ev)
{
    ngx_qqfail_lookup_t  *lk = ev->data;

    ngx_uint_t              p;
    ngx_qqfail_resolver_t  *rs;

    rs = lk->rs;

    /*
     * a leader that resumes after its lease ran out finds this timer
     * expired: the providers did not time out, the leader was not running
     */

    if (!ngx_qqfail_lead_check(rs)) {
        return;
    }

    /* providers that did not answer in time count as timed out */

    for (p = 0; p < lk->nproviders; p++) {
        if (!lk->answer[p].done && !lk->answer[p].abandoned) {
            lk->answer[p].abandoned = 1;

            ngx_qqfail_provider_account(rs, lk, p, 0,
                                        NGX_QQFAIL_ERR_TIMEOUT,
                                        1, 0);
        }
    }

    if (!lk->decided) {
        ngx_qqfail_lookup_decide(rs, lk, 1);
    }
}


static void
ngx_qqfail_lookup_release(ngx_qqfail_lookup_t *lk)
{
    if (lk->deadline.timer_set) {
        ngx_del_timer(&lk->deadline);
    }

    if (lk->job) {
        /* undecided: the channel was destroyed, or the lease was lost */
        lk->job->result[lk->name].lookup = NULL;
        lk->job->pending--;
        lk->job = NULL;
    }

    if (lk->targets) {
        ngx_free(lk->targets);
    }

    ngx_free(lk);
}
