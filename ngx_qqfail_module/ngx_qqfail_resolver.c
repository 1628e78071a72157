
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_resolver.h"


static void ngx_qqfail_sync_run(ngx_qqfail_resolver_t *rs);
static ngx_uint_t ngx_qqfail_sync_queue(ngx_qqfail_resolver_t *rs);
static void ngx_qqfail_sync_end(ngx_qqfail_resolver_t *rs);
static ngx_uint_t ngx_qqfail_sync_served(
    ngx_qqfail_main_conf_t *qmcf);
static void ngx_qqfail_lease_handler(ngx_event_t *ev);
static void ngx_qqfail_lead_start(ngx_qqfail_resolver_t *rs);
static void ngx_qqfail_lead_stop(ngx_qqfail_resolver_t *rs);
static void ngx_qqfail_lead_lost(ngx_qqfail_resolver_t *rs);
static void ngx_qqfail_lead_end(ngx_qqfail_resolver_t *rs);
static void ngx_qqfail_lead_end_handler(ngx_event_t *ev);


/* the worker's resolver, for its exit hook alone */
static ngx_qqfail_resolver_t       *ngx_qqfail_rs;


/* the bounded synchronous pass at configuration time, in the master */

ngx_int_t
ngx_qqfail_resolver_sync(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf)
{
    ngx_qqfail_resolver_t  *rs;

    /* the pass's object lives as long as the pass */

    rs = ngx_calloc(sizeof(ngx_qqfail_resolver_t), cycle->log);
    if (rs == NULL) {
        return NGX_OK;
    }

    rs->qmcf = qmcf;
    rs->log = cycle->log;
    rs->sync = 1;
    rs->query_done = ngx_qqfail_query_done;
    ngx_queue_init(&rs->waiting);

    if (ngx_qqfail_channels_create(rs) == NGX_OK
        && ngx_qqfail_jobs_create(rs) == NGX_OK)
    {
        ngx_qqfail_sync_run(rs);
    }

    ngx_qqfail_sync_end(rs);

    ngx_qqfail_channels_destroy(rs);

    ngx_qqfail_jobs_destroy(rs);

    ngx_free(rs);

    return NGX_OK;
}


/*
 * The pass runs until its servers are done, qqfail_timeout at the latest,
 * or, once NGX_QQFAIL_START_PASS has passed, until every upstream
 * has a server with addresses
 */

static void
ngx_qqfail_sync_run(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t               n, todo;
    ngx_msec_t               deadline, enough, timeout;
    ngx_qqfail_job_t       **jobp;
    ngx_qqfail_srv_conf_t  **qscfp;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = rs->qmcf;

    timeout = 0;
    qscfp = qmcf->upstreams.elts;

    for (n = 0; n < qmcf->upstreams.nelts; n++) {
        timeout = ngx_max(timeout, qscfp[n]->timeout);
    }

    ngx_time_update();
    deadline = ngx_current_msec + timeout;
    enough = ngx_current_msec + ngx_min(timeout, NGX_QQFAIL_START_PASS);

    todo = ngx_qqfail_sync_queue(rs);
    jobp = rs->jobs->elts;

    while (todo) {
        ngx_qqfail_jobs_resume(rs);

        if (ngx_qqfail_channels_poll(rs, deadline, enough) != NGX_OK) {
            break;
        }

        todo = 0;

        for (n = 0; n < rs->jobs->nelts; n++) {
            if (jobp[n]->running || jobp[n]->queued) {
                todo++;
            }
        }

        ngx_time_update();

        if (todo && (ngx_msec_int_t) (ngx_current_msec - enough) >= 0
            && ngx_qqfail_sync_served(qmcf))
        {
            break;
        }
    }
}


/*
 * every name of every server without live addresses, at once; servers
 * a previous generation keeps up to date are left to it
 */

static ngx_uint_t
ngx_qqfail_sync_queue(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t               n, todo;
    ngx_qqfail_job_t       **jobp;
    ngx_qqfail_server_sh_t  *ssh;

    todo = 0;
    jobp = rs->jobs->elts;

    for (n = 0; n < rs->jobs->nelts; n++) {
        ssh = jobp[n]->server->sh;

        /*
         * a set agreed by fewer providers than this quorum asks, or one
         * the new rules refuse, is checked too
         */

        if ((ssh->source == NGX_QQFAIL_SOURCE_LIVE
             || ssh->source == NGX_QQFAIL_SOURCE_LITERAL)
            && ssh->quorum >= jobp[n]->server->upstream->quorum
            && !jobp[n]->server->refused)
        {
            continue;
        }

        /* paced like the leader's: the servers beyond wait their turn */

        ngx_queue_insert_tail(&rs->waiting, &jobp[n]->queue);
        jobp[n]->queued = 1;
        todo++;
    }

    return todo;
}


/*
 * undecided lookups that had their whole qqfail_timeout fail now: their
 * providers timed out; those the pacing started late are left undecided
 * to the leader, they prove nothing against a provider
 */

static void
ngx_qqfail_sync_end(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t            k, n;
    ngx_qqfail_job_t    **jobp;
    ngx_qqfail_lookup_t  *lk;

    if (rs->jobs == NULL) {
        return;
    }

    /* rounds that end now start nothing again: the leader takes them */

    rs->ending = 1;

    jobp = rs->jobs->elts;
    ngx_time_update();

    for (n = 0; n < rs->jobs->nelts; n++) {
        for (k = 0; k < jobp[n]->server->names.nelts; k++) {
            lk = jobp[n]->result[k].lookup;

            if (jobp[n]->running && lk
                && ngx_current_msec - lk->answer[0].sent
                   >= jobp[n]->server->upstream->timeout)
            {
                ngx_qqfail_lookup_deadline(&lk->deadline);
            }
        }
    }
}


/* may nginx start serving: has every upstream a server with addresses? */

static ngx_uint_t
ngx_qqfail_sync_served(ngx_qqfail_main_conf_t *qmcf)
{
    ngx_uint_t               i, j;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_srv_conf_t  **qscfp;

    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            if (server[j].sh->naddrs) {
                break;
            }
        }

        if (j == qscfp[i]->servers->nelts) {
            return 0;
        }
    }

    return 1;
}


/* the lookup leader: one worker of the current generation */

ngx_int_t
ngx_qqfail_resolver_init_process(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf)
{
    ngx_qqfail_resolver_t  *rs;

    /* the worker's object lives as long as the worker */

    rs = ngx_pcalloc(cycle->pool, sizeof(ngx_qqfail_resolver_t));
    if (rs == NULL) {
        return NGX_ERROR;
    }

    rs->qmcf = qmcf;
    rs->log = cycle->log;
    rs->epoch = qmcf->sh->epoch;
    rs->query_done = ngx_qqfail_query_done;
    rs->lead_lost = ngx_qqfail_lead_lost;
    ngx_queue_init(&rs->waiting);

    rs->lease_ev.handler = ngx_qqfail_lease_handler;
    rs->lease_ev.data = rs;
    rs->lease_ev.log = cycle->log;
    rs->lease_ev.cancelable = 1;

    ngx_add_timer(&rs->lease_ev, 1);

    /* for ngx_qqfail_resolver_exit_process(), nginx gives no context */

    ngx_qqfail_rs = rs;

    return NGX_OK;
}


void
ngx_qqfail_resolver_exit_process(ngx_cycle_t *cycle)
{
    ngx_qqfail_resolver_t  *rs = ngx_qqfail_rs;

    if (rs == NULL) {
        return;
    }

    if (rs->lease_ev.timer_set) {
        ngx_del_timer(&rs->lease_ev);
    }

    ngx_qqfail_lead_stop(rs);

    if (rs->qmcf && rs->qmcf->sh) {
        (void) ngx_qqfail_lease(rs->qmcf, (ngx_uint_t) -1,
                                0);
    }
}


static void
ngx_qqfail_lease_handler(ngx_event_t *ev)
{
    ngx_qqfail_resolver_t  *rs = ev->data;

    ngx_int_t  rc;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        ngx_qqfail_lead_stop(rs);
        return;
    }

    rc = ngx_qqfail_lease(rs->qmcf, rs->epoch,
                          rs->leading);

    if (rc == NGX_OK) {
        if (!rs->leading) {
            ngx_qqfail_lead_start(rs);

        } else {
            ngx_qqfail_channels_drops(rs);
        }

    } else if (rs->leading) {
        ngx_qqfail_lead_stop(rs);
    }

    if (rc == NGX_ABORT) {
        /* a newer generation runs: never lead again */
        return;
    }

    ngx_add_timer(ev, NGX_QQFAIL_LEASE_TICK);
}


static void
ngx_qqfail_lead_start(ngx_qqfail_resolver_t *rs)
{
    ngx_msec_t               now, delay;
    ngx_uint_t               n;
    ngx_qqfail_job_t       **jobp;
    ngx_qqfail_server_sh_t  *ssh;

    /* a lost leadership whose channels are still there ends first */

    ngx_qqfail_lead_stop(rs);

    ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                  "qqfail: worker %P leads DNS lookups (generation %ui)",
                  ngx_pid, rs->epoch);

    if (ngx_qqfail_channels_create(rs) != NGX_OK
        || ngx_qqfail_jobs_create(rs) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, rs->log, 0,
                      "qqfail: cannot start DNS lookups");
        ngx_qqfail_channels_destroy(rs);
        ngx_qqfail_jobs_destroy(rs);

        /* let another worker try */
        (void) ngx_qqfail_lease(rs->qmcf, (ngx_uint_t) -1,
                                0);
        return;
    }

    rs->leading = 1;

    /* the independence check: slow, and with the leadership alone */

    if (ngx_qqfail_check_start(rs) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rs->log, 0,
                      "qqfail: cannot start the independence check");
    }

    /* a first write tells at once whether the state file is writable */

    ngx_qqfail_state_changed(rs->qmcf, rs->log);

    /*
     * continue where the previous leader stopped, on the monotonic clock:
     * a wall clock step does not delay lookups; a lower "qqfail_refresh"
     * after a reload applies at once
     */

    now = ngx_qqfail_msec();
    jobp = rs->jobs->elts;

    for (n = 0; n < rs->jobs->nelts; n++) {
        ssh = jobp[n]->server->sh;
        delay = 1;

        if (ssh->source != NGX_QQFAIL_SOURCE_NONE) {
            if ((ngx_msec_int_t) (ssh->next_msec - now) > 0) {
                delay = ngx_min(ssh->next_msec - now,
                                jobp[n]->server->upstream->refresh);

            } else {
                /*
                 * overdue while no worker led (the start, a takeover):
                 * spread over an eighth of the refresh, not in one burst
                 * that every later round would repeat
                 */

                delay = 1 + ngx_random()
                            % (jobp[n]->server->upstream->refresh / 8 + 1);
            }
        }

        ngx_add_timer(&jobp[n]->timer, delay);
    }
}


static void
ngx_qqfail_lead_stop(ngx_qqfail_resolver_t *rs)
{
    if (rs->leading) {
        rs->leading = 0;

        ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                      "qqfail: worker %P stops DNS lookups", ngx_pid);
    }

    if (rs->stop_ev.posted) {
        ngx_delete_posted_event(&rs->stop_ev);
    }

    ngx_qqfail_lead_end(rs);
}


/* the lease ran out (ngx_qqfail_lead_check(), through rs->lead_lost) */

static void
ngx_qqfail_lead_lost(ngx_qqfail_resolver_t *rs)
{
    rs->leading = 0;

    ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                  "qqfail: worker %P lost its lease, stops DNS lookups",
                  ngx_pid);

    /* its pending state-file write would overwrite the new leader's */

    ngx_qqfail_state_cancel();

    /*
     * c-ares may be on the stack (this runs in its callbacks): the
     * channels go once it has returned; until then nothing is accounted
     * or published, as the leadership flag is off
     */

    rs->stop_ev.handler = ngx_qqfail_lead_end_handler;
    rs->stop_ev.data = rs;
    rs->stop_ev.log = rs->log;

    ngx_post_event(&rs->stop_ev, &ngx_posted_events);
}


static void
ngx_qqfail_lead_end_handler(ngx_event_t *ev)
{
    ngx_qqfail_lead_end(ev->data);
}


static void
ngx_qqfail_lead_end(ngx_qqfail_resolver_t *rs)
{
    ngx_qqfail_state_flush();

    /* callbacks of pending queries run now, and publish nothing */

    ngx_qqfail_channels_destroy(rs);
    ngx_qqfail_jobs_destroy(rs);
    ngx_qqfail_check_stop(rs);
}
