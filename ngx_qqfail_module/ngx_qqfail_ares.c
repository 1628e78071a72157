
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <poll.h>

#if (NGX_LINUX)
#include <linux/sock_diag.h>
#endif

/* the one file that sees c-ares */
#include <ares.h>
#include <arpa/nameser.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_resolver.h"


/* qqfail_dnssec: the OPT record of a query (RFC 6891) */
#define NGX_QQFAIL_EDNS_SIZE           1232    /* the UDP size announced */
#define NGX_QQFAIL_EDNS_DO             0x8000  /* the DO bit, in its flags */
#define NGX_QQFAIL_EDNS_RRLEN          11      /* an OPT record without data */


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
} ngx_qqfail_sock_t;


struct ngx_qqfail_channel_s {
    ngx_qqfail_resolver_t           *rs;
    ares_channel                     channel;
    ngx_qqfail_provider_t           *provider;
    ngx_msec_t                       timeout;    /* qqfail_timeout */
    ngx_event_t                      timer;
    ngx_uint_t                       nsocks;
    ngx_qqfail_sock_t                socks[NGX_QQFAIL_MAX_CONNS];
};


#if (ARES_VERSION >= 0x012000)

/*
 * A query c-ares may still send again after its qqfail_timeout (see
 * channels_create): the timer ends it for the module then, as c-ares 1.18
 * does; what c-ares reports later is dropped
 */

typedef struct {
    ngx_qqfail_query_t              *query;      /* NULL once ended */
    ngx_event_t                      timer;
} ngx_qqfail_sent_t;

#endif


static ngx_int_t ngx_qqfail_ares_servers(ares_channel channel,
    ngx_pool_t *pool, ngx_str_t *servers);
static ngx_uint_t ngx_qqfail_channel_sets(
    ngx_qqfail_main_conf_t *qmcf);
#if (ARES_VERSION < 0x012000)
static void ngx_qqfail_ares_version(ngx_log_t *log);
#endif
static ngx_int_t ngx_qqfail_channel_init(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch);
static int ngx_qqfail_channel_options(ngx_qqfail_channel_t *ch,
    struct ares_options *opts);
static ngx_int_t ngx_qqfail_channel_servers(
    ngx_qqfail_resolver_t *rs, ngx_qqfail_channel_t *ch);
static int ngx_qqfail_sock_create(ares_socket_t fd, int type,
    void *data);
static void ngx_qqfail_sock_state(void *data, ares_socket_t fd,
    int readable, int writable);
static void ngx_qqfail_sock_buffer(ngx_qqfail_resolver_t *rs,
    ares_socket_t fd);
static void ngx_qqfail_channel_drops(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch, ngx_uint_t i);
static ngx_qqfail_sock_t *ngx_qqfail_channel_sock(
    ngx_qqfail_channel_t *ch, ares_socket_t fd);
static ngx_uint_t ngx_qqfail_channel_outcome(int status);
#if (ARES_VERSION >= 0x011c00)
static void ngx_qqfail_channel_dnssec(ngx_qqfail_channel_t *ch,
    u_char *host, int type, ares_callback_dnsrec callback, void *arg);
static void ngx_qqfail_channel_answer(void *arg, ares_status_t status,
    size_t timeouts, const ares_dns_record_t *dnsrec);
#else
static void ngx_qqfail_channel_dnssec(ngx_qqfail_channel_t *ch,
    u_char *host, int type, ares_callback callback, void *arg);
static void ngx_qqfail_channel_callback(void *arg, int status,
    int timeouts, unsigned char *abuf, int alen);
#endif
#if (ARES_VERSION >= 0x012000)
static void ngx_qqfail_channel_sent(void *arg, ares_status_t status,
    size_t timeouts, const ares_dns_record_t *dnsrec);
static void ngx_qqfail_channel_expire(ngx_event_t *ev);
#endif
static void ngx_qqfail_channel_read(ngx_event_t *ev);
static void ngx_qqfail_channel_write(ngx_event_t *ev);
static void ngx_qqfail_channel_timeout(ngx_event_t *ev);
static ngx_int_t ngx_qqfail_channels_timeout(ngx_qqfail_resolver_t *rs,
    ngx_msec_t deadline, ngx_msec_t wake, int *ms, ngx_uint_t *n);
static void ngx_qqfail_channels_process(ngx_qqfail_resolver_t *rs,
    struct pollfd *pfd, ngx_qqfail_channel_t **owner, ngx_uint_t nfds);


/* the record types of NGX_QQFAIL_QTYPE_A, _AAAA, _SRV, _SOA and _NS */

static int  ngx_qqfail_ares_qtypes[] = {
    ns_t_a, ns_t_aaaa, ns_t_srv, ns_t_soa, ns_t_ns
};

#if (ARES_VERSION >= 0x011c00)
static ares_dns_rec_type_t  ngx_qqfail_ares_types[] = {
    ARES_REC_TYPE_A, ARES_REC_TYPE_AAAA, ARES_REC_TYPE_SRV,
    ARES_REC_TYPE_SOA, ARES_REC_TYPE_NS
};
#endif


/* c-ares itself, in the master and in each worker */

ngx_int_t
ngx_qqfail_ares_init(ngx_log_t *log)
{
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "qqfail: ares_library_init() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The servers of the system provider, as c-ares itself reads them from
 * the system's configuration (/etc/resolv.conf): "ip:port" or
 * "[ip6]:port", comma separated, allocated from "pool"; NGX_DECLINED when
 * c-ares cannot tell.  At configuration time: c-ares reads files here, it
 * sends nothing.
 */

ngx_int_t
ngx_qqfail_ares_system(ngx_pool_t *pool, ngx_log_t *log,
    ngx_str_t *servers)
{
    ngx_int_t            rc;
    ares_channel         channel;
    struct ares_options  opts;

    if (ngx_qqfail_ares_init(log) != NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_memzero(&opts, sizeof(struct ares_options));

    rc = NGX_DECLINED;

    if (ares_init_options(&channel, &opts, 0) == ARES_SUCCESS) {
        rc = ngx_qqfail_ares_servers(channel, pool, servers);
        ares_destroy(channel);
    }

    ares_library_cleanup();

    return rc;
}


#if (ARES_VERSION >= 0x011800)

/* c-ares 1.24 and later list the servers themselves */

static ngx_int_t
ngx_qqfail_ares_servers(ares_channel channel, ngx_pool_t *pool,
    ngx_str_t *servers)
{
    char  *csv;

    csv = ares_get_servers_csv(channel);
    if (csv == NULL) {
        return NGX_DECLINED;
    }

    servers->len = ngx_strlen(csv);
    servers->data = ngx_pnalloc(pool, servers->len + 1);

    if (servers->data != NULL) {
        ngx_memcpy(servers->data, csv, servers->len);
    }

    ares_free_string(csv);

    return servers->data ? NGX_OK : NGX_ERROR;
}

#else

/* before (ares_get_servers_ports() is deprecated from 1.24 on) */

static ngx_int_t
ngx_qqfail_ares_servers(ares_channel channel, ngx_pool_t *pool,
    ngx_str_t *servers)
{
    u_char                      *p;
    socklen_t                    len;
    ngx_uint_t                   n;
    ngx_sockaddr_t               sa;
    struct ares_addr_port_node  *list, *node;

    if (ares_get_servers_ports(channel, &list) != ARES_SUCCESS) {
        return NGX_DECLINED;
    }

    n = 0;

    for (node = list; node; node = node->next) {
        n++;
    }

    servers->len = 0;
    servers->data = ngx_pnalloc(pool, n * (NGX_SOCKADDR_STRLEN + 1) + 1);

    if (servers->data == NULL) {
        ares_free_data(list);
        return NGX_ERROR;
    }

    p = servers->data;

    for (node = list; node; node = node->next) {
        ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

        if (node->family == AF_INET) {
            sa.sockaddr_in.sin_family = AF_INET;
            ngx_memcpy(&sa.sockaddr_in.sin_addr, &node->addr.addr4,
                       sizeof(struct in_addr));
            len = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
        } else if (node->family == AF_INET6) {
            sa.sockaddr_in6.sin6_family = AF_INET6;
            ngx_memcpy(&sa.sockaddr_in6.sin6_addr, &node->addr.addr6,
                       sizeof(struct in6_addr));
            len = sizeof(struct sockaddr_in6);
#endif

        } else {
            continue;
        }

        /* 0: the channel's port, 53 */

        ngx_inet_set_port(&sa.sockaddr,
                          (in_port_t) (node->udp_port ? node->udp_port
                                                      : 53));

        if (p != servers->data) {
            *p++ = ',';
        }

        p += ngx_sock_ntop(&sa.sockaddr, len, p, NGX_SOCKADDR_STRLEN, 1);
    }

    servers->len = p - servers->data;

    ares_free_data(list);

    return NGX_OK;
}

#endif


/*
 * c-ares channels: a set of channels, one per provider, for each distinct
 * qqfail_timeout: c-ares splits the timeout between a provider's servers,
 * and a slow provider must not fail the names of an upstream that waits
 * longer; each lookup also has a timer for its own timeout
 */

ngx_int_t
ngx_qqfail_channels_create(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t               i, j, nsets;
    ngx_qqfail_channel_t    *ch;
    ngx_qqfail_provider_t   *pr;
    ngx_qqfail_srv_conf_t  **qscfp;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = rs->qmcf;

    nsets = ngx_qqfail_channel_sets(qmcf);

#if (ARES_VERSION < 0x012000)
    if (rs->sync) {
        ngx_qqfail_ares_version(rs->log);
    }
#endif

    rs->nproviders = qmcf->providers.nelts;
    rs->nchannels = nsets * rs->nproviders;
    rs->channels = ngx_calloc(rs->nchannels
                                          * sizeof(ngx_qqfail_channel_t),
                                          rs->log);
    if (rs->channels == NULL) {
        return NGX_ERROR;
    }

    pr = qmcf->providers.elts;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < rs->nchannels; i++) {
        ch = &rs->channels[i];
        ch->rs = rs;
        ch->provider = &pr[i % rs->nproviders];
        ch->timeout = 2000;

        for (j = 0; j < qmcf->upstreams.nelts; j++) {
            if (qscfp[j]->channels == i / rs->nproviders) {
                ch->timeout = qscfp[j]->timeout;
                break;
            }
        }

        if (ngx_qqfail_channel_init(rs, ch) == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the upstreams' sets of channels, one per distinct qqfail_timeout */

static ngx_uint_t
ngx_qqfail_channel_sets(ngx_qqfail_main_conf_t *qmcf)
{
    ngx_uint_t               i, j, nsets;
    ngx_qqfail_srv_conf_t  **qscfp;

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

    return nsets ? nsets : 1;
}


#if (ARES_VERSION < 0x012000)

/*
 * libcares keeps its soname: a newer one than this build knows caches
 * answers (1.31) and shortens timeouts (1.32), see channel_options
 */

static void
ngx_qqfail_ares_version(ngx_log_t *log)
{
    int  version;

    (void) ares_version(&version);

    if (version >= 0x011f00) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "qqfail: built with c-ares " ARES_VERSION_STR
                      ", runs with %s, whose query cache and adaptive "
                      "timeouts this build cannot turn off: rebuild the "
                      "module against it", ares_version(NULL));
    }
}

#endif


/*
 * One channel: NGX_DECLINED if c-ares refused it (its provider's queries
 * then fail at once), NGX_ERROR without memory
 */

static ngx_int_t
ngx_qqfail_channel_init(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch)
{
    int                  rc, optmask;
    struct ares_options  opts;

    optmask = ngx_qqfail_channel_options(ch, &opts);

    rc = ares_init_options(&ch->channel, &opts, optmask);

    if (rc != ARES_SUCCESS) {
        ngx_log_error(NGX_LOG_ALERT, rs->log, 0,
                      "qqfail: ares_init_options() failed for provider "
                      "\"%V\": %s", &ch->provider->name, ares_strerror(rc));
        ch->channel = NULL;
        return NGX_DECLINED;
    }

    if (!ch->provider->system) {
        rc = ngx_qqfail_channel_servers(rs, ch);

        if (rc != NGX_OK) {
            ares_destroy(ch->channel);
            ch->channel = NULL;
            return rc;
        }
    }

    ares_set_socket_callback(ch->channel, ngx_qqfail_sock_create, ch);

    if (!rs->sync) {
        ch->timer.handler = ngx_qqfail_channel_timeout;
        ch->timer.data = ch;
        ch->timer.log = rs->log;
        ch->timer.cancelable = 1;
    }

    return NGX_OK;
}


/*
 * A channel's options, for ares_init_options(): the mask it returns.
 *
 * The same behaviour with c-ares 1.18 and later ones (the library
 * keeps its soname, so a module built on one runs on another):
 *
 * ARES_FLAG_EDNS and ARES_FLAG_DNS0x20 stay off: the flags set here
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
 * share (each try doubles, less a random half); a timer ends it at
 * qqfail_timeout (channel_query): a provider that does not answer is
 * charged at qqfail_timeout, as with 1.18; the answer to the attempt
 * in flight ends it, one to an earlier attempt is lost if c-ares
 * closed that socket to send again from another port (see
 * docs/how-it-works.md, c-ares versions);
 *
 * ARES_OPT_EVENT_THREAD and ares_reinit(), the system configuration
 * watch that needs it, are not used: no threads in nginx; a
 * provider's servers change on reload only;
 *
 * ARES_OPT_UDP_MAX_QUERIES stays 0 (a socket for any number of
 * queries), as in 1.18, and ARES_OPT_SERVER_FAILOVER (1.29) keeps
 * its defaults: see docs/how-it-works.md
 */

static int
ngx_qqfail_channel_options(ngx_qqfail_channel_t *ch,
    struct ares_options *opts)
{
    int         optmask;
    ngx_uint_t  n;

    n = ch->provider->addrs.nelts ? ch->provider->addrs.nelts : 1;

    ngx_memzero(opts, sizeof(struct ares_options));

    /*
     * NOCHECKRESP: SERVFAIL and REFUSED reach us instead of being
     * hidden behind a retry; one try per address (more with c-ares
     * 1.32, below), the timeout split between the addresses of the
     * provider
     */

    opts->flags = ARES_FLAG_NOCHECKRESP|ARES_FLAG_NOSEARCH
                  |ARES_FLAG_NOALIASES;
    opts->timeout = (int) ngx_max(ch->timeout / n, 10);
    opts->tries = 1;
    opts->ndomains = 0;
    opts->domains = NULL;
    opts->lookups = (char *) "b";

    /*
     * one driver, the event loop's and the start-up pass's alike: the
     * socket state callback (ares_getsock() is deprecated since 1.34)
     */

    opts->sock_state_cb = ngx_qqfail_sock_state;
    opts->sock_state_cb_data = ch;

    optmask = ARES_OPT_FLAGS|ARES_OPT_TIMEOUTMS|ARES_OPT_TRIES
              |ARES_OPT_DOMAINS|ARES_OPT_LOOKUPS|ARES_OPT_SOCK_STATE_CB;

#ifdef ARES_OPT_QUERY_CACHE
    opts->qcache_max_ttl = 0;
    optmask |= ARES_OPT_QUERY_CACHE;
#endif

#ifdef ARES_OPT_MAXTIMEOUTMS
    opts->maxtimeout = opts->timeout;
    optmask |= ARES_OPT_MAXTIMEOUTMS;
#endif

#if (ARES_VERSION >= 0x012000)
    while (opts->tries < 8 && 250 << (opts->tries - 1) < opts->timeout) {
        opts->tries++;
    }
#endif

    return optmask;
}


/* a configured provider's servers (the system provider has c-ares's own) */

static ngx_int_t
ngx_qqfail_channel_servers(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch)
{
    int    rc;
    char  *servers;

    servers = ngx_alloc(ch->provider->servers.len + 1, rs->log);
    if (servers == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(servers, ch->provider->servers.data,
               ch->provider->servers.len);
    servers[ch->provider->servers.len] = '\0';

    rc = ares_set_servers_ports_csv(ch->channel, servers);

    ngx_free(servers);

    if (rc != ARES_SUCCESS) {
        ngx_log_error(NGX_LOG_ALERT, rs->log, 0,
                      "qqfail: ares_set_servers_ports_csv() failed "
                      "for provider \"%V\": %s", &ch->provider->name,
                      ares_strerror(rc));
        return NGX_DECLINED;
    }

    return NGX_OK;
}


void
ngx_qqfail_channels_destroy(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t             i;
    ngx_qqfail_channel_t  *ch;

    if (rs->channels == NULL) {
        return;
    }

    for (i = 0; i < rs->nchannels; i++) {
        ch = &rs->channels[i];

        if (ch->channel) {
            /* pending queries end with ARES_EDESTRUCTION */
            ares_destroy(ch->channel);
            ch->channel = NULL;
        }

        if (ch->timer.timer_set) {
            ngx_del_timer(&ch->timer);
        }
    }

    ngx_free(rs->channels);
    rs->channels = NULL;
    rs->nchannels = 0;
    rs->nproviders = 0;
}


/* channel "i", or NULL if c-ares could not set it up */

ngx_qqfail_channel_t *
ngx_qqfail_channel(ngx_qqfail_resolver_t *rs, ngx_uint_t i)
{
    return rs->channels[i].channel ? &rs->channels[i] : NULL;
}


static ngx_qqfail_sock_t *
ngx_qqfail_channel_sock(ngx_qqfail_channel_t *ch, ares_socket_t fd)
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
ngx_qqfail_sock_create(ares_socket_t fd, int type, void *data)
{
    ngx_qqfail_channel_t *ch = data;

    ngx_connection_t            *c;
    ngx_qqfail_sock_t           *s;
    ngx_qqfail_resolver_t       *rs;

    rs = ch->rs;

    if (ch->nsocks == NGX_QQFAIL_MAX_CONNS) {
        return -1;
    }

    c = NULL;

    if (!rs->sync) {
        c = ngx_get_connection(fd, rs->log);
        if (c == NULL) {
            return -1;
        }

        if (type == SOCK_DGRAM) {
            ngx_qqfail_sock_buffer(rs, fd);
        }

        c->data = ch;
        c->log = rs->log;
        c->read->log = rs->log;
        c->write->log = rs->log;
        c->read->handler = ngx_qqfail_channel_read;
        c->write->handler = ngx_qqfail_channel_write;

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
 * NGX_QQFAIL_INFLIGHT): the kernel drops what does not fit, and a
 * dropped answer is a false timeout.  The kernel caps the size at
 * net.core.rmem_max; that is said once.
 */

static void
ngx_qqfail_sock_buffer(ngx_qqfail_resolver_t *rs, ares_socket_t fd)
{
    int         want, got;
    socklen_t   len;
    static int  said;

    want = NGX_QQFAIL_RCVBUF;

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
        ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                      "qqfail: DNS sockets get a receive buffer of %d "
                      "bytes, not %d: raise the sysctl net.core.rmem_max "
                      "for bursts of answers", got, want);
    }
}


/* answers the kernel dropped on a channel's sockets, counted per provider */

static void
ngx_qqfail_channel_drops(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch, ngx_uint_t i)
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

    if (delta == 0 || !ngx_qqfail_lead_check(rs)) {
        return;
    }

    ngx_qqfail_zone_counter(rs->qmcf, ch->provider->sh,
                            NGX_QQFAIL_COUNT_DROPS, delta);

    ngx_log_error(NGX_LOG_WARN, rs->log, 0,
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
ngx_qqfail_sock_state(void *data, ares_socket_t fd, int readable,
    int writable)
{
    ngx_qqfail_channel_t *ch = data;

    ngx_uint_t               i;
    ngx_connection_t        *c;
    ngx_qqfail_sock_t       *s;

    s = ngx_qqfail_channel_sock(ch, fd);

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

        ngx_qqfail_channel_drops(ch->rs, ch, i);

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    ch->socks[i] = ch->socks[--ch->nsocks];
    ngx_memzero(&ch->socks[ch->nsocks], sizeof(ngx_qqfail_sock_t));
}


static void
ngx_qqfail_channel_read(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_qqfail_channel_t  *ch;

    c = ev->data;
    ch = c->data;

    /* c may be freed inside: do not touch it afterwards */

    ares_process_fd(ch->channel, c->fd, ARES_SOCKET_BAD);

    ngx_qqfail_channel_timer(ch->rs, ch);
}


static void
ngx_qqfail_channel_write(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_qqfail_channel_t  *ch;

    c = ev->data;
    ch = c->data;

    ares_process_fd(ch->channel, ARES_SOCKET_BAD, c->fd);

    ngx_qqfail_channel_timer(ch->rs, ch);
}


static void
ngx_qqfail_channel_timeout(ngx_event_t *ev)
{
    ngx_qqfail_channel_t  *ch = ev->data;

    ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);

    ngx_qqfail_channel_timer(ch->rs, ch);
}


void
ngx_qqfail_channel_timer(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch)
{
    struct timeval  tv, *tvp;

    if (rs->sync || ch->channel == NULL) {
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
 * One query of a lookup, or of the independence check; whatever c-ares
 * says of it reaches ngx_qqfail_query_done() (rs->query_done), or
 * ngx_qqfail_check_done() (rs->check_done), as a Q_* outcome
 */

void
ngx_qqfail_channel_query(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch, u_char *host, ngx_uint_t type,
    ngx_qqfail_query_t *q)
{
#if (ARES_VERSION >= 0x012000)
    ngx_qqfail_sent_t       *sent;

    if (!rs->sync) {
        sent = ngx_alloc(sizeof(ngx_qqfail_sent_t), rs->log);
        if (sent == NULL) {
            ngx_qqfail_query_end(q, NGX_QQFAIL_Q_ERROR, NULL, 0);
            return;
        }

        ngx_memzero(&sent->timer, sizeof(ngx_event_t));

        sent->query = q;
        sent->timer.handler = ngx_qqfail_channel_expire;
        sent->timer.data = sent;
        sent->timer.log = rs->log;
        sent->timer.cancelable = 1;

        ngx_add_timer(&sent->timer, ch->timeout);

        /* the callback also runs on an error (ARES_ENOMEM) */

        if (q->dnssec) {
            ngx_qqfail_channel_dnssec(ch, host, ngx_qqfail_ares_qtypes[type],
                                      ngx_qqfail_channel_sent, sent);
            return;
        }

        (void) ares_query_dnsrec(ch->channel, (const char *) host,
                                 ARES_CLASS_IN,
                                 ngx_qqfail_ares_types[type],
                                 ngx_qqfail_channel_sent, sent, NULL);
        return;
    }

#endif

#if (ARES_VERSION >= 0x011c00)

    if (q->dnssec) {
        ngx_qqfail_channel_dnssec(ch, host, ngx_qqfail_ares_qtypes[type],
                                  ngx_qqfail_channel_answer, q);
        return;
    }

    (void) ares_query_dnsrec(ch->channel, (const char *) host, ARES_CLASS_IN,
                             ngx_qqfail_ares_types[type],
                             ngx_qqfail_channel_answer, q, NULL);

#else

    if (q->dnssec) {
        ngx_qqfail_channel_dnssec(ch, host, ngx_qqfail_ares_qtypes[type],
                                  ngx_qqfail_channel_callback, q);
        return;
    }

    ares_query(ch->channel, (char *) host, ns_c_in,
               ngx_qqfail_ares_qtypes[type], ngx_qqfail_channel_callback, q);

#endif
}


/*
 * qqfail_dnssec: a query with the DO bit (RFC 3225) in an OPT record (RFC
 * 6891), so that the provider validates the answer and says so in its AD
 * bit.  c-ares has no option for the bit: the query is made here as
 * c-ares makes its own (recursion desired, the channel's flags stay as
 * they are) with the OPT record c-ares would add for ARES_FLAG_EDNS, the
 * bit set, and sent as it is.  One channel serves both kinds of queries:
 * what differs is in the message alone.
 */

#if (ARES_VERSION >= 0x011c00)

/* c-ares 1.28 and later: the message as a record; c-ares gives it its id */

static void
ngx_qqfail_channel_dnssec(ngx_qqfail_channel_t *ch, u_char *host,
    int type, ares_callback_dnsrec callback, void *arg)
{
    ares_status_t       rc;
    ares_dns_rr_t      *rr;
    ares_dns_record_t  *rec;

    rc = ares_dns_record_create(&rec, 0, ARES_FLAG_RD, ARES_OPCODE_QUERY,
                                ARES_RCODE_NOERROR);
    if (rc != ARES_SUCCESS) {
        callback(arg, rc, 0, NULL);
        return;
    }

    rc = ares_dns_record_query_add(rec, (const char *) host,
                                   (ares_dns_rec_type_t) type,
                                   ARES_CLASS_IN);

    if (rc == ARES_SUCCESS) {
        rc = ares_dns_record_rr_add(&rr, rec, ARES_SECTION_ADDITIONAL, "",
                                    ARES_REC_TYPE_OPT, ARES_CLASS_IN, 0);
    }

    if (rc == ARES_SUCCESS) {
        rc = ares_dns_rr_set_u16(rr, ARES_RR_OPT_UDP_SIZE,
                                 NGX_QQFAIL_EDNS_SIZE);
    }

    if (rc == ARES_SUCCESS) {
        rc = ares_dns_rr_set_u8(rr, ARES_RR_OPT_VERSION, 0);
    }

    if (rc == ARES_SUCCESS) {
        rc = ares_dns_rr_set_u16(rr, ARES_RR_OPT_FLAGS, NGX_QQFAIL_EDNS_DO);
    }

    if (rc == ARES_SUCCESS) {
        /* the callback also runs on an error */
        (void) ares_send_dnsrec(ch->channel, rec, callback, arg, NULL);

    } else {
        callback(arg, rc, 0, NULL);
    }

    ares_dns_record_destroy(rec);
}

#else

/*
 * c-ares 1.18: the message in the wire form, sent with its own id, random
 * as nginx's resolver makes it
 */

static void
ngx_qqfail_channel_dnssec(ngx_qqfail_channel_t *ch, u_char *host,
    int type, ares_callback callback, void *arg)
{
    int             rc, len;
    unsigned char  *buf;

    rc = ares_create_query((const char *) host, ns_c_in, type,
                           (unsigned short) (ngx_random() & 0xffff), 1,
                           &buf, &len, NGX_QQFAIL_EDNS_SIZE);
    if (rc != ARES_SUCCESS) {
        callback(arg, rc, 0, NULL, 0);
        return;
    }

    /*
     * the OPT record ends the message: root name, type, UDP size, then
     * the extended rcode, the version and the flags, whose first bit is
     * DO, and an empty data length (RFC 6891, section 6.1.3)
     */

    if (len > NGX_QQFAIL_EDNS_RRLEN + 12
        && buf[len - NGX_QQFAIL_EDNS_RRLEN] == 0
        && buf[len - NGX_QQFAIL_EDNS_RRLEN + 2] == ns_t_opt)
    {
        buf[len - 4] |= (u_char) (NGX_QQFAIL_EDNS_DO >> 8);
    }

    ares_send(ch->channel, buf, len, callback, arg);

    ares_free_string(buf);
}

#endif


/* what the rest of the resolver knows of a c-ares status */

static ngx_uint_t
ngx_qqfail_channel_outcome(int status)
{
    switch (status) {

    case ARES_SUCCESS:
        return NGX_QQFAIL_Q_OK;

    case ARES_ENODATA:
        return NGX_QQFAIL_Q_NODATA;

    case ARES_ENOTFOUND:
        return NGX_QQFAIL_Q_NXDOMAIN;

    case ARES_ESERVFAIL:
        return NGX_QQFAIL_Q_SERVFAIL;

    case ARES_EREFUSED:
        return NGX_QQFAIL_Q_REFUSED;

    case ARES_ETIMEOUT:
        return NGX_QQFAIL_Q_TIMEOUT;

    case ARES_ECONNREFUSED:
    case ARES_ENOTINITIALIZED:
        return NGX_QQFAIL_Q_UNREACHABLE;

    case ARES_EBADRESP:
        return NGX_QQFAIL_Q_BADANSWER;

    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return NGX_QQFAIL_Q_CANCELLED;

    default:
        return NGX_QQFAIL_Q_ERROR;
    }
}


#if (ARES_VERSION >= 0x011c00)

/*
 * c-ares 1.28 deprecates ares_query() for ares_query_dnsrec(), which hands
 * over the parsed message: it is written back to the wire for our strict
 * parser, as ares_query() itself does it there, so that both versions see
 * the same bytes and statuses
 */

static void
ngx_qqfail_channel_answer(void *arg, ares_status_t status,
    size_t timeouts, const ares_dns_record_t *dnsrec)
{
    size_t          alen;
    ares_status_t   rc;
    unsigned char  *abuf;

    abuf = NULL;
    alen = 0;

    if (dnsrec != NULL) {
        rc = ares_dns_write(dnsrec, &abuf, &alen);

        if (rc != ARES_SUCCESS) {
            status = rc;
            abuf = NULL;
            alen = 0;
        }
    }

    ngx_qqfail_query_end(arg, ngx_qqfail_channel_outcome((int) status),
                         abuf, alen);

    if (abuf) {
        ares_free_string(abuf);
    }
}

#else

static void
ngx_qqfail_channel_callback(void *arg, int status, int timeouts,
    unsigned char *abuf, int alen)
{
    ngx_qqfail_query_end(arg, ngx_qqfail_channel_outcome(status),
                         abuf, abuf ? (size_t) alen : 0);
}

#endif


#if (ARES_VERSION >= 0x012000)

/* a query with its own timer (the leader's): the timer may have ended it */

static void
ngx_qqfail_channel_sent(void *arg, ares_status_t status,
    size_t timeouts, const ares_dns_record_t *dnsrec)
{
    ngx_qqfail_sent_t  *sent = arg;

    ngx_qqfail_query_t  *q;

    q = sent->query;

    if (sent->timer.timer_set) {
        ngx_del_timer(&sent->timer);
    }

    ngx_free(sent);

    if (q == NULL) {
        /* ended by its timer */
        return;
    }

    ngx_qqfail_channel_answer(q, status, timeouts, dnsrec);
}


static void
ngx_qqfail_channel_expire(ngx_event_t *ev)
{
    ngx_qqfail_sent_t  *sent = ev->data;

    ngx_qqfail_query_t  *q;

    q = sent->query;
    sent->query = NULL;

    ngx_qqfail_query_end(q, NGX_QQFAIL_Q_TIMEOUT, NULL, 0);
}

#endif


/*
 * How long the pass may wait in poll(): until the deadline, the caller's
 * "wake", or the next c-ares timeout; NGX_DONE when no channel has a
 * query outstanding.  "n" counts the sockets.
 */

static ngx_int_t
ngx_qqfail_channels_timeout(ngx_qqfail_resolver_t *rs, ngx_msec_t deadline,
    ngx_msec_t wake, int *ms, ngx_uint_t *n)
{
    int                    t;
    ngx_uint_t             c, active;
    struct timeval         tv, *tvp;
    ngx_qqfail_channel_t  *ch;

    ngx_time_update();

    if ((ngx_msec_int_t) (deadline - ngx_current_msec) <= 0) {
        return NGX_DONE;
    }

    *ms = (int) (deadline - ngx_current_msec);

    /* the caller checks something at "wake" too */

    if ((ngx_msec_int_t) (wake - ngx_current_msec) > 0
        && (int) (wake - ngx_current_msec) < *ms)
    {
        *ms = (int) (wake - ngx_current_msec);
    }

    active = 0;
    *n = 0;

    for (c = 0; c < rs->nchannels; c++) {
        ch = &rs->channels[c];

        if (ch->channel == NULL) {
            continue;
        }

        *n += ch->nsocks;

        /* no timeout: nothing outstanding on this channel */

        tvp = ares_timeout(ch->channel, NULL, &tv);

        if (tvp == NULL) {
            continue;
        }

        active = 1;
        t = (int) (tvp->tv_sec * 1000 + tvp->tv_usec / 1000 + 1);

        if (t < *ms) {
            *ms = t;
        }
    }

    return active ? NGX_OK : NGX_DONE;
}


/*
 * One step of the start-up pass: wait for the sockets of every channel as
 * sock_state_cb described them, or for the first c-ares timeout, then let
 * c-ares read, write and expire.  NGX_DONE: no query is outstanding.
 */

ngx_int_t
ngx_qqfail_channels_poll(ngx_qqfail_resolver_t *rs,
    ngx_msec_t deadline, ngx_msec_t wake)
{
    int                    ms;
    ngx_int_t              rc;
    ngx_uint_t             c, k, n, nfds;
    struct pollfd         *pfd;
    ngx_qqfail_sock_t     *s;
    ngx_qqfail_channel_t  *ch, **owner;

    rc = ngx_qqfail_channels_timeout(rs, deadline, wake, &ms, &n);

    if (rc != NGX_OK) {
        return rc;
    }

    /* each descriptor with its channel */

    pfd = ngx_alloc((n ? n : 1) * (sizeof(struct pollfd) + sizeof(void *)),
                    rs->log);
    if (pfd == NULL) {
        return NGX_ERROR;
    }

    owner = (ngx_qqfail_channel_t **) &pfd[n ? n : 1];
    nfds = 0;

    for (c = 0; c < rs->nchannels; c++) {
        ch = &rs->channels[c];

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

    if (poll(pfd, nfds, ms) == -1 && ngx_errno != NGX_EINTR) {
        ngx_log_error(NGX_LOG_ALERT, rs->log, ngx_errno,
                      "qqfail: poll() failed");
        ngx_free(pfd);
        return NGX_ERROR;
    }

    ngx_qqfail_channels_process(rs, pfd, owner, nfds);

    ngx_free(pfd);

    return NGX_OK;
}


static void
ngx_qqfail_channels_process(ngx_qqfail_resolver_t *rs, struct pollfd *pfd,
    ngx_qqfail_channel_t **owner, ngx_uint_t nfds)
{
    ngx_uint_t             c, k;
    ngx_qqfail_channel_t  *ch;

    /* a socket an earlier answer closed is skipped */

    for (k = 0; k < nfds; k++) {
        ch = owner[k];

        if ((pfd[k].revents & (POLLIN|POLLERR|POLLHUP))
            && ngx_qqfail_channel_sock(ch, pfd[k].fd))
        {
            ares_process_fd(ch->channel, pfd[k].fd, ARES_SOCKET_BAD);
        }

        if ((pfd[k].revents & POLLOUT)
            && ngx_qqfail_channel_sock(ch, pfd[k].fd))
        {
            ares_process_fd(ch->channel, ARES_SOCKET_BAD, pfd[k].fd);
        }
    }

    /* the timeouts */

    for (c = 0; c < rs->nchannels; c++) {
        ch = &rs->channels[c];

        if (ch->channel) {
            ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        }
    }
}


void
ngx_qqfail_channels_drops(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t             i, k;
    ngx_qqfail_channel_t  *ch;

    for (i = 0; i < rs->nchannels; i++) {
        ch = &rs->channels[i];

        for (k = 0; k < ch->nsocks; k++) {
            ngx_qqfail_channel_drops(rs, ch, k);
        }
    }
}
