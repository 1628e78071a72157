
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
static void ngx_qqfail_answer_add(ngx_qqfail_answer_t *a, in_port_t port,
    ngx_uint_t type, u_char *ip, ngx_uint_t n);
static socklen_t ngx_qqfail_addr_len(ngx_qqfail_sockaddr_t *sa);
static ngx_int_t ngx_qqfail_addr_cmp(const void *one, const void *two);
static void ngx_qqfail_answer_done(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_lookup_t *lk, ngx_uint_t p);
static ngx_uint_t ngx_qqfail_answer_error(ngx_qqfail_answer_t *a,
    ngx_uint_t *transport);
static ngx_uint_t ngx_qqfail_answer_same(ngx_qqfail_answer_t *a,
    ngx_qqfail_answer_t *b);
static void ngx_qqfail_answer_allow(ngx_qqfail_resolver_t *rs,
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
        res->owned = 0;
        return;
    }

    lk = ngx_qqfail_lookup_create(rs, job, n);
    host = lk ? ngx_alloc(name->host.len + 1, rs->log) : NULL;

    if (host == NULL) {
        if (lk) {
            ngx_qqfail_lookup_release(lk);
        }

        res->state = NGX_QQFAIL_NAME_FAILED;
        res->error = NGX_QQFAIL_ERR_OTHER;
        return;
    }

    ngx_memcpy(host, name->host.data, name->host.len);
    host[name->host.len] = '\0';

    ngx_qqfail_lookup_send(rs, lk, host);

    ngx_free(host);

    /* queries count when sent: an answer may never come */

    types = lk->types;
    pr = rs->qmcf->providers.elts;

    if (ngx_qqfail_lead_check(rs)) {
        for (p = 0; p < lk->nproviders; p++) {
            if (!lk->answer[p].abandoned) {
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
    ngx_qqfail_lookup_t    *lk;
    ngx_qqfail_provider_t  *pr;
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = job->server->upstream;

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

    job->result[n].lookup = lk;
    job->pending++;

    types = job->types;
    lk->types = types;
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
        ngx_add_timer(&lk->deadline, qscf->timeout + 50);
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
    ngx_uint_t              p, i, nq, types;
    ngx_qqfail_channel_t   *ch;
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = lk->server->upstream;
    types = lk->types;
    nq = 0;

    for (p = 0; p < lk->nproviders; p++) {

        if (lk->answer[p].abandoned) {
            continue;
        }

        /* the channels of this upstream's qqfail_timeout */

        ch = ngx_qqfail_channel(rs, qscf->channels * lk->nproviders + p);

        for (i = 0; i < types; i++) {
            lk->query[nq].lookup = lk;
            lk->query[nq].provider = p;
            lk->query[nq].type = i;
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

                ngx_qqfail_channel_query(rs, ch, host, i,
                                         &lk->query[nq]);
            }

            nq++;
        }

        if (ch) {
            ngx_qqfail_channel_timer(rs, ch);
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
            outcome = ngx_qqfail_answer_parse(rs, lk, q, abuf, alen);
        }

        a->status[q->type] = outcome;

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
    ngx_int_t                rc;
    ngx_qqfail_name_t       *name;
    ngx_qqfail_answer_t     *a;
    ngx_qqfail_provider_t   *pr;
    ngx_qqfail_dns_answer_t  ans;
    u_char                   addrs[NGX_QQFAIL_MAX_ADDRS * 16];

    a = &lk->answer[q->provider];
    name = &((ngx_qqfail_name_t *) lk->server->names.elts)[lk->name];

    ans.addrs = addrs;
    ans.max = NGX_QQFAIL_MAX_ADDRS - a->naddrs;

    rc = ngx_qqfail_dns_parse(abuf, alen, name->host.data,
                              name->host.len,
                              q->type ? NGX_QQFAIL_DNS_AAAA
                                           : NGX_QQFAIL_DNS_A,
                              &ans);

    /*
     * qqfail_dnssec: an answer counts only if the provider validated it;
     * its errors (SERVFAIL for bogus data) are errors as they are
     */

    if (q->dnssec
        && (rc == NGX_QQFAIL_DNS_OK || rc == NGX_QQFAIL_DNS_NODATA
            || rc == NGX_QQFAIL_DNS_NXDOMAIN))
    {
        if (!ans.ad) {
            a->unvalidated = 1;
            return NGX_QQFAIL_Q_UNVALIDATED;
        }

        a->validated = 1;
    }

    switch (rc) {

    case NGX_QQFAIL_DNS_OK:
        break;

    case NGX_QQFAIL_DNS_NODATA:
        return NGX_QQFAIL_Q_NODATA;

    case NGX_QQFAIL_DNS_NXDOMAIN:
        return NGX_QQFAIL_Q_NXDOMAIN;

    case NGX_QQFAIL_DNS_SERVFAIL:
        return NGX_QQFAIL_Q_SERVFAIL;

    case NGX_QQFAIL_DNS_REFUSED:
        return NGX_QQFAIL_Q_REFUSED;

    default: /* NGX_QQFAIL_DNS_RCODE, _MALFORMED, _MISMATCH */
        pr = rs->qmcf->providers.elts;

        ngx_log_error(NGX_LOG_INFO, rs->log, 0,
                      "qqfail: %s answer for \"%V\" from provider \"%V\" "
                      "refused: %s", q->type ? "AAAA" : "A", &name->host,
                      &pr[q->provider].name, ans.reason);
        return NGX_QQFAIL_Q_BADANSWER;
    }

#if !(NGX_HAVE_INET6)
    if (q->type) {
        return NGX_QQFAIL_Q_NODATA;
    }
#endif

    ngx_qqfail_answer_add(a, name->port, q->type, addrs, ans.naddrs);

    /* TTLs above 2^31 - 1 are zero (RFC 2181), so this fits in an int */

    if (a->ttl < 0 || (int) ans.ttl < a->ttl) {
        a->ttl = ans.ttl;
    }

    return NGX_QQFAIL_Q_OK;
}


/* the addresses of one answer (A: 4 bytes each, AAAA: 16) join the rest */

static void
ngx_qqfail_answer_add(ngx_qqfail_answer_t *a, in_port_t port,
    ngx_uint_t type, u_char *ip, ngx_uint_t n)
{
    ngx_uint_t            i, j;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    for (i = 0; i < n; i++) {
        j = a->naddrs;
        ngx_memzero(&a->addrs[j], sizeof(ngx_qqfail_sockaddr_t));

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


static void
ngx_qqfail_answer_sort(ngx_qqfail_answer_t *a)
{
    ngx_uint_t  i, j;

    /* by length (IPv4 first), then by their bytes; the lengths follow */

    ngx_sort(a->addrs, a->naddrs, sizeof(ngx_qqfail_sockaddr_t),
             ngx_qqfail_addr_cmp);

    for (i = 0; i < a->naddrs; i++) {
        a->socklen[i] = ngx_qqfail_addr_len(&a->addrs[i]);
    }

    /* drop duplicates */

    for (i = 1, j = 1; a->naddrs && i < a->naddrs; i++) {
        if (a->socklen[i] == a->socklen[j - 1]
            && ngx_memcmp(&a->addrs[i], &a->addrs[j - 1], a->socklen[i]) == 0)
        {
            continue;
        }

        a->addrs[j] = a->addrs[i];
        a->socklen[j] = a->socklen[i];
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
            j++;

        } else if (len == 0) {
            len = ngx_sock_ntop(&a->addrs[i].sockaddr, a->socklen[i], text,
                                NGX_QQFAIL_ADDR_STRLEN, 0);
        }
    }

    for (j = 0; j < n; j++) {
        a->addrs[j] = kept[j];
        a->socklen[j] = addrs[j].socklen;
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

    if (a->naddrs) {
        ngx_qqfail_answer_allow(rs, lk, p);
    }

    /* an empty answer, or one emptied by the filter, is a failure */

    a->ok = (a->naddrs > 0);

    error = ngx_qqfail_answer_error(a, &transport);

    disagree = 0;

    if (a->ok && lk->accepted >= 0
        && !ngx_qqfail_answer_same(a, &lk->answer[lk->accepted]))
    {
        disagree = 1;
    }

    if (ngx_qqfail_lead_check(rs)) {
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
                                 a->naddrs))
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
                                      + sizeof(ngx_qqfail_sockaddr_t)),
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

    for (i = 0; i < a->naddrs; i++) {
        sa[i] = a->addrs[i];
        res->addrs[i].sockaddr = &sa[i].sockaddr;
        res->addrs[i].socklen = a->socklen[i];
        res->addrs[i].name.len = 0;
        res->addrs[i].name.data = NULL;
    }

    pr = rs->qmcf->providers.elts;

    for (p = 0; p < lk->nproviders; p++) {
        if (p != (ngx_uint_t) best && lk->answer[p].done
            && lk->answer[p].ok
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

    ngx_free(lk);
}
