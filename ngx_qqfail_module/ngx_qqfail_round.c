
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_resolver.h"


static void ngx_qqfail_job_handler(ngx_event_t *ev);
static void ngx_qqfail_pacing_init(ngx_qqfail_resolver_t *rs);
static void ngx_qqfail_job_run(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
static void ngx_qqfail_job_next(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
static void ngx_qqfail_job_unqueue(ngx_qqfail_job_t *job);
static void ngx_qqfail_results_free(ngx_qqfail_job_t *job);
static ngx_uint_t ngx_qqfail_job_last(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
static ngx_uint_t ngx_qqfail_job_types(ngx_qqfail_job_t *job);
static ngx_uint_t ngx_qqfail_job_queries(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
static ngx_uint_t ngx_qqfail_job_inconclusive(ngx_qqfail_job_t *job);
static void ngx_qqfail_job_start(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_uint_t from, ngx_uint_t to);
static void ngx_qqfail_job_finish(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
static void ngx_qqfail_job_record(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_int_t chosen);
static void ngx_qqfail_job_use(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_int_t chosen);
static void ngx_qqfail_job_keep(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
static ngx_int_t ngx_qqfail_job_publish(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_uint_t n);
static void ngx_qqfail_job_schedule(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_qqfail_result_t *used);


/* jobs: the lookups of one server */

/*
 * Pacing: every lookup asks every provider, so the slowest "rate=" sets
 * how many queries a provider gets a second; "max_inflight=" is checked
 * per provider, query by query (ngx_qqfail_job_turn)
 */

static void
ngx_qqfail_pacing_init(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t              i;
    ngx_qqfail_provider_t  *pr;

    ngx_queue_init(&rs->waiting);
    ngx_memzero(rs->inflight, sizeof(rs->inflight));

    /* what the lookups call when one is decided, or a query ended */

    rs->lookup_done = ngx_qqfail_job_check;

    rs->resume_ev.handler = ngx_qqfail_jobs_resume_handler;
    rs->resume_ev.data = rs;
    rs->resume_ev.log = rs->log;

    rs->rate = 0;
    pr = rs->qmcf->providers.elts;

    for (i = 0; i < rs->qmcf->providers.nelts; i++) {
        if (pr[i].rate && (rs->rate == 0 || pr[i].rate < rs->rate)) {
            rs->rate = pr[i].rate;
        }
    }

    rs->tokens = rs->rate * 100;
    rs->tokens_at = ngx_qqfail_msec();
}


ngx_int_t
ngx_qqfail_jobs_create(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t               i, j, n, more;
    ngx_qqfail_job_t        *job, **jobp;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_srv_conf_t  **qscfp;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = rs->qmcf;

    ngx_qqfail_pacing_init(rs);

    /* on the heap: leadership may start and stop many times per cycle */

    rs->jobs = ngx_alloc(sizeof(ngx_array_t), rs->log);
    if (rs->jobs == NULL) {
        return NGX_ERROR;
    }

    rs->jobs->elts = NULL;
    rs->jobs->nelts = 0;

    n = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        n += qscfp[i]->servers->nelts;
    }

    rs->jobs->elts = ngx_alloc((n ? n : 1) * sizeof(ngx_qqfail_job_t *),
                               rs->log);
    if (rs->jobs->elts == NULL) {
        return NGX_ERROR;
    }

    qscfp = qmcf->upstreams.elts;

    /*
     * the upstreams' servers in turn (the first of each, the second of
     * each, ...): servers wait for their turn in this order, and every
     * upstream gets addresses early, not the first one in nginx.conf
     * first
     */

    for (j = 0; /* void */; j++) {
        more = 0;

        for (i = 0; i < qmcf->upstreams.nelts; i++) {
            if (j >= qscfp[i]->servers->nelts) {
                continue;
            }

            more = 1;
            server = qscfp[i]->servers->elts;

            job = ngx_calloc(offsetof(ngx_qqfail_job_t, result)
                             + server[j].names.nelts
                               * sizeof(ngx_qqfail_result_t),
                             rs->log);
            if (job == NULL) {
                return NGX_ERROR;
            }

            jobp = rs->jobs->elts;
            jobp[rs->jobs->nelts++] = job;

            job->rs = rs;
            job->server = &server[j];
            job->timer.handler = ngx_qqfail_job_handler;
            job->timer.data = job;
            job->timer.log = rs->log;
            job->timer.cancelable = 1;
        }

        if (!more) {
            break;
        }
    }

    return ngx_qqfail_lookups_share(rs);
}


void
ngx_qqfail_jobs_destroy(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t              i;
    ngx_qqfail_job_t       **jobp;

    if (rs->jobs == NULL) {
        return;
    }

    ngx_qqfail_lookups_unshare(rs);

    jobp = rs->jobs->elts;

    for (i = 0; i < rs->jobs->nelts; i++) {
        if (jobp[i]->timer.timer_set) {
            ngx_del_timer(&jobp[i]->timer);
        }

        ngx_qqfail_results_free(jobp[i]);
        ngx_free(jobp[i]);
    }

    if (rs->jobs->elts) {
        ngx_free(rs->jobs->elts);
    }

    ngx_free(rs->jobs);
    rs->jobs = NULL;

    if (rs->resume_ev.posted) {
        ngx_delete_posted_event(&rs->resume_ev);
    }

    if (rs->resume_ev.timer_set) {
        ngx_del_timer(&rs->resume_ev);
    }

    ngx_queue_init(&rs->waiting);
    ngx_memzero(rs->inflight, sizeof(rs->inflight));
}


static void
ngx_qqfail_job_handler(ngx_event_t *ev)
{
    ngx_qqfail_job_t       *job = ev->data;
    ngx_qqfail_resolver_t  *rs = job->rs;

    if (job->queued || !ngx_qqfail_lead_check(rs)) {
        return;
    }

    if (job->running) {

        /*
         * a server with no address whose first names are still undecided:
         * its remaining aliases are asked now, paced, ahead of the servers
         * waiting for their round
         */

        if (job->phase == 1 && job->queried < job->server->names.nelts) {
            ngx_qqfail_job_next(rs, job);
        }

        return;
    }

    /*
     * paced: a server waits for its turn, in order; its lookups' timeouts
     * start when they are sent, so waiting never counts against a provider
     */

    if (!ngx_queue_empty(&rs->waiting)
        || !ngx_qqfail_job_turn(rs, job))
    {
        ngx_queue_insert_tail(&rs->waiting, &job->queue);
        job->queued = 1;
        return;
    }

    ngx_qqfail_job_run(rs, job);
}


/*
 * May this server's round start now?  Only if every provider it asks has
 * room for the round's queries beside those still in flight to it
 * ("max_inflight=", counted until each query ends, however the lookup
 * was decided), and not faster than the slowest "rate="
 * (ngx_qqfail_rate_take), with a timer that resumes the waiting servers
 * when the next token is due.
 *
 * A provider marked down is left out while another one is up: it would
 * hold every turn for its whole timeout; it gets a query only where it
 * has room (ngx_qqfail_job_lookup), so it is still asked, paced.
 */

ngx_uint_t
ngx_qqfail_job_turn(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    ngx_uint_t              p, up, need;
    ngx_msec_t              wait;
    ngx_qqfail_provider_t  *pr;

    need = ngx_qqfail_job_queries(rs, job);
    pr = rs->qmcf->providers.elts;

    up = 0;

    for (p = 0; p < rs->nproviders; p++) {
        if (!pr[p].sh->down) {
            up++;
        }
    }

    for (p = 0; p < rs->nproviders; p++) {
        if (up && pr[p].sh->down) {
            continue;
        }

        if (rs->inflight[p] + need > pr[p].max_inflight
            && rs->inflight[p] > 0)
        {
            return 0;
        }
    }

    wait = ngx_qqfail_rate_take(rs, need);

    if (wait == 0) {
        return 1;
    }

    if (!rs->sync && !rs->resume_ev.timer_set) {
        rs->resume_ev.handler = ngx_qqfail_jobs_resume_handler;
        rs->resume_ev.data = rs;
        rs->resume_ev.log = rs->log;
        rs->resume_ev.cancelable = 1;
        ngx_add_timer(&rs->resume_ev, wait);
    }

    return 0;
}


/*
 * The slowest "rate=", for a round and for the independence check's
 * queries alike: takes "need" queries' tokens and returns 0, or returns
 * the milliseconds until they are there.  A token bucket holding a tenth
 * of a second's worth (no burst above the rate), refilled by the clock.
 */

ngx_msec_t
ngx_qqfail_rate_take(ngx_qqfail_resolver_t *rs, ngx_uint_t need)
{
    ngx_msec_t  now, wait;

    if (rs->rate == 0) {
        return 0;
    }

    now = ngx_qqfail_msec();

    rs->tokens = ngx_min(rs->tokens + (now - rs->tokens_at) * rs->rate,
                         ngx_max(rs->rate * 100, need * 1000));
    rs->tokens_at = now;

    if (rs->tokens >= need * 1000) {
        rs->tokens -= need * 1000;
        return 0;
    }

    wait = (need * 1000 - rs->tokens + rs->rate - 1) / rs->rate;

    return wait ? wait : 1;
}


/*
 * The names a round asks first: its current one and every better one.
 * The start-up pass asks every name at once, it has no time to wait; the
 * leader asks the others when these fail, or, for a server with no
 * address, when they are still undecided after a quarter of
 * qqfail_timeout (ngx_qqfail_job_handler): a healthy primary name
 * costs no query for its aliases.
 */

static ngx_uint_t
ngx_qqfail_job_last(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    ngx_uint_t  last;

    last = rs->sync ? job->server->names.nelts - 1
                                : job->server->sh->active;

    return ngx_min(last, job->server->names.nelts - 1);
}


/*
 * The record types a round asks: A, and AAAA too with qqfail_ipv6 on.  A
 * server with no address asks A alone first: it serves once the A answers
 * are in, with half the queries, so that a start asks every server's A
 * before any AAAA; its AAAA come with its next round, the first refresh,
 * spread within its window.  A round of A alone that cannot tell a name
 * without IPv4 from a failed one (no A record, or only refused ones) is
 * asked again with both at once (ngx_qqfail_job_inconclusive).
 */

static ngx_uint_t
ngx_qqfail_job_types(ngx_qqfail_job_t *job)
{
    if (!job->server->upstream->ipv6) {
        return 1;
    }

    if (job->server->sh->source == NGX_QQFAIL_SOURCE_NONE
        && !job->both)
    {
        return 1;
    }

    return 2;
}


/* the queries the next step of a round sends each provider */

static ngx_uint_t
ngx_qqfail_job_queries(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    ngx_uint_t          n, from, last, need, types;
    ngx_qqfail_name_t  *name;

    if (job->running) {
        from = job->queried;
        last = job->server->names.nelts - 1;
        types = job->types;

    } else {
        from = 0;
        last = ngx_qqfail_job_last(rs, job);
        types = ngx_qqfail_job_types(job);
    }

    name = job->server->names.elts;
    need = 0;

    /*
     * an SRV name: its SRV query, and a target's at least; its other
     * targets' queries are charged when they are sent
     * (ngx_qqfail_targets_send)
     */

    for (n = from; n <= last; n++) {
        if (!name[n].literal) {
            need += name[n].srv ? 1 + types : types;
        }
    }

    return need;
}


/* a job leaves the queue of those waiting for their turn */

static void
ngx_qqfail_job_unqueue(ngx_qqfail_job_t *job)
{
    if (job->queued) {
        ngx_queue_remove(&job->queue);
        job->queued = 0;
    }
}


/*
 * The next step of a server: the remaining aliases of its round, or (once
 * the round ended) the round again: now, or first in line for a turn
 */

static void
ngx_qqfail_job_next(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    /* already waiting (the hedge queued it): its turn starts the step */

    if (job->queued) {
        return;
    }

    if (!ngx_qqfail_job_turn(rs, job)) {
        ngx_queue_insert_head(&rs->waiting, &job->queue);
        job->queued = 1;
        return;
    }

    ngx_qqfail_job_run(rs, job);
}


static void
ngx_qqfail_job_run(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    if (job->running) {
        /* the remaining aliases, at once */

        if (job->timer.timer_set) {
            ngx_del_timer(&job->timer);
        }

        job->phase = 2;
        ngx_qqfail_job_start(rs, job, job->queried,
                             job->server->names.nelts - 1);
        return;
    }

    job->phase = 1;
    job->types = ngx_qqfail_job_types(job);

    /* a server with no address does not wait long for its first names */

    if (!rs->sync
        && job->server->sh->source == NGX_QQFAIL_SOURCE_NONE
        && ngx_qqfail_job_last(rs, job) + 1 < job->server->names.nelts)
    {
        ngx_add_timer(&job->timer, job->server->upstream->timeout / 4);
    }

    ngx_qqfail_job_start(rs, job, 0, ngx_qqfail_job_last(rs, job));
}


/* lookups ended: servers waiting for their turn get it */

void
ngx_qqfail_jobs_resume_handler(ngx_event_t *ev)
{
    ngx_qqfail_jobs_resume(ev->data);
}


void
ngx_qqfail_jobs_resume(ngx_qqfail_resolver_t *rs)
{
    ngx_queue_t       *q;
    ngx_qqfail_job_t  *job;

    while (!ngx_queue_empty(&rs->waiting)) {

        q = ngx_queue_head(&rs->waiting);
        job = ngx_queue_data(q, ngx_qqfail_job_t, queue);

        if (!ngx_qqfail_lead_check(rs)
            || !ngx_qqfail_job_turn(rs, job))
        {
            return;
        }

        ngx_queue_remove(q);
        job->queued = 0;

        ngx_qqfail_job_run(rs, job);
    }
}


/* the round is over, or starts again: its addresses go */

static void
ngx_qqfail_results_free(ngx_qqfail_job_t *job)
{
    ngx_uint_t            n;
    ngx_qqfail_result_t  *res;

    for (n = 0; n < job->server->names.nelts; n++) {
        res = &job->result[n];

        if (res->owned) {
            ngx_free(res->addrs);
        }

        res->state = NGX_QQFAIL_NAME_UNKNOWN;
        res->naddrs = 0;
        res->ttl = -1;
        res->addrs = NULL;
        res->srv = NULL;
        res->owned = 0;
        res->nodata = 0;
        res->lookup = NULL;
    }
}


static void
ngx_qqfail_job_start(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_uint_t from, ngx_uint_t to)
{
    ngx_uint_t  n;

    if (job->phase == 1) {
        ngx_qqfail_results_free(job);
    }

    job->running = 1;
    job->starting = 1;
    job->queried = to + 1;

    for (n = from; n <= to; n++) {
        ngx_qqfail_job_lookup(rs, job, n);
    }

    job->starting = 0;

    ngx_qqfail_job_check(rs, job);
}


void
ngx_qqfail_job_check(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    ngx_uint_t  n, nnames;

    if (job->starting || job->pending) {
        return;
    }

    if (!rs->leading && !rs->sync) {
        /* leadership ended: the round is abandoned */
        ngx_qqfail_job_unqueue(job);
        job->running = 0;
        return;
    }

    nnames = job->server->names.nelts;

    for (n = 0; n < job->queried; n++) {
        if (job->result[n].state == NGX_QQFAIL_NAME_OK
            || (job->result[n].state == NGX_QQFAIL_NAME_NOQUORUM
                && n == job->server->sh->active
                && job->server->sh->source != NGX_QQFAIL_SOURCE_NONE))
        {
            ngx_qqfail_job_finish(rs, job);
            return;
        }
    }

    /*
     * every name so far failed: the remaining aliases are asked at once,
     * paced as a round is, ahead of the servers waiting for their round
     */

    if (job->phase == 1 && job->queried < nnames && !rs->sync
        && !ngx_qqfail_job_inconclusive(job))
    {
        ngx_qqfail_job_next(rs, job);
        return;
    }

    ngx_qqfail_job_finish(rs, job);
}


/*
 * The round is over: the policy chooses the name that supplies the
 * addresses (ngx_qqfail_policy_choose), then the steps below record
 * what every name found, use the chosen name, or, when every name failed,
 * keep the last good addresses until qqfail_max_stale.
 */

static void
ngx_qqfail_job_finish(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    ngx_int_t                chosen;
    ngx_uint_t               n, recover;
    ngx_uint_t               state[NGX_QQFAIL_MAX_NAMES];
    ngx_qqfail_server_sh_t  *ssh;

    job->running = 0;

    /* aliases the hedge queued are not needed any more */

    ngx_qqfail_job_unqueue(job);

    if (job->timer.timer_set) {
        ngx_del_timer(&job->timer);
    }

    /* the last check before anything is published */

    if (!ngx_qqfail_lead_check(rs)) {
        return;
    }

    if (ngx_qqfail_job_inconclusive(job)) {

        if (rs->ending) {
            /* the start-up pass ends: the leader asks again */
            ngx_qqfail_results_free(job);
            return;
        }

        job->both = 1;
        ngx_qqfail_results_free(job);
        ngx_qqfail_job_next(rs, job);
        return;
    }

    ssh = job->server->sh;

    for (n = 0; n < job->queried; n++) {
        state[n] = job->result[n].state;
    }

    /* the leader alone writes "recover" */

    recover = ssh->recover;

    chosen = ngx_qqfail_policy_choose(job->queried, state, ssh->active,
                                      ssh->source, &recover);

    ssh->recover = recover;

    ngx_qqfail_job_record(rs, job, chosen);

    if (chosen >= 0) {
        ngx_qqfail_job_use(rs, job, chosen);

    } else {
        ngx_qqfail_job_keep(rs, job);
        ngx_qqfail_job_schedule(rs, job, NULL);
    }

    ngx_qqfail_results_free(job);
}


/*
 * A round of A alone (ngx_qqfail_job_types) decides nothing when a
 * name it asked found no A record, or only addresses qqfail_allow
 * refuses: the name may have AAAA records that serve.  Timeouts, errors,
 * NXDOMAIN and disagreements are the same for either type: those rounds
 * end as any round does.
 */

static ngx_uint_t
ngx_qqfail_job_inconclusive(ngx_qqfail_job_t *job)
{
    ngx_uint_t            n;
    ngx_qqfail_result_t  *res;

    if (job->types != 1 || !job->server->upstream->ipv6) {
        return 0;
    }

    for (n = 0; n < job->queried; n++) {
        res = &job->result[n];

        if (res->state == NGX_QQFAIL_NAME_OK) {
            return 0;
        }

        if (res->state == NGX_QQFAIL_NAME_FAILED
            && (res->nodata || res->rejected))
        {
            return 1;
        }
    }

    return 0;
}


/* what each name found, for the status page */

static void
ngx_qqfail_job_record(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_int_t chosen)
{
    ngx_uint_t                n;
    ngx_qqfail_result_t      *res;
    ngx_qqfail_name_report_t  report[NGX_QQFAIL_MAX_NAMES];

    for (n = 0; n < job->queried; n++) {
        res = &job->result[n];

        report[n].state = res->state;
        report[n].error = res->error;
        report[n].naddrs = res->naddrs;
        report[n].rejected = res->rejected;
    }

    ngx_qqfail_zone_names(rs->qmcf, job->server->sh, job->queried,
                          report,
                          chosen >= 0
                          && job->result[chosen].state
                                  == NGX_QQFAIL_NAME_OK);
}


/*
 * The chosen name's addresses are published (a set without a quorum
 * leaves the ones in use); a zone too full for them, when the server has
 * no address at all, makes a later name whose set fits (an IP literal)
 * serve it.  A change of name is counted and logged.
 */

static void
ngx_qqfail_job_use(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_int_t chosen)
{
    ngx_int_t                rc;
    ngx_uint_t               n, cur, source;
    ngx_qqfail_name_t       *names;
    ngx_qqfail_result_t     *res;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_server_sh_t  *ssh;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = rs->qmcf;
    server = job->server;
    ssh = server->sh;
    names = server->names.elts;

    cur = ssh->active;
    source = ssh->source;
    res = &job->result[chosen];

    if (res->state == NGX_QQFAIL_NAME_OK) {
        rc = ngx_qqfail_job_publish(rs, job, chosen);

        for (n = chosen + 1;
             rc == NGX_ERROR && ssh->naddrs == 0 && n < job->queried;
             n++)
        {
            if (job->result[n].state == NGX_QQFAIL_NAME_OK) {
                rc = ngx_qqfail_job_publish(rs, job, n);

                if (rc != NGX_ERROR) {
                    chosen = n;
                    res = &job->result[n];
                }
            }
        }

        if (rc == 1 && !rs->sync) {
            ngx_qqfail_state_changed(qmcf, rs->log);
        }
    }

    if ((ngx_uint_t) chosen != cur && source != NGX_QQFAIL_SOURCE_NONE) {
        ngx_qqfail_zone_failover(qmcf, ssh);

        if ((ngx_uint_t) chosen > cur) {
            ngx_qqfail_event(qmcf, NGX_LOG_WARN, rs->log, 0,
                             server, "every provider failed for \"%V\" "
                             "(%V), failing over to \"%V\"",
                             &names[cur].host,
                             &ngx_qqfail_errors[
                                      job->result[cur].error],
                             &names[chosen].text);

        } else {
            ngx_qqfail_event(qmcf, NGX_LOG_WARN, rs->log, 0,
                             server, "\"%V\" resolves again, back from "
                             "\"%V\"", &names[chosen].text,
                             &names[cur].text);
        }
    }

    ngx_qqfail_job_schedule(rs, job, res);
}


/*
 * Every name failed: the last good addresses stay, marked stale, until
 * they are older than qqfail_max_stale; then the server has none.
 */

static void
ngx_qqfail_job_keep(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job)
{
    ngx_uint_t               stale, expired;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_server_sh_t  *ssh;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = rs->qmcf;
    server = job->server;
    ssh = server->sh;

    stale = ngx_qqfail_zone_stale(qmcf, server);
    expired = stale & NGX_QQFAIL_STALE_EXPIRED;
    stale &= NGX_QQFAIL_STALE_NEW;

    if (stale) {
        ngx_qqfail_event(qmcf, NGX_LOG_ERR, rs->log, 0,
                         server, "every provider failed for every name "
                         "(%V), using the last good addresses",
                         &ngx_qqfail_errors[job->result[0].error]);
    }

    if (expired) {
        (void) ngx_qqfail_zone_publish(qmcf, server, ssh->active, NULL,
                                       NULL, NULL, 0,
                                       NGX_QQFAIL_SOURCE_NONE,
                                       rs->log);

        if (!rs->sync) {
            ngx_qqfail_state_changed(qmcf, rs->log);
        }

        ngx_qqfail_event(qmcf, NGX_LOG_ERR, rs->log, 0,
                         server, "the last good addresses are older "
                         "than qqfail_max_stale, server unavailable");
    }
}


static ngx_int_t
ngx_qqfail_job_publish(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_uint_t n)
{
    ngx_qqfail_result_t     *res;
    ngx_qqfail_main_conf_t  *qmcf;
    ngx_qqfail_geo_t         geo[NGX_QQFAIL_MAX_ADDRS];

    qmcf = rs->qmcf;
    res = &job->result[n];

    if (qmcf->geo_country || qmcf->geo_asn) {
        ngx_qqfail_geo_annotate(qmcf, res->addrs, res->naddrs, geo);
    }

    return ngx_qqfail_zone_publish(qmcf, job->server, n, res->addrs,
                                   (qmcf->geo_country || qmcf->geo_asn)
                                   ? geo : NULL,
                                   res->srv, res->naddrs,
                                   ((ngx_qqfail_name_t *)
                                    job->server->names.elts)[n].literal
                                   ? NGX_QQFAIL_SOURCE_LITERAL
                                   : NGX_QQFAIL_SOURCE_LIVE,
                                   rs->log);
}


static void
ngx_qqfail_job_schedule(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_qqfail_result_t *used)
{
    ngx_msec_t              next, ttl, last;
    ngx_uint_t              name;
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = job->server->upstream;

    next = qscf->refresh;

    /*
     * A TTL shorter than qqfail_refresh sets the pace.  A provider's
     * cache gives the rest of a longer one, which ends at the same moment
     * for every name it fetched together (all of them, at a start): the
     * refresh keeps its own pace then, or it would ask them all again at
     * that moment, and again one refresh later.  The record's TTL is the
     * longer of the last two answers: one of them came fresh, unless
     * the TTL was lowered, which two answers then show.
     */

    if (used && used->ttl >= 0) {
        ttl = (ngx_msec_t) used->ttl * 1000;
        name = used - job->result;

        /* the last answer counts if it was for the same name */

        last = (job->ttl_name == name) ? job->ttl : 0;

        if (ngx_max(ttl, last) < next) {
            next = ttl;
        }

        job->ttl = ttl;
        job->ttl_name = name;
    }

    /* while the primary name fails, retry it sooner, backing off */

    if (job->result[0].state != NGX_QQFAIL_NAME_OK) {
        job->backoff = job->backoff ? ngx_min(job->backoff * 2, qscf->refresh)
                                    : 1000;
        next = ngx_min(next, job->backoff);

    } else {
        job->backoff = 0;
    }

    if (next < 1000) {
        next = 1000;
    }

    /*
     * an even spread: the first refresh of each server after the start-up
     * pass or a new leader's first lookups (which come all at once) falls
     * anywhere in its window; later ones within 1/16 either side, so that
     * the queries per second stay flat instead of coming in bursts
     */

    if (!job->scheduled) {
        job->scheduled = 1;
        next = 1000 + ngx_random() % (next - 1000 + 1);

    } else {
        next = next - next / 16 + ngx_random() % (next / 8 + 1);
    }

    /* the monotonic time schedules, the wall clock time is shown */

    job->server->sh->next_msec = ngx_qqfail_msec() + next;
    job->server->sh->next_lookup = ngx_time() + next / 1000;

    if (rs->sync || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(&job->timer, next);
}
