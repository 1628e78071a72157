
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

/*
 * the start-up pass ends after this long once every upstream has a server
 * with addresses (live, or from the state file or the zone), and after
 * qqfail_timeout at the latest: the lookup leader takes over the names
 * still undecided
 */
#define NGX_HTTP_QQFAIL_START_PASS     500
#define NGX_HTTP_QQFAIL_MAX_CONNS      (2 * NGX_HTTP_QQFAIL_MAX_PROVIDER_ADDRS)

/* the socket buffer for the answers of the lookups in flight */
#define NGX_HTTP_QQFAIL_RCVBUF         (1024 * 1024)


/*
 * A socket c-ares opened, as its sock_state_cb last described it: the
 * event loop watches it through the connection, the start-up pass (no
 * connections in the master) polls it by the two flags
 */

typedef struct {
    ngx_connection_t                *connection;  /* NULL in the pass */
    ares_socket_t                    fd;
    uint32_t                         drops;
    unsigned                         readable:1;
    unsigned                         writable:1;
} ngx_http_qqfail_sock_t;


typedef struct {
    ares_channel                     channel;
    ngx_http_qqfail_provider_t      *provider;
    ngx_msec_t                       timeout;    /* qqfail_timeout */
    ngx_event_t                      timer;
    ngx_uint_t                       nsocks;
    ngx_http_qqfail_sock_t           socks[NGX_HTTP_QQFAIL_MAX_CONNS];
} ngx_http_qqfail_channel_t;


#if (ARES_VERSION >= 0x012000)

/*
 * A query c-ares may still send again after its qqfail_timeout (see
 * channels_create): the timer ends it for the module then, as c-ares 1.18
 * does; what c-ares reports later is dropped
 */

typedef struct {
    void                            *query;      /* NULL once ended */
    ngx_event_t                      timer;
} ngx_http_qqfail_sent_t;

#endif


typedef struct ngx_http_qqfail_lookup_s  ngx_http_qqfail_lookup_t;


typedef struct {
    ngx_http_qqfail_lookup_t        *lookup;
    ngx_uint_t                       provider;
    ngx_uint_t                       type;       /* 0: A, 1: AAAA */
    ngx_uint_t                       sent;       /* counted in flight */
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
    ngx_http_qqfail_result_t         result[NGX_HTTP_QQFAIL_MAX_NAMES];
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
static ngx_http_qqfail_sock_t *ngx_http_qqfail_channel_sock(
    ngx_http_qqfail_channel_t *ch, ares_socket_t fd);
static void ngx_http_qqfail_channel_query(ngx_http_qqfail_channel_t *ch,
    u_char *host, ngx_uint_t type, ngx_http_qqfail_query_t *q);
#if (ARES_VERSION >= 0x011c00)
static void ngx_http_qqfail_channel_answer(void *arg, ares_status_t status,
    size_t timeouts, const ares_dns_record_t *dnsrec);
#endif
#if (ARES_VERSION >= 0x012000)
static void ngx_http_qqfail_channel_expire(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_qqfail_channels_poll(ngx_msec_t deadline,
    ngx_msec_t wake);
static void ngx_http_qqfail_channel_read(ngx_event_t *ev);
static void ngx_http_qqfail_channel_write(ngx_event_t *ev);
static void ngx_http_qqfail_channel_timeout(ngx_event_t *ev);
static void ngx_http_qqfail_channel_timer(ngx_http_qqfail_channel_t *ch);

static ngx_int_t ngx_http_qqfail_jobs_create(ngx_cycle_t *cycle);
static void ngx_http_qqfail_jobs_destroy(void);
static void ngx_http_qqfail_job_handler(ngx_event_t *ev);
static void ngx_http_qqfail_job_run(ngx_http_qqfail_job_t *job);
static void ngx_http_qqfail_results_free(ngx_http_qqfail_job_t *job);
static ngx_uint_t ngx_http_qqfail_job_turn(ngx_http_qqfail_job_t *job);
static ngx_uint_t ngx_http_qqfail_job_last(ngx_http_qqfail_job_t *job);
static ngx_uint_t ngx_http_qqfail_job_queries(ngx_http_qqfail_job_t *job);
static void ngx_http_qqfail_query_ended(ngx_http_qqfail_query_t *q);
static void ngx_http_qqfail_jobs_resume(ngx_event_t *ev);
static void ngx_http_qqfail_job_start(ngx_http_qqfail_job_t *job,
    ngx_uint_t from, ngx_uint_t to);
static void ngx_http_qqfail_job_lookup(ngx_http_qqfail_job_t *job,
    ngx_uint_t n);
static void ngx_http_qqfail_job_check(ngx_http_qqfail_job_t *job);
static void ngx_http_qqfail_job_finish(ngx_http_qqfail_job_t *job);
static void ngx_http_qqfail_job_record(ngx_http_qqfail_job_t *job,
    ngx_int_t chosen);
static void ngx_http_qqfail_job_use(ngx_http_qqfail_job_t *job,
    ngx_int_t chosen);
static void ngx_http_qqfail_job_keep(ngx_http_qqfail_job_t *job);
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
static void ngx_http_qqfail_provider_account(ngx_http_qqfail_lookup_t *lk,
    ngx_uint_t p, ngx_uint_t ok, ngx_uint_t error, ngx_uint_t transport,
    ngx_uint_t disagree);

static ngx_uint_t ngx_http_qqfail_sync_served(
    ngx_http_qqfail_main_conf_t *qmcf);

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
static ngx_uint_t                    ngx_http_qqfail_inflight[
                                         NGX_HTTP_QQFAIL_MAX_PROVIDERS];
static ngx_uint_t                    ngx_http_qqfail_rate;    /* queries/s */
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

#if (ARES_VERSION < 0x012000)

    /*
     * libcares keeps its soname: a newer one than this build knows caches
     * answers (1.31) and shortens timeouts (1.32), see below
     */

    if (sync) {
        (void) ares_version(&rc);

        if (rc >= 0x011f00) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "qqfail: built with c-ares " ARES_VERSION_STR
                          ", runs with %s, whose query cache and adaptive "
                          "timeouts this build cannot turn off: rebuild the "
                          "module against it", ares_version(NULL));
        }
    }

#endif

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

        ch->timeout = timeout;

        n = ch->provider->addrs.nelts ? ch->provider->addrs.nelts : 1;

        ngx_memzero(&opts, sizeof(struct ares_options));

        /*
         * NOCHECKRESP: SERVFAIL and REFUSED reach us instead of being
         * hidden behind a retry; one try per address (more with c-ares
         * 1.32, below), the timeout split between the addresses of the
         * provider
         */

        opts.flags = ARES_FLAG_NOCHECKRESP|ARES_FLAG_NOSEARCH
                     |ARES_FLAG_NOALIASES;
        opts.timeout = (int) ngx_max(timeout / n, 10);
        opts.tries = 1;
        opts.ndomains = 0;
        opts.domains = NULL;
        opts.lookups = (char *) "b";

        /*
         * one driver, the event loop's and the start-up pass's alike: the
         * socket state callback (ares_getsock() is deprecated since 1.34)
         */

        opts.sock_state_cb = ngx_http_qqfail_sock_state;
        opts.sock_state_cb_data = ch;

        optmask = ARES_OPT_FLAGS|ARES_OPT_TIMEOUTMS|ARES_OPT_TRIES
                  |ARES_OPT_DOMAINS|ARES_OPT_LOOKUPS|ARES_OPT_SOCK_STATE_CB;

        /*
         * the same behaviour with c-ares 1.18 and later ones (the library
         * keeps its soname, so a module built on one runs on another):
         *
         * ARES_FLAG_EDNS and ARES_FLAG_DNS0x20 stay off: the flags above
         * replace the defaults (1.34 turns EDNS on only without
         * ARES_OPT_FLAGS);
         *
         * the query cache (1.23, on by default since 1.31) is off: it
         * would answer from memory for up to an hour, so that a provider
         * that went down, or changed its answer or TTL, would go unseen and
         * the queries counted would never reach it; the module caches by
         * its own rules (qqfail_max_stale, the state file);
         *
         * the per-server timeout, which 1.32 adapts to the latency seen
         * (5 times the average, 250 ms to 5 s), never exceeds this
         * provider's share of qqfail_timeout; as it may fall to 250 ms,
         * there, the query is sent again until the attempts add up to the
         * share (each try doubles, less a random half), and an answer to
         * any attempt ends it; a timer ends it at qqfail_timeout
         * (channel_query): a provider that answers within its share is not
         * charged a timeout, and one that does not answer is charged at
         * qqfail_timeout, as with 1.18;
         *
         * ARES_OPT_EVENT_THREAD and ares_reinit(), the system configuration
         * watch that needs it, are not used: no threads in nginx; a
         * provider's servers change on reload only;
         *
         * ARES_OPT_UDP_MAX_QUERIES stays 0 (a socket for any number of
         * queries), as in 1.18, and ARES_OPT_SERVER_FAILOVER (1.29) keeps
         * its defaults: see docs/how-it-works.md
         */

#ifdef ARES_OPT_QUERY_CACHE
        opts.qcache_max_ttl = 0;
        optmask |= ARES_OPT_QUERY_CACHE;
#endif

#ifdef ARES_OPT_MAXTIMEOUTMS
        opts.maxtimeout = opts.timeout;
        optmask |= ARES_OPT_MAXTIMEOUTMS;
#endif

#if (ARES_VERSION >= 0x012000)
        while (opts.tries < 8 && 250 << (opts.tries - 1) < opts.timeout) {
            opts.tries++;
        }
#endif

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

            ngx_memcpy(servers, ch->provider->servers.data,
                       ch->provider->servers.len);
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

        ares_set_socket_callback(ch->channel, ngx_http_qqfail_sock_create, ch);

        if (!sync) {
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


static ngx_http_qqfail_sock_t *
ngx_http_qqfail_channel_sock(ngx_http_qqfail_channel_t *ch, ares_socket_t fd)
{
    ngx_uint_t  i;

    for (i = 0; i < ch->nsocks; i++) {
        if (ch->socks[i].fd == fd) {
            return &ch->socks[i];
        }
    }

    return NULL;
}


/*
 * c-ares opened a socket: wrap it in a connection, so that nginx's event
 * loop watches it; the start-up pass, in the master, only notes it.
 * Returning -1 makes c-ares close it and fail the query.
 */

static int
ngx_http_qqfail_sock_create(ares_socket_t fd, int type, void *data)
{
    ngx_http_qqfail_channel_t *ch = data;

    ngx_connection_t        *c;
    ngx_http_qqfail_sock_t  *s;

    if (ch->nsocks == NGX_HTTP_QQFAIL_MAX_CONNS) {
        return -1;
    }

    c = NULL;

    if (!ngx_http_qqfail_sync) {
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
    }

    s = &ch->socks[ch->nsocks++];

    s->connection = c;
    s->fd = fd;
    s->drops = 0;
    s->readable = 0;
    s->writable = 0;

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

    if (getsockopt(ch->socks[i].fd, SOL_SOCKET, SO_MEMINFO, mem, &len)
        == -1
        || len <= SK_MEMINFO_DROPS * sizeof(uint32_t))
    {
        return;
    }

    delta = mem[SK_MEMINFO_DROPS] - ch->socks[i].drops;
    ch->socks[i].drops = mem[SK_MEMINFO_DROPS];

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
 * The one driver of a channel's sockets, in the event loop and in the
 * start-up pass.  Level-triggered events: c-ares reads one TCP chunk per
 * call and stops at a datagram from an unexpected source, so an edge could
 * be lost.
 */

static void
ngx_http_qqfail_sock_state(void *data, ares_socket_t fd, int readable,
    int writable)
{
    ngx_http_qqfail_channel_t *ch = data;

    ngx_uint_t               i;
    ngx_connection_t        *c;
    ngx_http_qqfail_sock_t  *s;

    s = ngx_http_qqfail_channel_sock(ch, fd);

    if (s == NULL) {
        return;
    }

    s->readable = readable ? 1 : 0;
    s->writable = writable ? 1 : 0;

    c = s->connection;

    if (readable || writable) {

        if (c == NULL) {
            /* the start-up pass polls by the flags */
            return;
        }

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

    i = s - ch->socks;

    if (c) {
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

        ngx_http_qqfail_channel_drops(ch, i);

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    ch->socks[i] = ch->socks[--ch->nsocks];
    ngx_memzero(&ch->socks[ch->nsocks], sizeof(ngx_http_qqfail_sock_t));
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


/*
 * One query of a lookup.  c-ares 1.28 deprecates ares_query() for
 * ares_query_dnsrec(), which hands over the parsed message: it is written
 * back to the wire for our strict parser, as ares_query() itself does it
 * there, so that both versions see the same bytes and statuses.
 */

static void
ngx_http_qqfail_channel_query(ngx_http_qqfail_channel_t *ch, u_char *host,
    ngx_uint_t type, ngx_http_qqfail_query_t *q)
{
#if (ARES_VERSION >= 0x011c00)

    void                    *arg;
#if (ARES_VERSION >= 0x012000)
    ngx_http_qqfail_sent_t  *sent;
#endif

    arg = q;

#if (ARES_VERSION >= 0x012000)

    if (!ngx_http_qqfail_sync) {
        sent = ngx_alloc(sizeof(ngx_http_qqfail_sent_t), ngx_http_qqfail_log);
        if (sent == NULL) {
            ngx_http_qqfail_query_handler(q, ARES_ENOMEM, 0, NULL, 0);
            return;
        }

        ngx_memzero(&sent->timer, sizeof(ngx_event_t));

        sent->query = q;
        sent->timer.handler = ngx_http_qqfail_channel_expire;
        sent->timer.data = sent;
        sent->timer.log = ngx_http_qqfail_log;
        sent->timer.cancelable = 1;

        ngx_add_timer(&sent->timer, ch->timeout);

        arg = sent;
    }

#endif

    /* the callback also runs on an error (ARES_ENOMEM) */

    (void) ares_query_dnsrec(ch->channel, (const char *) host, ARES_CLASS_IN,
                             type ? ARES_REC_TYPE_AAAA : ARES_REC_TYPE_A,
                             ngx_http_qqfail_channel_answer, arg, NULL);

#else

    ares_query(ch->channel, (char *) host, ns_c_in, type ? ns_t_aaaa : ns_t_a,
               ngx_http_qqfail_query_handler, q);

#endif
}


#if (ARES_VERSION >= 0x011c00)

static void
ngx_http_qqfail_channel_answer(void *arg, ares_status_t status,
    size_t timeouts, const ares_dns_record_t *dnsrec)
{
    int                      rc;
    size_t                   alen;
    unsigned char           *abuf;
#if (ARES_VERSION >= 0x012000)
    ngx_http_qqfail_sent_t  *sent;

    if (!ngx_http_qqfail_sync) {
        sent = arg;
        arg = sent->query;

        if (sent->timer.timer_set) {
            ngx_del_timer(&sent->timer);
        }

        ngx_free(sent);

        if (arg == NULL) {
            /* ended by its timer */
            return;
        }
    }
#endif

    rc = (int) status;
    abuf = NULL;
    alen = 0;

    if (dnsrec != NULL) {
        status = ares_dns_write(dnsrec, &abuf, &alen);

        if (status != ARES_SUCCESS) {
            rc = (int) status;
            abuf = NULL;
            alen = 0;
        }
    }

    ngx_http_qqfail_query_handler(arg, rc, (int) timeouts, abuf, (int) alen);

    if (abuf) {
        ares_free_string(abuf);
    }
}

#endif


#if (ARES_VERSION >= 0x012000)

static void
ngx_http_qqfail_channel_expire(ngx_event_t *ev)
{
    ngx_http_qqfail_sent_t  *sent = ev->data;

    void  *q;

    q = sent->query;
    sent->query = NULL;

    ngx_http_qqfail_query_handler(q, ARES_ETIMEOUT, 0, NULL, 0);
}

#endif


/*
 * One step of the start-up pass: wait for the sockets of every channel as
 * sock_state_cb described them, or for the first c-ares timeout, then let
 * c-ares read, write and expire.  NGX_DONE: no query is outstanding.
 */

static ngx_int_t
ngx_http_qqfail_channels_poll(ngx_msec_t deadline, ngx_msec_t wake)
{
    int                         ms, t;
    ngx_int_t                   rc;
    ngx_uint_t                  c, k, n, nfds, active;
    struct pollfd              *pfd;
    struct timeval              tv, *tvp;
    ngx_http_qqfail_sock_t     *s;
    ngx_http_qqfail_channel_t  *ch, **owner;

    ngx_time_update();

    if ((ngx_msec_int_t) (deadline - ngx_current_msec) <= 0) {
        return NGX_DONE;
    }

    ms = (int) (deadline - ngx_current_msec);

    /* the caller checks something at "wake" too */

    if ((ngx_msec_int_t) (wake - ngx_current_msec) > 0
        && (int) (wake - ngx_current_msec) < ms)
    {
        ms = (int) (wake - ngx_current_msec);
    }

    active = 0;
    n = 0;

    for (c = 0; c < ngx_http_qqfail_nchannels; c++) {
        ch = &ngx_http_qqfail_channels[c];

        if (ch->channel == NULL) {
            continue;
        }

        n += ch->nsocks;

        /* no timeout: nothing outstanding on this channel */

        tvp = ares_timeout(ch->channel, NULL, &tv);

        if (tvp == NULL) {
            continue;
        }

        active = 1;
        t = (int) (tvp->tv_sec * 1000 + tvp->tv_usec / 1000 + 1);

        if (t < ms) {
            ms = t;
        }
    }

    if (!active) {
        return NGX_DONE;
    }

    /* each descriptor with its channel */

    pfd = ngx_alloc((n ? n : 1) * (sizeof(struct pollfd) + sizeof(void *)),
                    ngx_http_qqfail_log);
    if (pfd == NULL) {
        return NGX_ERROR;
    }

    owner = (ngx_http_qqfail_channel_t **) &pfd[n ? n : 1];
    nfds = 0;

    for (c = 0; c < ngx_http_qqfail_nchannels; c++) {
        ch = &ngx_http_qqfail_channels[c];

        for (k = 0; ch->channel && k < ch->nsocks; k++) {
            s = &ch->socks[k];

            if (!s->readable && !s->writable) {
                continue;
            }

            pfd[nfds].fd = s->fd;
            pfd[nfds].events = (s->readable ? POLLIN : 0)
                               | (s->writable ? POLLOUT : 0);
            pfd[nfds].revents = 0;
            owner[nfds++] = ch;
        }
    }

    rc = NGX_OK;

    if (poll(pfd, nfds, ms) == -1 && ngx_errno != NGX_EINTR) {
        ngx_log_error(NGX_LOG_ALERT, ngx_http_qqfail_log, ngx_errno,
                      "qqfail: poll() failed");
        rc = NGX_ERROR;
        goto done;
    }

    /* a socket an earlier answer closed is skipped */

    for (k = 0; k < nfds; k++) {
        ch = owner[k];

        if ((pfd[k].revents & (POLLIN|POLLERR|POLLHUP))
            && ngx_http_qqfail_channel_sock(ch, pfd[k].fd))
        {
            ares_process_fd(ch->channel, pfd[k].fd, ARES_SOCKET_BAD);
        }

        if ((pfd[k].revents & POLLOUT)
            && ngx_http_qqfail_channel_sock(ch, pfd[k].fd))
        {
            ares_process_fd(ch->channel, ARES_SOCKET_BAD, pfd[k].fd);
        }
    }

    /* the timeouts */

    for (c = 0; c < ngx_http_qqfail_nchannels; c++) {
        ch = &ngx_http_qqfail_channels[c];

        if (ch->channel) {
            ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        }
    }

done:

    ngx_free(pfd);

    return rc;
}


/* jobs: the lookups of one server */

static ngx_int_t
ngx_http_qqfail_jobs_create(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i, j, n, more;
    ngx_http_qqfail_provider_t   *pr;
    ngx_http_qqfail_job_t        *job, **jobp;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_srv_conf_t  **qscfp;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_qmcf;

    /* on the heap: leadership may start and stop many times per cycle */

    ngx_queue_init(&ngx_http_qqfail_waiting);
    ngx_memzero(ngx_http_qqfail_inflight, sizeof(ngx_http_qqfail_inflight));

    /*
     * pacing: every lookup asks every provider, so the slowest "rate="
     * sets how many queries a provider gets a second; "max_inflight=" is
     * checked per provider, query by query (ngx_http_qqfail_job_turn)
     */

    ngx_http_qqfail_rate = 0;

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        if (pr[i].rate
            && (ngx_http_qqfail_rate == 0 || pr[i].rate < ngx_http_qqfail_rate))
        {
            ngx_http_qqfail_rate = pr[i].rate;
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

            job = ngx_calloc(sizeof(ngx_http_qqfail_job_t), cycle->log);
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

        if (!more) {
            break;
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
    ngx_memzero(ngx_http_qqfail_inflight, sizeof(ngx_http_qqfail_inflight));
}


static void
ngx_http_qqfail_job_handler(ngx_event_t *ev)
{
    ngx_http_qqfail_job_t  *job = ev->data;

    if (job->queued || !ngx_http_qqfail_lead_check()) {
        return;
    }

    if (job->running) {

        /*
         * a server with no address whose first names are still undecided:
         * its remaining aliases are asked now, paced, ahead of the servers
         * waiting for their round
         */

        if (job->phase == 1 && job->queried < job->server->names.nelts) {
            if (!ngx_http_qqfail_job_turn(job)) {
                ngx_queue_insert_head(&ngx_http_qqfail_waiting, &job->queue);
                job->queued = 1;
                return;
            }

            ngx_http_qqfail_job_run(job);
        }

        return;
    }

    /*
     * paced: a server waits for its turn, in order; its lookups' timeouts
     * start when they are sent, so waiting never counts against a provider
     */

    if (!ngx_queue_empty(&ngx_http_qqfail_waiting)
        || !ngx_http_qqfail_job_turn(job))
    {
        ngx_queue_insert_tail(&ngx_http_qqfail_waiting, &job->queue);
        job->queued = 1;
        return;
    }

    ngx_http_qqfail_job_run(job);
}


/*
 * May this server's round start now?  Only if every provider it asks has
 * room for the round's queries beside those still in flight to it
 * ("max_inflight=", counted until each query ends, however the lookup
 * was decided), and not faster than the slowest "rate=": a token bucket
 * holding a tenth of a second's worth, refilled by the clock, and a timer
 * that resumes the waiting servers when the next token is due.
 *
 * A provider marked down is left out while another one is up: it would
 * hold every turn for its whole timeout; it gets a query only where it
 * has room (ngx_http_qqfail_job_lookup), so it is still asked, paced.
 */

static ngx_uint_t
ngx_http_qqfail_job_turn(ngx_http_qqfail_job_t *job)
{
    ngx_uint_t                   p, up, need;
    ngx_msec_t                   now, wait;
    ngx_http_qqfail_provider_t  *pr;

    need = ngx_http_qqfail_job_queries(job);
    pr = ngx_http_qqfail_qmcf->providers.elts;

    up = 0;

    for (p = 0; p < ngx_http_qqfail_nproviders; p++) {
        if (!pr[p].sh->down) {
            up++;
        }
    }

    for (p = 0; p < ngx_http_qqfail_nproviders; p++) {
        if (up && pr[p].sh->down) {
            continue;
        }

        if (ngx_http_qqfail_inflight[p] + need > pr[p].max_inflight
            && ngx_http_qqfail_inflight[p] > 0)
        {
            return 0;
        }
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
                                             need * 1000));
    ngx_http_qqfail_tokens_at = now;

    if (ngx_http_qqfail_tokens >= need * 1000) {
        ngx_http_qqfail_tokens -= need * 1000;
        return 1;
    }

    if (!ngx_http_qqfail_sync && !ngx_http_qqfail_resume_ev.timer_set) {
        wait = (need * 1000 - ngx_http_qqfail_tokens + ngx_http_qqfail_rate
                - 1) / ngx_http_qqfail_rate;

        ngx_http_qqfail_resume_ev.handler = ngx_http_qqfail_jobs_resume;
        ngx_http_qqfail_resume_ev.log = ngx_http_qqfail_log;
        ngx_http_qqfail_resume_ev.cancelable = 1;
        ngx_add_timer(&ngx_http_qqfail_resume_ev, wait ? wait : 1);
    }

    return 0;
}


/*
 * The names a round asks first: its current one and every better one.
 * The start-up pass asks every name at once, it has no time to wait; the
 * leader asks the others when these fail, or, for a server with no
 * address, when they are still undecided after a quarter of
 * qqfail_timeout (ngx_http_qqfail_job_handler): a healthy primary name
 * costs no query for its aliases.
 */

static ngx_uint_t
ngx_http_qqfail_job_last(ngx_http_qqfail_job_t *job)
{
    ngx_uint_t  last;

    last = ngx_http_qqfail_sync ? job->server->names.nelts - 1
                                : job->server->sh->active;

    return ngx_min(last, job->server->names.nelts - 1);
}


/* the queries the next step of a round sends each provider */

static ngx_uint_t
ngx_http_qqfail_job_queries(ngx_http_qqfail_job_t *job)
{
    ngx_uint_t               n, from, last, need;
    ngx_http_qqfail_name_t  *name;

    if (job->running) {
        from = job->queried;
        last = job->server->names.nelts - 1;

    } else {
        from = 0;
        last = ngx_http_qqfail_job_last(job);
    }

    name = job->server->names.elts;
    need = 0;

    for (n = from; n <= last; n++) {
        if (!name[n].literal) {
            need += job->server->upstream->ipv6 ? 2 : 1;
        }
    }

    return need;
}


static void
ngx_http_qqfail_job_run(ngx_http_qqfail_job_t *job)
{
    if (job->running) {
        /* the remaining aliases, at once */

        if (job->timer.timer_set) {
            ngx_del_timer(&job->timer);
        }

        job->phase = 2;
        ngx_http_qqfail_job_start(job, job->queried,
                                  job->server->names.nelts - 1);
        return;
    }

    job->phase = 1;

    /* a server with no address does not wait long for its first names */

    if (!ngx_http_qqfail_sync
        && job->server->sh->source == NGX_HTTP_QQFAIL_SOURCE_NONE
        && ngx_http_qqfail_job_last(job) + 1 < job->server->names.nelts)
    {
        ngx_add_timer(&job->timer, job->server->upstream->timeout / 4);
    }

    ngx_http_qqfail_job_start(job, 0, ngx_http_qqfail_job_last(job));
}


/* lookups ended: servers waiting for their turn get it */

static void
ngx_http_qqfail_jobs_resume(ngx_event_t *ev)
{
    ngx_queue_t            *q;
    ngx_http_qqfail_job_t  *job;

    while (!ngx_queue_empty(&ngx_http_qqfail_waiting)) {

        q = ngx_queue_head(&ngx_http_qqfail_waiting);
        job = ngx_queue_data(q, ngx_http_qqfail_job_t, queue);

        if (!ngx_http_qqfail_lead_check() || !ngx_http_qqfail_job_turn(job)) {
            return;
        }

        ngx_queue_remove(q);
        job->queued = 0;

        ngx_http_qqfail_job_run(job);
    }
}


/*
 * A query ended: one less in flight to its provider.  The servers waiting
 * for their turn get it from a posted event, not from inside c-ares.
 */

static void
ngx_http_qqfail_query_ended(ngx_http_qqfail_query_t *q)
{
    if (!q->sent) {
        return;
    }

    q->sent = 0;

    if (ngx_http_qqfail_inflight[q->provider]) {
        ngx_http_qqfail_inflight[q->provider]--;
    }

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

    for (n = 0; n < NGX_HTTP_QQFAIL_MAX_NAMES; n++) {
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
    ngx_http_qqfail_provider_t  *pr;
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

    res->lookup = lk;
    job->pending++;

    types = qscf->ipv6 ? 2 : 1;
    pr = ngx_http_qqfail_qmcf->providers.elts;

    /*
     * count every query first, plus one for this function: callbacks may
     * run inside ares_query(), and must not free the lookup under us
     */

    lk->queries = 1;

    for (p = 0; p < lk->nproviders; p++) {
        lk->answer[p].pending = types;
        lk->answer[p].status[0] = ARES_ENODATA;
        lk->answer[p].status[1] = ARES_ENODATA;
        lk->answer[p].ttl = -1;
        lk->answer[p].sent = ngx_current_msec;

        /*
         * a provider marked down and without room is not asked: the
         * turn did not wait for it (ngx_http_qqfail_job_turn), and
         * a query it was never sent proves nothing against it
         */

        if (pr[p].sh->down
            && ngx_http_qqfail_inflight[p] + types > pr[p].max_inflight)
        {
            lk->answer[p].abandoned = 1;
            lk->answer[p].pending = 0;
            continue;
        }

        lk->queries += types;
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

        if (lk->answer[p].abandoned) {
            continue;
        }

        /* the channels of this upstream's qqfail_timeout */

        ch = &ngx_http_qqfail_channels[qscf->channels * lk->nproviders + p];

        for (i = 0; i < types; i++) {
            lk->query[nq].lookup = lk;
            lk->query[nq].provider = p;
            lk->query[nq].type = i;
            lk->query[nq].sent = 0;

            if (ch->channel == NULL) {
                ngx_http_qqfail_query_handler(&lk->query[nq],
                                              ARES_ENOTINITIALIZED, 0, NULL,
                                              0);

            } else {
                /* in flight until it ends, however the lookup is decided */
                lk->query[nq].sent = 1;
                ngx_http_qqfail_inflight[p]++;

                ngx_http_qqfail_channel_query(ch, host, i, &lk->query[nq]);
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
            if (!lk->answer[p].abandoned) {
                pr[p].sh->queries += types;
            }
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

    ngx_http_qqfail_query_ended(q);

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

    /*
     * every name so far failed: the remaining aliases are asked at once,
     * paced as a round is, ahead of the servers waiting for their round
     */

    if (job->phase == 1 && job->queried < nnames && !ngx_http_qqfail_sync) {

        if (!ngx_http_qqfail_job_turn(job)) {
            ngx_queue_insert_head(&ngx_http_qqfail_waiting, &job->queue);
            job->queued = 1;
            return;
        }

        ngx_http_qqfail_job_run(job);
        return;
    }

    ngx_http_qqfail_job_finish(job);
}


/*
 * The round is over: the policy chooses the name that supplies the
 * addresses (ngx_http_qqfail_policy_choose), then the steps below record
 * what every name found, use the chosen name, or, when every name failed,
 * keep the last good addresses until qqfail_max_stale.
 */

static void
ngx_http_qqfail_job_finish(ngx_http_qqfail_job_t *job)
{
    ngx_int_t                     chosen;
    ngx_uint_t                    n, recover;
    ngx_uint_t                    state[NGX_HTTP_QQFAIL_MAX_NAMES];
    ngx_http_qqfail_server_sh_t  *ssh;

    job->running = 0;

    if (job->timer.timer_set) {
        ngx_del_timer(&job->timer);
    }

    /* the last check before anything is published */

    if (!ngx_http_qqfail_lead_check()) {
        return;
    }

    ssh = job->server->sh;

    for (n = 0; n < job->queried; n++) {
        state[n] = job->result[n].state;
    }

    /* the leader alone writes "recover" */

    recover = ssh->recover;

    chosen = ngx_http_qqfail_policy_choose(job->queried, state, ssh->active,
                                           ssh->source, &recover);

    ssh->recover = recover;

    ngx_http_qqfail_job_record(job, chosen);

    if (chosen >= 0) {
        ngx_http_qqfail_job_use(job, chosen);

    } else {
        ngx_http_qqfail_job_keep(job);
        ngx_http_qqfail_job_schedule(job, NULL);
    }

    ngx_http_qqfail_results_free(job);
}


/* what each name found, for the status page */

static void
ngx_http_qqfail_job_record(ngx_http_qqfail_job_t *job, ngx_int_t chosen)
{
    time_t                        now;
    ngx_uint_t                    n;
    ngx_http_qqfail_result_t     *res;
    ngx_http_qqfail_server_sh_t  *ssh;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_qmcf;
    ssh = job->server->sh;
    now = ngx_time();

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    for (n = 0; n < job->queried; n++) {
        res = &job->result[n];

        /*
         * an undecided name, or one without a quorum, keeps its status:
         * the addresses in use stay, but nothing was confirmed
         */

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
    }

    if (chosen >= 0
        && job->result[chosen].state == NGX_HTTP_QQFAIL_NAME_OK)
    {
        ssh->last_success = now;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/*
 * The chosen name's addresses are published (a set without a quorum
 * leaves the ones in use); a zone too full for them, when the server has
 * no address at all, makes a later name whose set fits (an IP literal)
 * serve it.  A change of name is counted and logged.
 */

static void
ngx_http_qqfail_job_use(ngx_http_qqfail_job_t *job, ngx_int_t chosen)
{
    ngx_int_t                     rc;
    ngx_uint_t                    n, cur, source;
    ngx_http_qqfail_name_t       *names;
    ngx_http_qqfail_result_t     *res;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_server_sh_t  *ssh;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_qmcf;
    server = job->server;
    ssh = server->sh;
    names = server->names.elts;

    cur = ssh->active;
    source = ssh->source;
    res = &job->result[chosen];

    if (res->state == NGX_HTTP_QQFAIL_NAME_OK) {
        rc = ngx_http_qqfail_job_publish(job, chosen);

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

    if ((ngx_uint_t) chosen != cur && source != NGX_HTTP_QQFAIL_SOURCE_NONE) {
        ngx_shmtx_lock(&qmcf->shpool->mutex);
        ssh->failovers++;
        ngx_shmtx_unlock(&qmcf->shpool->mutex);

        if ((ngx_uint_t) chosen > cur) {
            ngx_http_qqfail_event(qmcf, NGX_LOG_WARN, ngx_http_qqfail_log, 0,
                                  server, "every provider failed for \"%V\" "
                                  "(%V), failing over to \"%V\"",
                                  &names[cur].host,
                                  &ngx_http_qqfail_errors[
                                      job->result[cur].error],
                                  &names[chosen].text);

        } else {
            ngx_http_qqfail_event(qmcf, NGX_LOG_WARN, ngx_http_qqfail_log, 0,
                                  server, "\"%V\" resolves again, back from "
                                  "\"%V\"", &names[chosen].text,
                                  &names[cur].text);
        }
    }

    ngx_http_qqfail_job_schedule(job, res);
}


/*
 * Every name failed: the last good addresses stay, marked stale, until
 * they are older than qqfail_max_stale; then the server has none.
 */

static void
ngx_http_qqfail_job_keep(ngx_http_qqfail_job_t *job)
{
    time_t                        now;
    ngx_uint_t                    stale, expired;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_srv_conf_t   *qscf;
    ngx_http_qqfail_server_sh_t  *ssh;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_qmcf;
    server = job->server;
    qscf = server->upstream;
    ssh = server->sh;
    now = ngx_time();

    stale = 0;
    expired = 0;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    if (ssh->naddrs) {
        if (ssh->source == NGX_HTTP_QQFAIL_SOURCE_LIVE
            || ssh->source == NGX_HTTP_QQFAIL_SOURCE_LITERAL)
        {
            ssh->source = NGX_HTTP_QQFAIL_SOURCE_STALE;
            ssh->stale_since = ssh->last_success ? ssh->last_success : now;
            ngx_http_qqfail_zone_changed(ssh);
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
}


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
    ngx_uint_t                    k, n, todo;
    ngx_msec_t                    deadline, enough, timeout;
    ngx_http_qqfail_job_t       **jobp;
    ngx_http_qqfail_srv_conf_t  **qscfp;
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
    enough = ngx_current_msec + ngx_min(timeout, NGX_HTTP_QQFAIL_START_PASS);

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

        if (ngx_http_qqfail_channels_poll(deadline, enough) != NGX_OK) {
            break;
        }

        todo = 0;

        for (n = 0; n < ngx_http_qqfail_jobs->nelts; n++) {
            if (jobp[n]->running || jobp[n]->queued) {
                todo++;
            }
        }

        if (todo && (ngx_msec_int_t) (ngx_current_msec - enough) >= 0
            && ngx_http_qqfail_sync_served(qmcf))
        {
            break;
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
            for (k = 0; k < NGX_HTTP_QQFAIL_MAX_NAMES; k++) {
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


/* may nginx start serving: has every upstream a server with addresses? */

static ngx_uint_t
ngx_http_qqfail_sync_served(ngx_http_qqfail_main_conf_t *qmcf)
{
    ngx_uint_t                    i, j;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_srv_conf_t  **qscfp;

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

        for (k = 0; k < ch->nsocks; k++) {
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
