
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ares.h>
#include <arpa/nameser.h>
#include <poll.h>

#if (NGX_LINUX)
#include <linux/sock_diag.h>
#endif

#include "ngx_http_qqfail_module.h"
#include "ngx_http_qqfail_dns.h"


#define NGX_HTTP_QQFAIL_LEASE_TICK     250
#define NGX_HTTP_QQFAIL_NAME_NOQUORUM  3
#define NGX_HTTP_QQFAIL_MAX_CONNS      (2 * NGX_HTTP_QQFAIL_MAX_PROVIDER_ADDRS)

/* the socket buffer for the answers of the lookups in flight */
#define NGX_HTTP_QQFAIL_RCVBUF         (1024 * 1024)


typedef struct {
    ares_channel                     channel;
    ngx_http_qqfail_provider_t      *provider;
    ngx_event_t                      timer;
    ngx_uint_t                       nconns;
    ngx_connection_t                *conns[NGX_HTTP_QQFAIL_MAX_CONNS];
    uint32_t                         drops[NGX_HTTP_QQFAIL_MAX_CONNS];
} ngx_http_qqfail_channel_t;


typedef struct ngx_http_qqfail_lookup_s  ngx_http_qqfail_lookup_t;


typedef struct {
    ngx_http_qqfail_lookup_t        *lookup;
    ngx_uint_t                       provider;
    ngx_uint_t                       type;       /* 0: A, 1: AAAA */
} ngx_http_qqfail_query_t;


/* one provider's answers for one name */

typedef struct {
    ngx_uint_t                       pending;
    int                              status[2];
    ngx_uint_t                       naddrs;
    int                              ttl;
    ngx_msec_t                       sent;
    unsigned                         done:1;
    unsigned                         ok:1;
    unsigned                         abandoned:1;
    ngx_http_qqfail_sockaddr_t       addrs[NGX_HTTP_QQFAIL_MAX_ADDRS];
    socklen_t                        socklen[NGX_HTTP_QQFAIL_MAX_ADDRS];
} ngx_http_qqfail_answer_t;


/* one name looked up through every provider */

struct ngx_http_qqfail_lookup_s {
    ngx_http_qqfail_job_t           *job;        /* NULL once decided */
    ngx_http_qqfail_server_t        *server;
    ngx_uint_t                       name;
    ngx_uint_t                       queries;    /* outstanding */
    ngx_uint_t                       nproviders;
    ngx_int_t                        accepted;   /* answer index, or -1 */
    ngx_uint_t                       rejected;   /* by qqfail_allow */
    ngx_event_t                      deadline;
    unsigned                         decided:1;
    unsigned                         paced:1;    /* counted in flight */
    ngx_http_qqfail_query_t          query[2 * NGX_HTTP_QQFAIL_MAX_PROVIDERS];
    ngx_http_qqfail_answer_t         answer[1];  /* nproviders of them */
};


/* the results of one name in a round */

typedef struct {
    ngx_uint_t                       state;
    ngx_uint_t                       error;
    ngx_uint_t                       naddrs;
    ngx_uint_t                       rejected;
    int                              ttl;
    ngx_http_qqfail_lookup_t        *lookup;

    /*
     * allocated when the name is decided, freed when the round ends: a
     * job waits small, whatever the number of servers
     */
    ngx_addr_t                      *addrs;
    unsigned                         owned:1;
} ngx_http_qqfail_result_t;


/* the periodic lookups of one qqfail_server, in the leader */

struct ngx_http_qqfail_job_s {
    ngx_http_qqfail_server_t        *server;
    ngx_event_t                      timer;
    ngx_msec_t                       backoff;
    ngx_uint_t                       pending;    /* lookups undecided */
    ngx_uint_t                       phase;
    ngx_uint_t                       queried;    /* names in this round */
    ngx_queue_t                      queue;      /* waiting for its turn */
    unsigned                         running:1;
    unsigned                         starting:1;
    unsigned                         queued:1;
    unsigned                         scheduled:1;  /* once since start */
    ngx_http_qqfail_result_t         result[1];  /* one a name */
};


static ngx_int_t ngx_http_qqfail_channels_create(ngx_cycle_t *cycle,
    ngx_uint_t sync);
static void ngx_http_qqfail_channels_destroy(void);
static int ngx_http_qqfail_sock_create(ares_socket_t fd, int type,
    void *data);
static void ngx_http_qqfail_sock_state(void *data, ares_socket_t fd,
    int readable, int writable);
static void ngx_http_qqfail_sock_buffer(ares_socket_t fd);
static void ngx_http_qqfail_channel_drops(ngx_http_qqfail_channel_t *ch,
    ngx_uint_t i);
static void ngx_http_qqfail_channels_drops(void);
static ngx_connection_t **ngx_http_qqfail_channel_conn(
    ngx_http_qqfail_channel_t *ch, ares_socket_t fd);
static void ngx_http_qqfail_channel_read(ngx_event_t *ev);
static void ngx_http_qqfail_channel_write(ngx_event_t *ev);
static void ngx_http_qqfail_channel_timeout(ngx_event_t *ev);
static void ngx_http_qqfail_channel_timer(ngx_http_qqfail_channel_t *ch);

static ngx_int_t ngx_http_qqfail_jobs_create(ngx_cycle_t *cycle);
static void ngx_http_qqfail_jobs_destroy(void);
static void ngx_http_qqfail_job_handler(ngx_event_t *ev);
static void ngx_http_qqfail_job_run(ngx_http_qqfail_job_t *job);
static void ngx_http_qqfail_results_free(ngx_http_qqfail_job_t *job);
static ngx_uint_t ngx_http_qqfail_job_turn(void);
static void ngx_http_qqfail_jobs_resume(ngx_event_t *ev);
static void ngx_http_qqfail_job_start(ngx_http_qqfail_job_t *job,
    ngx_uint_t from, ngx_uint_t to);
static void ngx_http_qqfail_job_lookup(ngx_http_qqfail_job_t *job,
    ngx_uint_t n);
static void ngx_http_qqfail_job_check(ngx_http_qqfail_job_t *job);
static void ngx_http_qqfail_job_finish(ngx_http_qqfail_job_t *job);
static ngx_int_t ngx_http_qqfail_job_publish(ngx_http_qqfail_job_t *job,
    ngx_uint_t n);
static void ngx_http_qqfail_job_schedule(ngx_http_qqfail_job_t *job,
    ngx_http_qqfail_result_t *used);

static void ngx_http_qqfail_query_handler(void *arg, int status,
    int timeouts, unsigned char *abuf, int alen);
static int ngx_http_qqfail_answer_parse(ngx_http_qqfail_lookup_t *lk,
    ngx_http_qqfail_query_t *q, unsigned char *abuf, int alen);
static void ngx_http_qqfail_answer_done(ngx_http_qqfail_lookup_t *lk,
    ngx_uint_t p);
static ngx_uint_t ngx_http_qqfail_answer_error(ngx_http_qqfail_answer_t *a,
    ngx_uint_t *transport);
static ngx_uint_t ngx_http_qqfail_answer_same(ngx_http_qqfail_answer_t *a,
    ngx_http_qqfail_answer_t *b);
static void ngx_http_qqfail_answer_allow(ngx_http_qqfail_lookup_t *lk,
    ngx_uint_t p);
static void ngx_http_qqfail_lookup_decide(ngx_http_qqfail_lookup_t *lk,
    ngx_uint_t all);
static void ngx_http_qqfail_lookup_deadline(ngx_event_t *ev);
static void ngx_http_qqfail_lookup_release(ngx_http_qqfail_lookup_t *lk);
static void ngx_http_qqfail_lookup_unpace(ngx_http_qqfail_lookup_t *lk);
static void ngx_http_qqfail_provider_account(ngx_http_qqfail_lookup_t *lk,
    ngx_uint_t p, ngx_uint_t ok, ngx_uint_t error, ngx_uint_t transport,
    ngx_uint_t disagree);

static void ngx_http_qqfail_lease_handler(ngx_event_t *ev);
static void ngx_http_qqfail_lead_start(ngx_cycle_t *cycle);
static void ngx_http_qqfail_lead_stop(void);
static ngx_uint_t ngx_http_qqfail_lead_check(void);
static void ngx_http_qqfail_lead_lost(void);
static void ngx_http_qqfail_lead_end(ngx_event_t *ev);


ngx_str_t  ngx_http_qqfail_sources[] = {
    ngx_string("none"),
    ngx_string("live"),
    ngx_string("stale"),
    ngx_string("state_file"),
    ngx_string("literal")
};


ngx_str_t  ngx_http_qqfail_errors[] = {
    ngx_string("timeout"),
    ngx_string("servfail"),
    ngx_string("nxdomain"),
    ngx_string("refused"),
    ngx_string("other"),
    ngx_string("bad_answer")
};


static ngx_http_qqfail_main_conf_t  *ngx_http_qqfail_qmcf;
static ngx_http_qqfail_channel_t    *ngx_http_qqfail_channels;
static ngx_uint_t                    ngx_http_qqfail_nchannels;
static ngx_uint_t                    ngx_http_qqfail_nproviders;
static ngx_uint_t                    ngx_http_qqfail_inflight;
static ngx_uint_t                    ngx_http_qqfail_limit;   /* lookups */
static ngx_uint_t                    ngx_http_qqfail_rate;    /* a second */
static ngx_msec_t                    ngx_http_qqfail_tokens_at;
static ngx_uint_t                    ngx_http_qqfail_tokens;  /* x 1000 */
static ngx_queue_t                   ngx_http_qqfail_waiting;
static ngx_event_t                   ngx_http_qqfail_resume_ev;
static ngx_array_t                  *ngx_http_qqfail_jobs;   /* job_t * */
static ngx_uint_t                    ngx_http_qqfail_sync;
static ngx_uint_t                    ngx_http_qqfail_leading;
static ngx_uint_t                    ngx_http_qqfail_epoch;
static ngx_event_t                   ngx_http_qqfail_lease_ev;
static ngx_event_t                   ngx_http_qqfail_stop_ev;
static ngx_log_t                    *ngx_http_qqfail_log;


/* c-ares channels: one per provider */

static ngx_int_t
ngx_http_qqfail_channels_create(ngx_cycle_t *cycle, ngx_uint_t sync)
{
    int                           rc, optmask;
    char                         *servers;
    ngx_uint_t                    i, j, n, nsets;
    ngx_msec_t                    timeout;
    struct ares_options           opts;
    ngx_http_qqfail_channel_t    *ch;
    ngx_http_qqfail_provider_t   *pr;
    ngx_http_qqfail_srv_conf_t  **qscfp;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_qmcf;

    /*
     * a set of channels, one per provider, for each distinct
     * qqfail_timeout: c-ares splits the timeout between a provider's
     * servers, and a slow provider must not fail the names of an upstream
     * that waits longer; each lookup also has a timer for its own timeout
     */

    nsets = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        for (j = 0; j < i; j++) {
            if (qscfp[j]->timeout == qscfp[i]->timeout) {
                break;
            }
        }

        qscfp[i]->channels = (j < i) ? qscfp[j]->channels : nsets++;
    }

    if (nsets == 0) {
        nsets = 1;
    }

    ngx_http_qqfail_nproviders = qmcf->providers.nelts;
    ngx_http_qqfail_nchannels = nsets * ngx_http_qqfail_nproviders;
    ngx_http_qqfail_channels = ngx_calloc(ngx_http_qqfail_nchannels
                                          * sizeof(ngx_http_qqfail_channel_t),
                                          cycle->log);
    if (ngx_http_qqfail_channels == NULL) {
        return NGX_ERROR;
    }

    pr = qmcf->providers.elts;

    for (i = 0; i < ngx_http_qqfail_nchannels; i++) {
        ch = &ngx_http_qqfail_channels[i];
        ch->provider = &pr[i % ngx_http_qqfail_nproviders];

        timeout = 2000;

        for (j = 0; j < qmcf->upstreams.nelts; j++) {
            if (qscfp[j]->channels == i / ngx_http_qqfail_nproviders) {
                timeout = qscfp[j]->timeout;
                break;
            }
        }

        n = ch->provider->addrs.nelts ? ch->provider->addrs.nelts : 1;

        ngx_memzero(&opts, sizeof(struct ares_options));

        /*
         * NOCHECKRESP: SERVFAIL and REFUSED reach us instead of being
         * hidden behind a retry; one try per address, the timeout split
         * between the addresses of the provider
         */

        opts.flags = ARES_FLAG_NOCHECKRESP|ARES_FLAG_NOSEARCH
                     |ARES_FLAG_NOALIASES;
        opts.timeout = (int) ngx_max(timeout / n, 10);
        opts.tries = 1;
        opts.ndomains = 0;
        opts.domains = NULL;
        opts.lookups = (char *) "b";

        optmask = ARES_OPT_FLAGS|ARES_OPT_TIMEOUTMS|ARES_OPT_TRIES
                  |ARES_OPT_DOMAINS|ARES_OPT_LOOKUPS;

        if (!sync) {
            opts.sock_state_cb = ngx_http_qqfail_sock_state;
            opts.sock_state_cb_data = ch;
            optmask |= ARES_OPT_SOCK_STATE_CB;
        }

        rc = ares_init_options(&ch->channel, &opts, optmask);

        if (rc != ARES_SUCCESS) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "qqfail: ares_init_options() failed for provider "
                          "\"%V\": %s", &ch->provider->name, ares_strerror(rc));
            ch->channel = NULL;
            continue;
        }

        if (!ch->provider->system) {
            servers = ngx_alloc(ch->provider->servers.len + 1, cycle->log);
            if (servers == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(servers, ch->provider->servers.data, ch->provider->servers.len);
            servers[ch->provider->servers.len] = '\0';

            rc = ares_set_servers_ports_csv(ch->channel, servers);

            ngx_free(servers);

            if (rc != ARES_SUCCESS) {
                ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                              "qqfail: ares_set_servers_ports_csv() failed "
                              "for provider \"%V\": %s", &ch->provider->name,
                              ares_strerror(rc));
                ares_destroy(ch->channel);
                ch->channel = NULL;
                continue;
            }
        }

        if (!sync) {
            ares_set_socket_callback(ch->channel, ngx_http_qqfail_sock_create,
                                     ch);

            ch->timer.handler = ngx_http_qqfail_channel_timeout;
            ch->timer.data = ch;
            ch->timer.log = cycle->log;
            ch->timer.cancelable = 1;
        }
    }

    return NGX_OK;
}


static void
ngx_http_qqfail_channels_destroy(void)
{
    ngx_uint_t                  i;
    ngx_http_qqfail_channel_t  *ch;

    if (ngx_http_qqfail_channels == NULL) {
        return;
    }

    for (i = 0; i < ngx_http_qqfail_nchannels; i++) {
        ch = &ngx_http_qqfail_channels[i];

        if (ch->channel) {
            /* pending queries end with ARES_EDESTRUCTION */
            ares_destroy(ch->channel);
            ch->channel = NULL;
        }

        if (ch->timer.timer_set) {
            ngx_del_timer(&ch->timer);
        }
    }

    ngx_free(ngx_http_qqfail_channels);
    ngx_http_qqfail_channels = NULL;
    ngx_http_qqfail_nchannels = 0;
    ngx_http_qqfail_nproviders = 0;
}


static ngx_connection_t **
ngx_http_qqfail_channel_conn(ngx_http_qqfail_channel_t *ch, ares_socket_t fd)
{
    ngx_uint_t  i;

    for (i = 0; i < ch->nconns; i++) {
        if (ch->conns[i]->fd == fd) {
            return &ch->conns[i];
        }
    }

    return NULL;
}


/*
 * c-ares opened a socket: wrap it in a connection, so that nginx's event
 * loop watches it.  Returning -1 makes c-ares close it and fail the query.
 */

static int
ngx_http_qqfail_sock_create(ares_socket_t fd, int type, void *data)
{
    ngx_http_qqfail_channel_t *ch = data;

    ngx_connection_t  *c;

    if (ch->nconns == NGX_HTTP_QQFAIL_MAX_CONNS) {
        return -1;
    }

    c = ngx_get_connection(fd, ngx_http_qqfail_log);
    if (c == NULL) {
        return -1;
    }

    if (type == SOCK_DGRAM) {
        ngx_http_qqfail_sock_buffer(fd);
    }

    c->data = ch;
    c->log = ngx_http_qqfail_log;
    c->read->log = ngx_http_qqfail_log;
    c->write->log = ngx_http_qqfail_log;
    c->read->handler = ngx_http_qqfail_channel_read;
    c->write->handler = ngx_http_qqfail_channel_write;

    /* like nginx's own resolver: not a client connection */
    c->read->resolver = 1;

    ch->drops[ch->nconns] = 0;
    ch->conns[ch->nconns++] = c;

    return 0;
}


/*
 * Room for the answers of every lookup in flight at once (paced to
 * NGX_HTTP_QQFAIL_INFLIGHT): the kernel drops what does not fit, and a
 * dropped answer is a false timeout.  The kernel caps the size at
 * net.core.rmem_max; that is said once.
 */

static void
ngx_http_qqfail_sock_buffer(ares_socket_t fd)
{
    int           want, got;
    socklen_t     len;
    static int    said;

    want = NGX_HTTP_QQFAIL_RCVBUF;

    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, (const void *) &want,
                   sizeof(int))
        == -1)
    {
        return;
    }

    len = sizeof(int);

    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, (void *) &got, &len) == -1) {
        return;
    }

    /* Linux reports twice what was set */

    if (got < want && !said) {
        said = 1;
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_qqfail_log, 0,
                      "qqfail: DNS sockets get a receive buffer of %d "
                      "bytes, not %d: raise the sysctl net.core.rmem_max "
                      "for bursts of answers", got, want);
    }
}


/* answers the kernel dropped on a channel's sockets, counted per provider */

static void
ngx_http_qqfail_channel_drops(ngx_http_qqfail_channel_t *ch, ngx_uint_t i)
{
#if (NGX_LINUX && defined SO_MEMINFO)
    uint32_t    mem[SK_MEMINFO_VARS], delta;
    socklen_t   len;

    len = sizeof(mem);

    if (getsockopt(ch->conns[i]->fd, SOL_SOCKET, SO_MEMINFO, mem, &len)
        == -1
        || len <= SK_MEMINFO_DROPS * sizeof(uint32_t))
    {
        return;
    }

    delta = mem[SK_MEMINFO_DROPS] - ch->drops[i];
    ch->drops[i] = mem[SK_MEMINFO_DROPS];

    if (delta == 0 || !ngx_http_qqfail_lead_check()) {
        return;
    }

    ngx_shmtx_lock(&ngx_http_qqfail_qmcf->shpool->mutex);
    ch->provider->sh->drops += delta;
    ngx_shmtx_unlock(&ngx_http_qqfail_qmcf->shpool->mutex);

    ngx_log_error(NGX_LOG_WARN, ngx_http_qqfail_log, 0,
                  "qqfail: %uD answer(s) of provider \"%V\" dropped by the "
                  "kernel (receive buffer full)", delta, &ch->provider->name);
#endif
}


/*
 * Level-triggered events: c-ares reads one TCP chunk per call and stops at
 * a datagram from an unexpected source, so an edge could be lost.
 */

static void
ngx_http_qqfail_sock_state(void *data, ares_socket_t fd, int readable,
    int writable)
{
    ngx_http_qqfail_channel_t *ch = data;

    ngx_connection_t   *c, **cp;

    cp = ngx_http_qqfail_channel_conn(ch, fd);

    if (cp == NULL) {
        return;
    }

    c = *cp;

    if (readable || writable) {

        if (readable && !c->read->active) {
            if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
                != NGX_OK)
            {
                ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                              "qqfail: cannot watch a DNS socket");
            }

        } else if (!readable && c->read->active) {
            ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (writable && !c->write->active) {
            if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
                != NGX_OK)
            {
                ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                              "qqfail: cannot watch a DNS socket");
            }

        } else if (!writable && c->write->active) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        return;
    }

    /*
     * c-ares closes the socket right after this call: release the
     * connection without closing the descriptor
     */

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_http_qqfail_channel_drops(ch, cp - ch->conns);

    ch->drops[cp - ch->conns] = ch->drops[ch->nconns - 1];
    *cp = ch->conns[--ch->nconns];
    ch->conns[ch->nconns] = NULL;

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static void
ngx_http_qqfail_channel_read(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_qqfail_channel_t  *ch;

    c = ev->data;
    ch = c->data;

    /* c may be freed inside: do not touch it afterwards */

    ares_process_fd(ch->channel, c->fd, ARES_SOCKET_BAD);

    ngx_http_qqfail_channel_timer(ch);
}


static void
ngx_http_qqfail_channel_write(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_qqfail_channel_t  *ch;

    c = ev->data;
    ch = c->data;

    ares_process_fd(ch->channel, ARES_SOCKET_BAD, c->fd);

    ngx_http_qqfail_channel_timer(ch);
}


static void
ngx_http_qqfail_channel_timeout(ngx_event_t *ev)
{
    ngx_http_qqfail_channel_t  *ch = ev->data;

    ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);

    ngx_http_qqfail_channel_timer(ch);
}


static void
ngx_http_qqfail_channel_timer(ngx_http_qqfail_channel_t *ch)
{
    struct timeval   tv, *tvp;

    if (ngx_http_qqfail_sync || ch->channel == NULL) {
        return;
    }

    tvp = ares_timeout(ch->channel, NULL, &tv);

    if (tvp == NULL) {
        if (ch->timer.timer_set) {
            ngx_del_timer(&ch->timer);
        }

        return;
    }

    /* + 1: c-ares 1.18 truncates to milliseconds */

    ngx_add_timer(&ch->timer,
                  (ngx_msec_t) tvp->tv_sec * 1000 + tvp->tv_usec / 1000 + 1);
}


/* jobs: the lookups of one server */

static ngx_int_t
ngx_http_qqfail_jobs_create(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i, j, n;
    ngx_http_qqfail_provider_t   *pr;
    ngx_http_qqfail_job_t        *job, **jobp;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_srv_conf_t  **qscfp;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_qmcf;

    /* on the heap: leadership may start and stop many times per cycle */

    ngx_queue_init(&ngx_http_qqfail_waiting);
    ngx_http_qqfail_inflight = 0;

    /*
     * pacing: every lookup asks every provider (A and AAAA), so the
     * provider with the least room sets how many lookups may be
     * undecided at once, and the slowest rate how many start a second
     */

    ngx_http_qqfail_limit = NGX_MAX_UINT32_VALUE;
    ngx_http_qqfail_rate = 0;

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        n = ngx_max(pr[i].max_inflight / 2, 1);
        ngx_http_qqfail_limit = ngx_min(ngx_http_qqfail_limit, n);

        if (pr[i].rate
            && (ngx_http_qqfail_rate == 0
                || ngx_max(pr[i].rate / 2, 1) < ngx_http_qqfail_rate))
        {
            ngx_http_qqfail_rate = ngx_max(pr[i].rate / 2, 1);
        }
    }

    ngx_http_qqfail_tokens = ngx_http_qqfail_rate * 100;
    ngx_http_qqfail_tokens_at = ngx_http_qqfail_msec();

    ngx_http_qqfail_jobs = ngx_alloc(sizeof(ngx_array_t), cycle->log);
    if (ngx_http_qqfail_jobs == NULL) {
        return NGX_ERROR;
    }

    ngx_http_qqfail_jobs->elts = NULL;
    ngx_http_qqfail_jobs->nelts = 0;

    n = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        n += qscfp[i]->servers->nelts;
    }

    ngx_http_qqfail_jobs->elts = ngx_alloc((n ? n : 1)
                                           * sizeof(ngx_http_qqfail_job_t *),
                                           cycle->log);
    if (ngx_http_qqfail_jobs->elts == NULL) {
        return NGX_ERROR;
    }

    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            job = ngx_calloc(offsetof(ngx_http_qqfail_job_t, result)
                             + server[j].names.nelts
                               * sizeof(ngx_http_qqfail_result_t),
                             cycle->log);
            if (job == NULL) {
                return NGX_ERROR;
            }

            jobp = ngx_http_qqfail_jobs->elts;
            jobp[ngx_http_qqfail_jobs->nelts++] = job;

            job->server = &server[j];
            job->timer.handler = ngx_http_qqfail_job_handler;
            job->timer.data = job;
            job->timer.log = cycle->log;
            job->timer.cancelable = 1;
        }
    }

    return NGX_OK;
}


static void
ngx_http_qqfail_jobs_destroy(void)
{
    ngx_uint_t              i;
    ngx_http_qqfail_job_t  **jobp;

    if (ngx_http_qqfail_jobs == NULL) {
        return;
    }

    jobp = ngx_http_qqfail_jobs->elts;

    for (i = 0; i < ngx_http_qqfail_jobs->nelts; i++) {
        if (jobp[i]->timer.timer_set) {
            ngx_del_timer(&jobp[i]->timer);
        }

        ngx_http_qqfail_results_free(jobp[i]);
        ngx_free(jobp[i]);
    }

    if (ngx_http_qqfail_jobs->elts) {
        ngx_free(ngx_http_qqfail_jobs->elts);
    }

    ngx_free(ngx_http_qqfail_jobs);
    ngx_http_qqfail_jobs = NULL;

    if (ngx_http_qqfail_resume_ev.posted) {
        ngx_delete_posted_event(&ngx_http_qqfail_resume_ev);
    }

    if (ngx_http_qqfail_resume_ev.timer_set) {
        ngx_del_timer(&ngx_http_qqfail_resume_ev);
    }

    ngx_queue_init(&ngx_http_qqfail_waiting);
    ngx_http_qqfail_inflight = 0;
}


static void
ngx_http_qqfail_job_handler(ngx_event_t *ev)
{
    ngx_http_qqfail_job_t  *job = ev->data;

    if (job->running || job->queued || !ngx_http_qqfail_lead_check()) {
        return;
    }

    /*
     * paced: a server waits for its turn, in order; its lookups' timeouts
     * start when they are sent, so waiting never counts against a provider
     */

    if (!ngx_queue_empty(&ngx_http_qqfail_waiting)
        || !ngx_http_qqfail_job_turn())
    {
        ngx_queue_insert_tail(&ngx_http_qqfail_waiting, &job->queue);
        job->queued = 1;
        return;
    }

    ngx_http_qqfail_job_run(job);
}


/*
 * May another lookup start now?  Not beyond the lookups in flight the
 * providers allow ("max_inflight="), nor faster than the slowest "rate=":
 * a token bucket holding a tenth of a second's worth, refilled by the
 * clock, and a timer that resumes the waiting servers when the next token
 * is due.
 */

static ngx_uint_t
ngx_http_qqfail_job_turn(void)
{
    ngx_msec_t  now, wait;

    if (ngx_http_qqfail_inflight >= ngx_http_qqfail_limit) {
        return 0;
    }

    if (ngx_http_qqfail_rate == 0) {
        return 1;
    }

    now = ngx_http_qqfail_msec();

    /* a tenth of a second's worth at most: no burst above the rate */

    ngx_http_qqfail_tokens = ngx_min(ngx_http_qqfail_tokens
                                     + (now - ngx_http_qqfail_tokens_at)
                                       * ngx_http_qqfail_rate,
                                     ngx_max(ngx_http_qqfail_rate * 100,
                                             1000));
    ngx_http_qqfail_tokens_at = now;

    if (ngx_http_qqfail_tokens >= 1000) {
        ngx_http_qqfail_tokens -= 1000;
        return 1;
    }

    if (!ngx_http_qqfail_sync && !ngx_http_qqfail_resume_ev.timer_set) {
        wait = (1000 - ngx_http_qqfail_tokens + ngx_http_qqfail_rate - 1)
               / ngx_http_qqfail_rate;

        ngx_http_qqfail_resume_ev.handler = ngx_http_qqfail_jobs_resume;
        ngx_http_qqfail_resume_ev.log = ngx_http_qqfail_log;
        ngx_http_qqfail_resume_ev.cancelable = 1;
        ngx_add_timer(&ngx_http_qqfail_resume_ev, wait ? wait : 1);
    }

    return 0;
}


static void
ngx_http_qqfail_job_run(ngx_http_qqfail_job_t *job)
{
    ngx_uint_t                    last;
    ngx_http_qqfail_server_sh_t  *ssh;

    ssh = job->server->sh;

    /*
     * a server with addresses asks its current name and every better one;
     * a server with none, or the start-up pass, asks every name at once
     */

    last = (ssh->source == NGX_HTTP_QQFAIL_SOURCE_NONE || ngx_http_qqfail_sync)
           ? job->server->names.nelts - 1 : ssh->active;

    if (last >= job->server->names.nelts) {
        last = job->server->names.nelts - 1;
    }

    job->phase = 1;

    ngx_http_qqfail_job_start(job, 0, last);
}


/* lookups ended: servers waiting for their turn get it */

static void
ngx_http_qqfail_jobs_resume(ngx_event_t *ev)
{
    ngx_queue_t            *q;
    ngx_http_qqfail_job_t  *job;

    while (!ngx_queue_empty(&ngx_http_qqfail_waiting)) {

        if (!ngx_http_qqfail_lead_check() || !ngx_http_qqfail_job_turn()) {
            return;
        }

        q = ngx_queue_head(&ngx_http_qqfail_waiting);
        ngx_queue_remove(q);

        job = ngx_queue_data(q, ngx_http_qqfail_job_t, queue);
        job->queued = 0;

        ngx_http_qqfail_job_run(job);
    }
}


/* a lookup is decided, or ends undecided: one less in flight */

static void
ngx_http_qqfail_lookup_unpace(ngx_http_qqfail_lookup_t *lk)
{
    if (!lk->paced) {
        return;
    }

    lk->paced = 0;
    ngx_http_qqfail_inflight--;

    /* not from inside c-ares: the next lookups start from a posted event */

    if (!ngx_http_qqfail_sync && ngx_http_qqfail_leading
        && !ngx_queue_empty(&ngx_http_qqfail_waiting)
        && !ngx_http_qqfail_resume_ev.posted)
    {
        ngx_http_qqfail_resume_ev.handler = ngx_http_qqfail_jobs_resume;
        ngx_http_qqfail_resume_ev.log = ngx_http_qqfail_log;
        ngx_post_event(&ngx_http_qqfail_resume_ev, &ngx_posted_events);
    }
}


/* the round is over, or starts again: its addresses go */

static void
ngx_http_qqfail_results_free(ngx_http_qqfail_job_t *job)
{
    ngx_uint_t                 n;
    ngx_http_qqfail_result_t  *res;

    for (n = 0; n < job->server->names.nelts; n++) {
        res = &job->result[n];

        if (res->owned) {
            ngx_free(res->addrs);
        }

        res->state = NGX_HTTP_QQFAIL_NAME_UNKNOWN;
        res->naddrs = 0;
        res->addrs = NULL;
        res->owned = 0;
        res->lookup = NULL;
    }
}


static void
ngx_http_qqfail_job_start(ngx_http_qqfail_job_t *job, ngx_uint_t from,
    ngx_uint_t to)
{
    ngx_uint_t  n;

    if (job->phase == 1) {
        ngx_http_qqfail_results_free(job);
    }

    job->running = 1;
    job->starting = 1;
    job->queried = to + 1;

    for (n = from; n <= to; n++) {
        ngx_http_qqfail_job_lookup(job, n);
    }

    job->starting = 0;

    ngx_http_qqfail_job_check(job);
}


static void
ngx_http_qqfail_job_lookup(ngx_http_qqfail_job_t *job, ngx_uint_t n)
{
    u_char                      *host;
    size_t                       size;
    ngx_uint_t                   p, i, nq, types;
    ngx_http_qqfail_name_t      *name;
    ngx_http_qqfail_result_t    *res;
    ngx_http_qqfail_lookup_t    *lk;
    ngx_http_qqfail_channel_t   *ch;
    ngx_http_qqfail_srv_conf_t  *qscf;

    name = &((ngx_http_qqfail_name_t *) job->server->names.elts)[n];
    res = &job->result[n];
    qscf = job->server->upstream;

    if (name->literal) {
        res->state = NGX_HTTP_QQFAIL_NAME_OK;
        res->naddrs = 1;
        res->ttl = -1;
        res->addrs = &name->addr;
        res->owned = 0;
        return;
    }

    size = sizeof(ngx_http_qqfail_lookup_t)
           + (ngx_http_qqfail_nproviders - 1)
             * sizeof(ngx_http_qqfail_answer_t);

    lk = ngx_calloc(size, ngx_http_qqfail_log);
    if (lk == NULL) {
        res->state = NGX_HTTP_QQFAIL_NAME_FAILED;
        res->error = NGX_HTTP_QQFAIL_ERR_OTHER;
        return;
    }

    host = ngx_alloc(name->host.len + 1, ngx_http_qqfail_log);
    if (host == NULL) {
        ngx_free(lk);
        res->state = NGX_HTTP_QQFAIL_NAME_FAILED;
        res->error = NGX_HTTP_QQFAIL_ERR_OTHER;
        return;
    }

    ngx_memcpy(host, name->host.data, name->host.len);
    host[name->host.len] = '\0';

    lk->job = job;
    lk->server = job->server;
    lk->name = n;
    lk->nproviders = ngx_http_qqfail_nproviders;
    lk->accepted = -1;
    lk->paced = 1;

    ngx_http_qqfail_inflight++;

    res->lookup = lk;
    job->pending++;

    types = qscf->ipv6 ? 2 : 1;

    /*
     * count every query first, plus one for this function: callbacks may
     * run inside ares_query(), and must not free the lookup under us
     */

    lk->queries = lk->nproviders * types + 1;

    for (p = 0; p < lk->nproviders; p++) {
        lk->answer[p].pending = types;
        lk->answer[p].status[0] = ARES_ENODATA;
        lk->answer[p].status[1] = ARES_ENODATA;
        lk->answer[p].ttl = -1;
        lk->answer[p].sent = ngx_current_msec;
    }

    lk->deadline.handler = ngx_http_qqfail_lookup_deadline;
    lk->deadline.data = lk;
    lk->deadline.log = ngx_http_qqfail_log;
    lk->deadline.cancelable = 1;

    if (!ngx_http_qqfail_sync) {
        ngx_add_timer(&lk->deadline, qscf->timeout + 50);
    }

    nq = 0;

    for (p = 0; p < lk->nproviders; p++) {

        /* the channels of this upstream's qqfail_timeout */

        ch = &ngx_http_qqfail_channels[qscf->channels * lk->nproviders + p];

        for (i = 0; i < types; i++) {
            lk->query[nq].lookup = lk;
            lk->query[nq].provider = p;
            lk->query[nq].type = i;

            if (ch->channel == NULL) {
                ngx_http_qqfail_query_handler(&lk->query[nq],
                                              ARES_ENOTINITIALIZED, 0, NULL,
                                              0);

            } else {
                ares_query(ch->channel, (char *) host, ns_c_in,
                           i ? ns_t_aaaa : ns_t_a,
                           ngx_http_qqfail_query_handler, &lk->query[nq]);
            }

            nq++;
        }

        ngx_http_qqfail_channel_timer(ch);
    }

    ngx_free(host);

    /* queries count when sent: an answer may never come */

    if (ngx_http_qqfail_lead_check()) {
        ngx_shmtx_lock(&ngx_http_qqfail_qmcf->shpool->mutex);

        for (p = 0; p < lk->nproviders; p++) {
            ngx_http_qqfail_channels[p].provider->sh->queries += types;
        }

        ngx_shmtx_unlock(&ngx_http_qqfail_qmcf->shpool->mutex);
    }

    if (--lk->queries == 0) {
        /* every query failed at once */

        if (!lk->decided) {
            ngx_http_qqfail_lookup_decide(lk, 1);
        }

        ngx_http_qqfail_lookup_release(lk);
    }
}


static void
ngx_http_qqfail_query_handler(void *arg, int status, int timeouts,
    unsigned char *abuf, int alen)
{
    ngx_http_qqfail_query_t *q = arg;

    ngx_uint_t                 p;
    ngx_http_qqfail_lookup_t  *lk;
    ngx_http_qqfail_answer_t  *a;

    lk = q->lookup;
    p = q->provider;
    a = &lk->answer[p];

    lk->queries--;

    if (!a->abandoned && status != ARES_EDESTRUCTION
        && status != ARES_ECANCELLED)
    {
        /* every message received is read by our parser, errors too */

        if (abuf != NULL) {
            status = ngx_http_qqfail_answer_parse(lk, q, abuf, alen);
        }

        a->status[q->type] = status;

    } else if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {

        /*
         * the channel went away before this provider answered (the end of
         * the start-up pass, or of the leadership): nothing to account
         */

        a->abandoned = 1;
    }

    if (--a->pending == 0 && !a->abandoned) {
        ngx_http_qqfail_answer_done(lk, p);
    }

    if (lk->queries == 0) {

        /*
         * the last query ended with its channel, at the end of the start-up
         * pass or of the leadership: the lookup is abandoned undecided, it
         * must not report a missing quorum or a failure it never saw
         */

        if (!lk->decided && status != ARES_EDESTRUCTION
            && status != ARES_ECANCELLED)
        {
            ngx_http_qqfail_lookup_decide(lk, 1);
        }

        ngx_http_qqfail_lookup_release(lk);
    }
}


/*
 * The answer of one provider to one query, read by the strict parser
 * (ngx_http_qqfail_dns.c): a message that is not the answer to the
 * question asked counts as a failure "other" of the provider
 */

static int
ngx_http_qqfail_answer_parse(ngx_http_qqfail_lookup_t *lk,
    ngx_http_qqfail_query_t *q, unsigned char *abuf, int alen)
{
    u_char                        *ip;
    ngx_int_t                      rc;
    ngx_uint_t                     i, j;
    struct sockaddr_in            *sin;
    ngx_http_qqfail_name_t        *name;
    ngx_http_qqfail_answer_t      *a;
    ngx_http_qqfail_dns_answer_t   ans;
    u_char                         addrs[NGX_HTTP_QQFAIL_MAX_ADDRS * 16];
#if (NGX_HAVE_INET6)
    struct sockaddr_in6           *sin6;
#endif

    a = &lk->answer[q->provider];
    name = &((ngx_http_qqfail_name_t *) lk->server->names.elts)[lk->name];

    ans.addrs = addrs;
    ans.max = NGX_HTTP_QQFAIL_MAX_ADDRS - a->naddrs;

    rc = ngx_http_qqfail_dns_parse(abuf, alen, name->host.data,
                                   name->host.len,
                                   q->type ? NGX_HTTP_QQFAIL_DNS_AAAA
                                           : NGX_HTTP_QQFAIL_DNS_A,
                                   &ans);

    switch (rc) {

    case NGX_HTTP_QQFAIL_DNS_OK:
        break;

    case NGX_HTTP_QQFAIL_DNS_NODATA:
        return ARES_ENODATA;

    case NGX_HTTP_QQFAIL_DNS_NXDOMAIN:
        return ARES_ENOTFOUND;

    case NGX_HTTP_QQFAIL_DNS_SERVFAIL:
        return ARES_ESERVFAIL;

    case NGX_HTTP_QQFAIL_DNS_REFUSED:
        return ARES_EREFUSED;

    default: /* NGX_HTTP_QQFAIL_DNS_RCODE, _MALFORMED, _MISMATCH */
        ngx_log_error(NGX_LOG_INFO, ngx_http_qqfail_log, 0,
                      "qqfail: %s answer for \"%V\" from provider \"%V\" "
                      "refused: %s", q->type ? "AAAA" : "A", &name->host,
                      &ngx_http_qqfail_channels[q->provider].provider->name,
                      ans.reason);
        return ARES_EBADRESP;
    }

#if !(NGX_HAVE_INET6)
    if (q->type) {
        return ARES_ENODATA;
    }
#endif

    ip = addrs;

    for (i = 0; i < ans.naddrs; i++) {
        j = a->naddrs;
        ngx_memzero(&a->addrs[j], sizeof(ngx_http_qqfail_sockaddr_t));

        if (q->type == 0) {
            sin = &a->addrs[j].sockaddr_in;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(name->port);
            ngx_memcpy(&sin->sin_addr, ip, 4);
            a->socklen[j] = sizeof(struct sockaddr_in);
            ip += 4;

#if (NGX_HAVE_INET6)
        } else {
            sin6 = &a->addrs[j].sockaddr_in6;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(name->port);
            ngx_memcpy(&sin6->sin6_addr, ip, 16);
            a->socklen[j] = sizeof(struct sockaddr_in6);
            ip += 16;
#endif
        }

        a->naddrs++;
    }

    /* TTLs above 2^31 - 1 are zero (RFC 2181), so this fits in an int */

    if (a->ttl < 0 || (int) ans.ttl < a->ttl) {
        a->ttl = ans.ttl;
    }

    return ARES_SUCCESS;
}


static ngx_uint_t
ngx_http_qqfail_answer_error(ngx_http_qqfail_answer_t *a,
    ngx_uint_t *transport)
{
    int         st;
    ngx_uint_t  i, error;

    error = NGX_HTTP_QQFAIL_ERR_OTHER;
    *transport = 0;

    for (i = 0; i < 2; i++) {
        st = a->status[i];

        switch (st) {

        case ARES_SUCCESS:
        case ARES_ENODATA:
            continue;

        case ARES_ETIMEOUT:
            *transport = 1;
            return NGX_HTTP_QQFAIL_ERR_TIMEOUT;

        case ARES_ESERVFAIL:
            error = NGX_HTTP_QQFAIL_ERR_SERVFAIL;
            break;

        case ARES_ENOTFOUND:
            if (error == NGX_HTTP_QQFAIL_ERR_OTHER) {
                error = NGX_HTTP_QQFAIL_ERR_NXDOMAIN;
            }
            break;

        case ARES_EREFUSED:
            error = NGX_HTTP_QQFAIL_ERR_REFUSED;
            break;

        case ARES_ECONNREFUSED:
        case ARES_ENOTINITIALIZED:
            *transport = 1;
            break;

        case ARES_EBADRESP:
            /* not an answer to the question, or not well formed */
            if (error == NGX_HTTP_QQFAIL_ERR_OTHER) {
                error = NGX_HTTP_QQFAIL_ERR_BADANSWER;
            }
            break;

        default:
            break;
        }
    }

    return error;
}


static void
ngx_http_qqfail_answer_sort(ngx_http_qqfail_answer_t *a)
{
    ngx_uint_t                  i, j;
    socklen_t                   len;
    ngx_http_qqfail_sockaddr_t  sa;

    /* insertion sort: answers are small */

    for (i = 1; i < a->naddrs; i++) {
        sa = a->addrs[i];
        len = a->socklen[i];

        for (j = i;
             j > 0 && (a->socklen[j - 1] > len
                       || (a->socklen[j - 1] == len
                           && ngx_memcmp(&a->addrs[j - 1], &sa, len) > 0));
             j--)
        {
            a->addrs[j] = a->addrs[j - 1];
            a->socklen[j] = a->socklen[j - 1];
        }

        a->addrs[j] = sa;
        a->socklen[j] = len;
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
ngx_http_qqfail_answer_same(ngx_http_qqfail_answer_t *a,
    ngx_http_qqfail_answer_t *b)
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
ngx_http_qqfail_answer_allow(ngx_http_qqfail_lookup_t *lk, ngx_uint_t p)
{
    u_char                       text[NGX_HTTP_QQFAIL_ADDR_STRLEN];
    size_t                       len;
    ngx_uint_t                   i, j, n, rejected, first, why;
    ngx_addr_t                   addrs[NGX_HTTP_QQFAIL_MAX_ADDRS];
    ngx_http_qqfail_geo_t        geo[NGX_HTTP_QQFAIL_MAX_ADDRS];
    ngx_http_qqfail_answer_t    *a;
    ngx_http_qqfail_name_sh_t   *nsh;
    ngx_http_qqfail_sockaddr_t   kept[NGX_HTTP_QQFAIL_MAX_ADDRS];
    ngx_http_qqfail_provider_t  *pr;

    a = &lk->answer[p];

    for (i = 0; i < a->naddrs; i++) {
        addrs[i].sockaddr = &a->addrs[i].sockaddr;
        addrs[i].socklen = a->socklen[i];
    }

    n = ngx_http_qqfail_filter(lk->server->upstream, addrs, geo, a->naddrs,
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
                                NGX_HTTP_QQFAIL_ADDR_STRLEN, 0);
        }
    }

    for (j = 0; j < n; j++) {
        a->addrs[j] = kept[j];
        a->socklen[j] = addrs[j].socklen;
    }

    a->naddrs = n;

    if (!ngx_http_qqfail_lead_check()) {
        return;
    }

    lk->rejected += rejected;

    pr = ngx_http_qqfail_channels[p].provider;
    nsh = &lk->server->sh->names[lk->name];
    first = 0;

    ngx_shmtx_lock(&ngx_http_qqfail_qmcf->shpool->mutex);

    pr->sh->rejected += rejected;
    nsh->rejected += rejected;

    if (!nsh->rejecting) {
        nsh->rejecting = 1;
        first = 1;
    }

    ngx_shmtx_unlock(&ngx_http_qqfail_qmcf->shpool->mutex);

    if (first) {
        ngx_http_qqfail_event(ngx_http_qqfail_qmcf, NGX_LOG_WARN,
                              ngx_http_qqfail_log, 0, lk->server,
                              "answer %*s for \"%V\" from provider \"%V\" "
                              "refused: %V (%ui address(es))",
                              len, text,
                              &((ngx_http_qqfail_name_t *)
                                lk->server->names.elts)[lk->name].host,
                              &pr->name, &ngx_http_qqfail_refusals[why],
                              rejected);
    }
}


/* all queries of one provider for one name are complete */

static void
ngx_http_qqfail_answer_done(ngx_http_qqfail_lookup_t *lk, ngx_uint_t p)
{
    ngx_uint_t                 error, transport, disagree;
    ngx_http_qqfail_answer_t  *a;

    a = &lk->answer[p];
    a->done = 1;

    ngx_http_qqfail_answer_sort(a);

    if (a->naddrs) {
        ngx_http_qqfail_answer_allow(lk, p);
    }

    /* an empty answer, or one emptied by the filter, is a failure */

    a->ok = (a->naddrs > 0);

    error = ngx_http_qqfail_answer_error(a, &transport);

    disagree = 0;

    if (a->ok && lk->accepted >= 0
        && !ngx_http_qqfail_answer_same(a, &lk->answer[lk->accepted]))
    {
        disagree = 1;
    }

    if (ngx_http_qqfail_lead_check()) {
        ngx_http_qqfail_provider_account(lk, p, a->ok, error, transport,
                                         disagree);
    }

    if (!lk->decided) {
        ngx_http_qqfail_lookup_decide(lk, 0);
    }
}


static void
ngx_http_qqfail_provider_account(ngx_http_qqfail_lookup_t *lk, ngx_uint_t p,
    ngx_uint_t ok, ngx_uint_t error, ngx_uint_t transport, ngx_uint_t disagree)
{
    u_char                         *last;
    u_char                          text[NGX_HTTP_QQFAIL_ERRLEN];
    ngx_int_t                       change;
    ngx_msec_t                      rtt;
    ngx_http_qqfail_name_t         *name;
    ngx_http_qqfail_answer_t       *a;
    ngx_http_qqfail_provider_t     *pr;
    ngx_http_qqfail_provider_sh_t  *psh;

    a = &lk->answer[p];
    pr = ngx_http_qqfail_channels[p].provider;
    psh = pr->sh;
    name = &((ngx_http_qqfail_name_t *) lk->server->names.elts)[lk->name];

    rtt = ngx_current_msec - a->sent;
    change = 0;
    last = text;

    /* the last error is formatted before the lock is taken */

    if (!ok) {
        last = ngx_snprintf(text, NGX_HTTP_QQFAIL_ERRLEN - 1, "%V for %V",
                            &ngx_http_qqfail_errors[error], &name->host);
        *last = '\0';
    }

    ngx_shmtx_lock(&ngx_http_qqfail_qmcf->shpool->mutex);

    psh->disagreements += disagree;

    if (!transport) {
        psh->rtt = psh->rtt ? (psh->rtt * 7 + rtt) / 8 : rtt;
        psh->transport_fails = 0;

        if (psh->down) {
            psh->down = 0;
            change = 1;
        }
    }

    if (ok) {
        psh->last_success = ngx_time();

    } else {
        psh->failures[error]++;
        psh->last_failure = ngx_time();

        ngx_memcpy(psh->last_error, text, last - text + 1);

        if (transport && ++psh->transport_fails >= 2 && !psh->down) {
            psh->down = 1;
            change = -1;
        }
    }

    ngx_shmtx_unlock(&ngx_http_qqfail_qmcf->shpool->mutex);

    if (change > 0) {
        ngx_http_qqfail_event(ngx_http_qqfail_qmcf, NGX_LOG_NOTICE,
                              ngx_http_qqfail_log, 0, NULL,
                              "provider \"%V\" is up again", &pr->name);

    } else if (change < 0) {
        ngx_http_qqfail_event(ngx_http_qqfail_qmcf, NGX_LOG_WARN,
                              ngx_http_qqfail_log, 0, NULL,
                              "provider \"%V\" is down (%V for \"%V\")",
                              &pr->name, &ngx_http_qqfail_errors[error],
                              &name->host);

    } else if (!ok) {
        ngx_log_error(NGX_LOG_INFO, ngx_http_qqfail_log, 0,
                      "qqfail: provider \"%V\" failed for \"%V\" (%V)",
                      &pr->name, &name->host, &ngx_http_qqfail_errors[error]);
    }
}


/*
 * Decide a name once enough providers have answered: the first answer
 * agreed by "qqfail_quorum" providers, or equal to the addresses in use,
 * wins; slow providers never delay it.  With "all", every provider is
 * done (or abandoned) and the name either has an answer or failed.
 */

static void
ngx_http_qqfail_lookup_decide(ngx_http_qqfail_lookup_t *lk, ngx_uint_t all)
{
    ngx_int_t                    best;
    ngx_uint_t                   p, q, agree, nok, error, transport, i;
    ngx_uint_t                   errors[NGX_HTTP_QQFAIL_NERRS];
    ngx_addr_t                   addrs[NGX_HTTP_QQFAIL_MAX_ADDRS];
    ngx_http_qqfail_job_t       *job;
    ngx_http_qqfail_result_t    *res;
    ngx_http_qqfail_answer_t    *a;
    ngx_http_qqfail_server_t    *server;
    ngx_http_qqfail_sockaddr_t  *sa;

    job = lk->job;

    /* a leader that lost its lease decides nothing: the lookup is dropped */

    if (job == NULL || !ngx_http_qqfail_lead_check()) {
        return;
    }

    server = job->server;
    res = &job->result[lk->name];

    best = -1;
    nok = 0;

    for (p = 0; p < lk->nproviders; p++) {
        a = &lk->answer[p];

        if (!a->done || !a->ok) {
            continue;
        }

        nok++;
        agree = 0;

        for (q = 0; q < lk->nproviders; q++) {
            if (lk->answer[q].done && lk->answer[q].ok
                && ngx_http_qqfail_answer_same(a, &lk->answer[q]))
            {
                agree++;
            }
        }

        if (agree >= server->upstream->quorum) {
            best = p;
            break;
        }

        /* an unchanged set needs no quorum */

        for (i = 0; i < a->naddrs; i++) {
            addrs[i].sockaddr = &a->addrs[i].sockaddr;
            addrs[i].socklen = a->socklen[i];
        }

        if (ngx_http_qqfail_zone_same(ngx_http_qqfail_qmcf, server, lk->name,
                                      addrs, a->naddrs))
        {
            best = p;
            break;
        }
    }

    if (best < 0) {
        for (p = 0; p < lk->nproviders; p++) {
            if (!lk->answer[p].done && !lk->answer[p].abandoned) {
                all = 0;
                break;
            }

            all = 1;
        }

        if (!all) {
            return;
        }
    }

    lk->decided = 1;
    lk->accepted = best;

    ngx_http_qqfail_lookup_unpace(lk);

    if (lk->deadline.timer_set) {
        ngx_del_timer(&lk->deadline);
    }

    if (best >= 0) {
        a = &lk->answer[best];

        /* the addresses and the sockaddrs they point to, in one block */

        res->addrs = ngx_alloc(a->naddrs * (sizeof(ngx_addr_t)
                                          + sizeof(ngx_http_qqfail_sockaddr_t)),
                               ngx_http_qqfail_log);

        if (res->addrs == NULL) {
            res->state = NGX_HTTP_QQFAIL_NAME_FAILED;
            res->error = NGX_HTTP_QQFAIL_ERR_OTHER;
            goto done;
        }

        res->owned = 1;
        res->state = NGX_HTTP_QQFAIL_NAME_OK;
        res->naddrs = a->naddrs;
        res->ttl = a->ttl;

        /* an agreed or unchanged set ends a quorum episode */
        server->sh->names[lk->name].noquorum = 0;

        sa = (ngx_http_qqfail_sockaddr_t *) &res->addrs[a->naddrs];

        for (i = 0; i < a->naddrs; i++) {
            sa[i] = a->addrs[i];
            res->addrs[i].sockaddr = &sa[i].sockaddr;
            res->addrs[i].socklen = a->socklen[i];
            res->addrs[i].name.len = 0;
            res->addrs[i].name.data = NULL;
        }

        /* answers that came before and differ */

        ngx_shmtx_lock(&ngx_http_qqfail_qmcf->shpool->mutex);

        for (p = 0; p < lk->nproviders; p++) {
            if (p != (ngx_uint_t) best && lk->answer[p].done
                && lk->answer[p].ok
                && !ngx_http_qqfail_answer_same(a, &lk->answer[p]))
            {
                ngx_http_qqfail_channels[p].provider->sh->disagreements++;
            }
        }

        ngx_shmtx_unlock(&ngx_http_qqfail_qmcf->shpool->mutex);

    } else if (nok) {
        res->state = NGX_HTTP_QQFAIL_NAME_NOQUORUM;
        res->error = NGX_HTTP_QQFAIL_ERR_OTHER;

        if (server->sh->names[lk->name].noquorum) {
            goto done;
        }

        server->sh->names[lk->name].noquorum = 1;

        ngx_http_qqfail_event(ngx_http_qqfail_qmcf, NGX_LOG_WARN,
                              ngx_http_qqfail_log, 0, server,
                              "fewer than %ui providers agree on the "
                              "addresses of \"%V\"",
                              server->upstream->quorum,
                              &((ngx_http_qqfail_name_t *)
                                server->names.elts)[lk->name].host);

    } else {
        ngx_memzero(errors, sizeof(errors));

        for (p = 0; p < lk->nproviders; p++) {
            error = lk->answer[p].abandoned
                    ? NGX_HTTP_QQFAIL_ERR_TIMEOUT
                    : ngx_http_qqfail_answer_error(&lk->answer[p], &transport);
            errors[error]++;
        }

        /* the most telling reason: an answer beats a timeout */

        res->error = NGX_HTTP_QQFAIL_ERR_TIMEOUT;

        for (i = NGX_HTTP_QQFAIL_ERR_SERVFAIL; i < NGX_HTTP_QQFAIL_NERRS; i++) {
            if (errors[i]
                && (res->error == NGX_HTTP_QQFAIL_ERR_TIMEOUT
                    || errors[i] > errors[res->error]))
            {
                res->error = i;
            }
        }

        res->state = NGX_HTTP_QQFAIL_NAME_FAILED;
    }

done:

    res->lookup = NULL;
    res->rejected = lk->rejected;
    lk->job = NULL;

    job->pending--;

    ngx_http_qqfail_job_check(job);
}


static void
ngx_http_qqfail_lookup_deadline(ngx_event_t *ev)
{
    ngx_http_qqfail_lookup_t  *lk = ev->data;

    ngx_uint_t  p;

    /*
     * a leader that resumes after its lease ran out finds this timer
     * expired: the providers did not time out, the leader was not running
     */

    if (!ngx_http_qqfail_lead_check()) {
        return;
    }

    /* providers that did not answer in time count as timed out */

    for (p = 0; p < lk->nproviders; p++) {
        if (!lk->answer[p].done && !lk->answer[p].abandoned) {
            lk->answer[p].abandoned = 1;

            ngx_http_qqfail_provider_account(lk, p, 0,
                                             NGX_HTTP_QQFAIL_ERR_TIMEOUT,
                                             1, 0);
        }
    }

    if (!lk->decided) {
        ngx_http_qqfail_lookup_decide(lk, 1);
    }
}


static void
ngx_http_qqfail_lookup_release(ngx_http_qqfail_lookup_t *lk)
{
    if (lk->deadline.timer_set) {
        ngx_del_timer(&lk->deadline);
    }

    ngx_http_qqfail_lookup_unpace(lk);

    if (lk->job) {
        /* undecided: the channel was destroyed, or the lease was lost */
        lk->job->result[lk->name].lookup = NULL;
        lk->job->pending--;
        lk->job = NULL;
    }

    ngx_free(lk);
}


static void
ngx_http_qqfail_job_check(ngx_http_qqfail_job_t *job)
{
    ngx_uint_t  n, nnames;

    if (job->starting || job->pending) {
        return;
    }

    if (!ngx_http_qqfail_leading && !ngx_http_qqfail_sync) {
        /* leadership ended: the round is abandoned */
        job->running = 0;
        return;
    }

    nnames = job->server->names.nelts;

    for (n = 0; n < job->queried; n++) {
        if (job->result[n].state == NGX_HTTP_QQFAIL_NAME_OK
            || (job->result[n].state == NGX_HTTP_QQFAIL_NAME_NOQUORUM
                && n == job->server->sh->active
                && job->server->sh->source != NGX_HTTP_QQFAIL_SOURCE_NONE))
        {
            ngx_http_qqfail_job_finish(job);
            return;
        }
    }

    /* every name so far failed: ask the remaining aliases at once */

    if (job->phase == 1 && job->queried < nnames && !ngx_http_qqfail_sync) {
        job->phase = 2;
        ngx_http_qqfail_job_start(job, job->queried, nnames - 1);
        return;
    }

    ngx_http_qqfail_job_finish(job);
}


/*
 * The round is over: choose the name that supplies the addresses.  The
 * first name in order that resolves wins, except that going back to a
 * better name needs two good lookups in a row while the current one works.
 */

static void
ngx_http_qqfail_job_finish(ngx_http_qqfail_job_t *job)
{
    time_t                        now;
    ngx_int_t                     best, chosen, rc;
    ngx_uint_t                    n, cur, source, cur_ok, stale, expired;
    ngx_http_qqfail_name_t       *names;
    ngx_http_qqfail_result_t     *res;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_srv_conf_t   *qscf;
    ngx_http_qqfail_server_sh_t  *ssh;
    ngx_http_qqfail_main_conf_t  *qmcf;

    job->running = 0;

    /* the last check before anything is published */

    if (!ngx_http_qqfail_lead_check()) {
        return;
    }

    qmcf = ngx_http_qqfail_qmcf;
    server = job->server;
    qscf = server->upstream;
    ssh = server->sh;
    names = server->names.elts;
    now = ngx_time();

    cur = ssh->active;
    source = ssh->source;

    best = -1;

    for (n = 0; n < job->queried; n++) {
        if (job->result[n].state == NGX_HTTP_QQFAIL_NAME_OK
            || (job->result[n].state == NGX_HTTP_QQFAIL_NAME_NOQUORUM
                && n == cur && source != NGX_HTTP_QQFAIL_SOURCE_NONE))
        {
            best = n;
            break;
        }
    }

    cur_ok = (cur < job->queried
              && (job->result[cur].state == NGX_HTTP_QQFAIL_NAME_OK
                  || job->result[cur].state == NGX_HTTP_QQFAIL_NAME_NOQUORUM));

    chosen = best;

    if (best >= 0 && (ngx_uint_t) best < cur && cur_ok
        && source != NGX_HTTP_QQFAIL_SOURCE_NONE
        && source != NGX_HTTP_QQFAIL_SOURCE_STATE)
    {
        if (++ssh->recover < 2) {
            chosen = cur;
        }

    } else {
        ssh->recover = 0;
    }

    if (chosen >= 0 && (ngx_uint_t) chosen != cur) {
        ssh->recover = 0;
    }

    /* per-name status */

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    for (n = 0; n < job->queried; n++) {
        res = &job->result[n];

        if (res->state == NGX_HTTP_QQFAIL_NAME_UNKNOWN) {
            continue;
        }

        if (res->state == NGX_HTTP_QQFAIL_NAME_FAILED) {
            ssh->names[n].state = NGX_HTTP_QQFAIL_NAME_FAILED;
            ssh->names[n].error = res->error;

        } else if (res->state == NGX_HTTP_QQFAIL_NAME_OK) {
            ssh->names[n].state = NGX_HTTP_QQFAIL_NAME_OK;
            ssh->names[n].last_success = now;
            ssh->names[n].naddrs = res->naddrs;

            if (res->rejected == 0) {
                ssh->names[n].rejecting = 0;
            }
        }

        /*
         * without a quorum the name keeps its status: the addresses in use
         * stay, but nothing was confirmed
         */
    }

    if (chosen >= 0
        && job->result[chosen].state == NGX_HTTP_QQFAIL_NAME_OK)
    {
        ssh->last_success = now;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    if (chosen >= 0) {
        res = &job->result[chosen];

        if (res->state == NGX_HTTP_QQFAIL_NAME_OK) {
            rc = ngx_http_qqfail_job_publish(job, chosen);

            /*
             * the zone is full and the server has no address at all: a
             * later name whose set fits (an IP literal) serves it
             */

            for (n = chosen + 1;
                 rc == NGX_ERROR && ssh->naddrs == 0 && n < job->queried;
                 n++)
            {
                if (job->result[n].state == NGX_HTTP_QQFAIL_NAME_OK) {
                    rc = ngx_http_qqfail_job_publish(job, n);

                    if (rc != NGX_ERROR) {
                        chosen = n;
                        res = &job->result[n];
                    }
                }
            }

            if (rc == 1 && !ngx_http_qqfail_sync) {
                ngx_http_qqfail_state_changed(qmcf, ngx_http_qqfail_log);
            }
        }

        if ((ngx_uint_t) chosen != cur
            && source != NGX_HTTP_QQFAIL_SOURCE_NONE)
        {
            ngx_shmtx_lock(&qmcf->shpool->mutex);
            ssh->failovers++;
            ngx_shmtx_unlock(&qmcf->shpool->mutex);

            if ((ngx_uint_t) chosen > cur) {
                ngx_http_qqfail_event(qmcf, NGX_LOG_WARN, ngx_http_qqfail_log,
                              0, server, "every provider failed for \"%V\" "
                              "(%V), failing over to \"%V\"",
                              &names[cur].host,
                              &ngx_http_qqfail_errors[job->result[cur].error],
                              &names[chosen].text);

            } else {
                ngx_http_qqfail_event(qmcf, NGX_LOG_WARN, ngx_http_qqfail_log,
                              0, server, "\"%V\" resolves again, back from "
                              "\"%V\"", &names[chosen].text,
                              &names[cur].text);
            }
        }

        ngx_http_qqfail_job_schedule(job, res);
        ngx_http_qqfail_results_free(job);
        return;
    }

    /* every name failed: keep the last good addresses */

    stale = 0;
    expired = 0;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    if (ssh->naddrs) {
        if (ssh->source == NGX_HTTP_QQFAIL_SOURCE_LIVE
            || ssh->source == NGX_HTTP_QQFAIL_SOURCE_LITERAL)
        {
            ssh->source = NGX_HTTP_QQFAIL_SOURCE_STALE;
            ssh->stale_since = ssh->last_success ? ssh->last_success : now;
            ssh->gen++;
            qscf->sh->gen++;
            stale = 1;
        }

        if (qscf->max_stale != NGX_HTTP_QQFAIL_STALE_FOREVER
            && ssh->stale_since
            && now - ssh->stale_since > qscf->max_stale)
        {
            expired = 1;
        }
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    if (stale) {
        ngx_http_qqfail_event(qmcf, NGX_LOG_ERR, ngx_http_qqfail_log, 0,
                              server, "every provider failed for every name "
                              "(%V), using the last good addresses",
                              &ngx_http_qqfail_errors[job->result[0].error]);
    }

    if (expired) {
        (void) ngx_http_qqfail_zone_publish(qmcf, server, ssh->active, NULL,
                                            NULL, 0,
                                            NGX_HTTP_QQFAIL_SOURCE_NONE,
                                            ngx_http_qqfail_log);

        if (!ngx_http_qqfail_sync) {
            ngx_http_qqfail_state_changed(qmcf, ngx_http_qqfail_log);
        }

        ngx_http_qqfail_event(qmcf, NGX_LOG_ERR, ngx_http_qqfail_log, 0,
                              server, "the last good addresses are older "
                              "than qqfail_max_stale, server unavailable");
    }

    ngx_http_qqfail_job_schedule(job, NULL);
    ngx_http_qqfail_results_free(job);
}


/* the addresses a name of the server found become the server's */

static ngx_int_t
ngx_http_qqfail_job_publish(ngx_http_qqfail_job_t *job, ngx_uint_t n)
{
    ngx_http_qqfail_result_t     *res;
    ngx_http_qqfail_main_conf_t  *qmcf;
    ngx_http_qqfail_geo_t         geo[NGX_HTTP_QQFAIL_MAX_ADDRS];

    qmcf = ngx_http_qqfail_qmcf;
    res = &job->result[n];

    if (qmcf->geo_country || qmcf->geo_asn) {
        ngx_http_qqfail_geo_annotate(qmcf, res->addrs, res->naddrs, geo);
    }

    return ngx_http_qqfail_zone_publish(qmcf, job->server, n, res->addrs,
                                        (qmcf->geo_country || qmcf->geo_asn)
                                        ? geo : NULL,
                                        res->naddrs,
                                        ((ngx_http_qqfail_name_t *)
                                         job->server->names.elts)[n].literal
                                        ? NGX_HTTP_QQFAIL_SOURCE_LITERAL
                                        : NGX_HTTP_QQFAIL_SOURCE_LIVE,
                                        ngx_http_qqfail_log);
}


static void
ngx_http_qqfail_job_schedule(ngx_http_qqfail_job_t *job,
    ngx_http_qqfail_result_t *used)
{
    ngx_msec_t                   next;
    ngx_http_qqfail_srv_conf_t  *qscf;

    qscf = job->server->upstream;

    next = qscf->refresh;

    if (used && used->ttl >= 0 && (ngx_msec_t) used->ttl * 1000 < next) {
        next = (ngx_msec_t) used->ttl * 1000;
    }

    /* while the primary name fails, retry it sooner, backing off */

    if (job->result[0].state != NGX_HTTP_QQFAIL_NAME_OK) {
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

    job->server->sh->next_msec = ngx_http_qqfail_msec() + next;
    job->server->sh->next_lookup = ngx_time() + next / 1000;

    if (ngx_http_qqfail_sync || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(&job->timer, next);
}


/* the bounded synchronous pass at configuration time, in the master */

ngx_int_t
ngx_http_qqfail_resolver_sync(ngx_cycle_t *cycle,
    ngx_http_qqfail_main_conf_t *qmcf)
{
    int                           bits, nfds, i, ms;
    ngx_uint_t                    c, k, n, todo, readable, writable;
    ngx_msec_t                    deadline, timeout;
    struct pollfd                 pfd[ARES_GETSOCK_MAXNUM
                                      * NGX_HTTP_QQFAIL_MAX_PROVIDERS];
    struct timeval                tv, *tvp;
    ares_socket_t                 socks[ARES_GETSOCK_MAXNUM];
    ngx_http_qqfail_job_t       **jobp;
    ngx_http_qqfail_srv_conf_t  **qscfp;
    ngx_http_qqfail_channel_t    *ch;
    ngx_http_qqfail_lookup_t     *lk;
    ngx_http_qqfail_server_sh_t  *ssh;

    ngx_http_qqfail_qmcf = qmcf;
    ngx_http_qqfail_log = cycle->log;
    ngx_http_qqfail_sync = 1;

    if (ngx_http_qqfail_channels_create(cycle, 1) != NGX_OK
        || ngx_http_qqfail_jobs_create(cycle) != NGX_OK)
    {
        goto done;
    }

    timeout = 0;
    qscfp = qmcf->upstreams.elts;

    for (n = 0; n < qmcf->upstreams.nelts; n++) {
        timeout = ngx_max(timeout, qscfp[n]->timeout);
    }

    ngx_time_update();
    deadline = ngx_current_msec + timeout;

    /*
     * every name of every server without live addresses, at once; servers
     * a previous generation keeps up to date are left to it
     */

    todo = 0;
    jobp = ngx_http_qqfail_jobs->elts;

    for (n = 0; n < ngx_http_qqfail_jobs->nelts; n++) {
        ssh = jobp[n]->server->sh;

        /*
         * a set agreed by fewer providers than this quorum asks, or one
         * the new rules refuse, is checked too
         */

        if ((ssh->source == NGX_HTTP_QQFAIL_SOURCE_LIVE
             || ssh->source == NGX_HTTP_QQFAIL_SOURCE_LITERAL)
            && ssh->quorum >= jobp[n]->server->upstream->quorum
            && !jobp[n]->server->refused)
        {
            continue;
        }

        /* paced like the leader's: the servers beyond wait their turn */

        ngx_queue_insert_tail(&ngx_http_qqfail_waiting, &jobp[n]->queue);
        jobp[n]->queued = 1;
        todo++;
    }

    while (todo) {
        ngx_http_qqfail_jobs_resume(NULL);

        nfds = 0;

        for (c = 0; c < ngx_http_qqfail_nchannels; c++) {
            ch = &ngx_http_qqfail_channels[c];

            if (ch->channel == NULL) {
                continue;
            }

            bits = ares_getsock(ch->channel, socks, ARES_GETSOCK_MAXNUM);

            for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
                /* unsigned: ARES_GETSOCK_WRITABLE() shifts an int by 31 */

                readable = ((unsigned) bits >> i) & 1;
                writable = ((unsigned) bits >> (i + ARES_GETSOCK_MAXNUM)) & 1;

                if (!readable && !writable) {
                    continue;
                }

                pfd[nfds].fd = socks[i];
                pfd[nfds].events = 0;
                pfd[nfds].revents = 0;

                if (readable) {
                    pfd[nfds].events |= POLLIN;
                }

                if (writable) {
                    pfd[nfds].events |= POLLOUT;
                }

                nfds++;
            }
        }

        ngx_time_update();

        if ((ngx_msec_int_t) (deadline - ngx_current_msec) <= 0) {
            break;
        }

        ms = (int) (deadline - ngx_current_msec);

        for (c = 0; c < ngx_http_qqfail_nchannels; c++) {
            ch = &ngx_http_qqfail_channels[c];

            if (ch->channel == NULL) {
                continue;
            }

            tvp = ares_timeout(ch->channel, NULL, &tv);

            if (tvp && tvp->tv_sec * 1000 + tvp->tv_usec / 1000 + 1 < ms) {
                ms = (int) (tvp->tv_sec * 1000 + tvp->tv_usec / 1000 + 1);
            }
        }

        if (nfds == 0) {
            /* nothing outstanding on any channel */
            break;
        }

        if (poll(pfd, nfds, ms) == -1 && ngx_errno != NGX_EINTR) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "qqfail: poll() failed");
            break;
        }

        for (c = 0; c < ngx_http_qqfail_nchannels; c++) {
            ch = &ngx_http_qqfail_channels[c];

            if (ch->channel == NULL) {
                continue;
            }

            for (k = 0; k < (ngx_uint_t) nfds; k++) {
                /* ares ignores descriptors that are not its own */
                if (pfd[k].revents & (POLLIN|POLLERR|POLLHUP)) {
                    ares_process_fd(ch->channel, pfd[k].fd, ARES_SOCKET_BAD);
                }

                if (pfd[k].revents & POLLOUT) {
                    ares_process_fd(ch->channel, ARES_SOCKET_BAD, pfd[k].fd);
                }
            }

            ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        }

        todo = 0;

        for (n = 0; n < ngx_http_qqfail_jobs->nelts; n++) {
            if (jobp[n]->running || jobp[n]->queued) {
                todo++;
            }
        }
    }

done:

    /*
     * undecided lookups that had their whole qqfail_timeout fail now:
     * their providers timed out; those the pacing started late are left
     * undecided to the leader, they prove nothing against a provider
     */

    if (ngx_http_qqfail_jobs) {
        jobp = ngx_http_qqfail_jobs->elts;
        ngx_time_update();

        for (n = 0; n < ngx_http_qqfail_jobs->nelts; n++) {
            for (k = 0; k < jobp[n]->server->names.nelts; k++) {
                lk = jobp[n]->result[k].lookup;

                if (jobp[n]->running && lk
                    && ngx_current_msec - lk->answer[0].sent
                       >= jobp[n]->server->upstream->timeout)
                {
                    ngx_http_qqfail_lookup_deadline(&lk->deadline);
                }
            }
        }
    }

    ngx_http_qqfail_channels_destroy();
    ngx_http_qqfail_jobs_destroy();

    ngx_http_qqfail_sync = 0;

    return NGX_OK;
}


/* the lookup leader: one worker of the current generation */

ngx_int_t
ngx_http_qqfail_resolver_init_process(ngx_cycle_t *cycle,
    ngx_http_qqfail_main_conf_t *qmcf)
{
    ngx_http_qqfail_qmcf = qmcf;
    ngx_http_qqfail_log = cycle->log;
    ngx_http_qqfail_epoch = qmcf->sh->epoch;

    ngx_http_qqfail_lease_ev.handler = ngx_http_qqfail_lease_handler;
    ngx_http_qqfail_lease_ev.data = cycle;
    ngx_http_qqfail_lease_ev.log = cycle->log;
    ngx_http_qqfail_lease_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_qqfail_lease_ev, 1);

    return NGX_OK;
}


void
ngx_http_qqfail_resolver_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_qqfail_lease_ev.timer_set) {
        ngx_del_timer(&ngx_http_qqfail_lease_ev);
    }

    ngx_http_qqfail_lead_stop();

    if (ngx_http_qqfail_qmcf && ngx_http_qqfail_qmcf->sh) {
        (void) ngx_http_qqfail_lease(ngx_http_qqfail_qmcf, (ngx_uint_t) -1,
                                     0);
    }
}


static void
ngx_http_qqfail_lease_handler(ngx_event_t *ev)
{
    ngx_int_t  rc;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        ngx_http_qqfail_lead_stop();
        return;
    }

    rc = ngx_http_qqfail_lease(ngx_http_qqfail_qmcf, ngx_http_qqfail_epoch,
                               ngx_http_qqfail_leading);

    if (rc == NGX_OK) {
        if (!ngx_http_qqfail_leading) {
            ngx_http_qqfail_lead_start(ev->data);

        } else {
            ngx_http_qqfail_channels_drops();
        }

    } else if (ngx_http_qqfail_leading) {
        ngx_http_qqfail_lead_stop();
    }

    if (rc == NGX_ABORT) {
        /* a newer generation runs: never lead again */
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_QQFAIL_LEASE_TICK);
}


static void
ngx_http_qqfail_channels_drops(void)
{
    ngx_uint_t                  i, k;
    ngx_http_qqfail_channel_t  *ch;

    for (i = 0; i < ngx_http_qqfail_nchannels; i++) {
        ch = &ngx_http_qqfail_channels[i];

        for (k = 0; k < ch->nconns; k++) {
            ngx_http_qqfail_channel_drops(ch, k);
        }
    }
}


static void
ngx_http_qqfail_lead_start(ngx_cycle_t *cycle)
{
    ngx_msec_t                    now, delay;
    ngx_uint_t                    n;
    ngx_http_qqfail_job_t       **jobp;
    ngx_http_qqfail_server_sh_t  *ssh;

    /* a lost leadership whose channels are still there ends first */

    ngx_http_qqfail_lead_stop();

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "qqfail: worker %P leads DNS lookups (generation %ui)",
                  ngx_pid, ngx_http_qqfail_epoch);

    if (ngx_http_qqfail_channels_create(cycle, 0) != NGX_OK
        || ngx_http_qqfail_jobs_create(cycle) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "qqfail: cannot start DNS lookups");
        ngx_http_qqfail_channels_destroy();
        ngx_http_qqfail_jobs_destroy();

        /* let another worker try */
        (void) ngx_http_qqfail_lease(ngx_http_qqfail_qmcf, (ngx_uint_t) -1,
                                     0);
        return;
    }

    ngx_http_qqfail_leading = 1;

    /* a first write tells at once whether the state file is writable */

    ngx_http_qqfail_state_changed(ngx_http_qqfail_qmcf, cycle->log);

    /*
     * continue where the previous leader stopped, on the monotonic clock:
     * a wall clock step does not delay lookups; a lower "qqfail_refresh"
     * after a reload applies at once
     */

    now = ngx_http_qqfail_msec();
    jobp = ngx_http_qqfail_jobs->elts;

    for (n = 0; n < ngx_http_qqfail_jobs->nelts; n++) {
        ssh = jobp[n]->server->sh;
        delay = 1;

        if (ssh->source != NGX_HTTP_QQFAIL_SOURCE_NONE) {
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
ngx_http_qqfail_lead_stop(void)
{
    if (ngx_http_qqfail_leading) {
        ngx_http_qqfail_leading = 0;

        ngx_log_error(NGX_LOG_NOTICE, ngx_http_qqfail_log, 0,
                      "qqfail: worker %P stops DNS lookups", ngx_pid);
    }

    if (ngx_http_qqfail_stop_ev.posted) {
        ngx_delete_posted_event(&ngx_http_qqfail_stop_ev);
    }

    ngx_http_qqfail_lead_end(NULL);
}


/*
 * Before the leader writes to the zone or publishes anything: does it
 * still hold its lease?  A leader that resumes after a stop (SIGSTOP, a
 * slow fsync) reads the answers that came meanwhile and runs its expired
 * timers before its next lease tick: once the lease ran out, none of that
 * counts.  The start-up pass always acts.
 */

static ngx_uint_t
ngx_http_qqfail_lead_check(void)
{
    if (ngx_http_qqfail_sync) {
        return 1;
    }

    if (!ngx_http_qqfail_leading) {
        return 0;
    }

    if (ngx_http_qqfail_lease(ngx_http_qqfail_qmcf, ngx_http_qqfail_epoch, 1)
        == NGX_OK)
    {
        return 1;
    }

    ngx_http_qqfail_lead_lost();

    return 0;
}


static void
ngx_http_qqfail_lead_lost(void)
{
    ngx_http_qqfail_leading = 0;

    ngx_log_error(NGX_LOG_NOTICE, ngx_http_qqfail_log, 0,
                  "qqfail: worker %P lost its lease, stops DNS lookups",
                  ngx_pid);

    /* its pending state-file write would overwrite the new leader's */

    ngx_http_qqfail_state_cancel();

    /*
     * c-ares may be on the stack (this runs in its callbacks): the
     * channels go once it has returned; until then nothing is accounted
     * or published, as the leadership flag is off
     */

    ngx_http_qqfail_stop_ev.handler = ngx_http_qqfail_lead_end;
    ngx_http_qqfail_stop_ev.log = ngx_http_qqfail_log;

    ngx_post_event(&ngx_http_qqfail_stop_ev, &ngx_posted_events);
}


static void
ngx_http_qqfail_lead_end(ngx_event_t *ev)
{
    ngx_http_qqfail_state_flush();

    /* callbacks of pending queries run now, and publish nothing */

    ngx_http_qqfail_channels_destroy();
    ngx_http_qqfail_jobs_destroy();
}
