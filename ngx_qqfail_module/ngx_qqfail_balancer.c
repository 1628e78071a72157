
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_balancer.h"
#include "ngx_qqfail_text.h"


/*
 * Each worker keeps its own copy of the peers of an upstream, so that a
 * request reads no shared memory but the failure counters.  The copy is
 * kept in step with the zone at the cost of what changed, never of the
 * whole upstream:
 *
 * - every configured server has a group: the peers of its addresses,
 *   and the generation of its record (server_sh->gen) they were copied
 *   from;
 * - the zone keeps, per upstream, a ring of the records changed last
 *   (ngx_qqfail_zone_changed()), numbered by upstream_sh->gen; a
 *   worker reads the entries since the number it saw last and copies the
 *   addresses of those servers only, one server at a time under the zone
 *   lock; a worker that fell behind the ring, or has no copy yet, goes
 *   through its groups and copies those whose generation differs, still
 *   one server per lock;
 * - a peer is a flat struct, found by its index in peers->peer; an
 *   address that stays keeps its peer (and its round robin weights), a
 *   removed one is taken out of its group, and its struct and index are
 *   reused once no request holds it;
 * - a request holds every peer it tried (counted in refs: their names
 *   stay valid for $upstream_addr), and remembers the version of the
 *   copy it started with: it never uses a peer added after it started,
 *   nor one removed since; its "tried" bitmap is indexed by the peers'
 *   indices, which never change while the peer lives.
 */


#define NGX_QQFAIL_NO_GEN       ((ngx_uint_t) -1)


typedef struct ngx_qqfail_peer_s   ngx_qqfail_peer_t;
typedef struct ngx_qqfail_group_s  ngx_qqfail_group_t;

struct ngx_qqfail_peer_s {
    struct sockaddr                 *sockaddr;
    socklen_t                        socklen;
    ngx_str_t                        name;       /* "ip:port" */
    ngx_str_t                       *host;       /* the qqfail name */
    ngx_uint_t                       source;
    ngx_qqfail_slot_sh_t            *slot;
    uint32_t                         id;
    ngx_int_t                        current_weight;
    ngx_int_t                        effective_weight;
    ngx_int_t                        weight;
    ngx_uint_t                       max_fails;
    ngx_uint_t                       max_conns;
    time_t                           fail_timeout;
    ngx_uint_t                       index;      /* in peers->peer */
    ngx_uint_t                       since;      /* peers->version */
    ngx_uint_t                       refs;       /* requests using it */
    ngx_qqfail_peer_t               *next;       /* in its group, free */
    unsigned                         live:1;     /* in a group */
    unsigned                         down:1;
    unsigned                         backup:1;
#if (NGX_SSL)
    ngx_ssl_session_t               *ssl_session;
#endif
    /* what sockaddr and name point to */
    ngx_qqfail_sockaddr_t            addr;
    u_char                           text[NGX_QQFAIL_ADDR_STRLEN];
};


struct ngx_qqfail_group_s {
    ngx_qqfail_server_t             *server;
    ngx_qqfail_group_t              *same;       /* a server with its record */
    ngx_qqfail_peer_t               *peers;
    ngx_uint_t                       gen;        /* of server->sh, copied */
};


typedef struct {
    ngx_qqfail_peer_t               *peer;
    ngx_uint_t                       range;      /* weights before it */
} ngx_qqfail_range_t;


typedef struct {
    uint32_t                         hash;
    ngx_uint_t                       server;     /* its group */
} ngx_qqfail_point_t;


typedef struct {
    ngx_uint_t                       number;
    ngx_qqfail_point_t               point[1];
} ngx_qqfail_points_t;


struct ngx_qqfail_peers_s {
    ngx_pool_t                      *pool;
    ngx_slab_pool_t                 *shpool;
    ngx_uint_t                       seq;        /* upstream_sh->gen seen */
    ngx_uint_t                       version;    /* changes applied */
    ngx_uint_t                       nelts;      /* indices used */
    ngx_uint_t                       nalloc;
    ngx_qqfail_peer_t              **peer;       /* by index */
    ngx_qqfail_peer_t               *free;
    ngx_uint_t                       live;       /* peers in groups */
    ngx_qqfail_peer_t               *single;     /* the only one */
    ngx_uint_t                       ngroups;
    ngx_qqfail_group_t              *groups;
    ngx_uint_t                       mask;
    ngx_qqfail_group_t             **index;      /* by record */
    /* hash, ip_hash, random: the primary peers, made for a version */
    ngx_qqfail_range_t              *ranges;
    ngx_uint_t                       nranges;
    ngx_uint_t                       nalloc_ranges;
    ngx_uint_t                       ranges_version;
    ngx_uint_t                       total_weight;
    unsigned                         synced:1;
};


struct ngx_qqfail_peer_data_s {
    ngx_qqfail_peers_t              *peers;
    ngx_qqfail_peer_t               *current;
    ngx_qqfail_peer_t               *single;
    ngx_str_t                       *upstream;
    ngx_uint_t                       version;
    ngx_uint_t                       ntried;     /* words */
    uintptr_t                       *tried;
    uintptr_t                        data;
    /* the balancing method's state, as nginx's */
    ngx_uint_t                       method;
    ngx_str_t                        key;
    ngx_qqfail_points_t             *points;
    ngx_uint_t                       hash;
    ngx_uint_t                       rehash;
    ngx_uint_t                       tries;
    u_char                          *addr;
    ngx_uint_t                       addrlen;
    unsigned                         counted:1;  /* in the slot's conns */
};


#define ngx_qqfail_conns(peer)                                           \
    ngx_qqfail_slot_conns((peer)->slot, (peer)->id)


typedef struct {
    ngx_qqfail_slot_sh_t            *slot;
    uint32_t                         id;
    socklen_t                        socklen;
    uint32_t                         srv;
    ngx_qqfail_sockaddr_t            sockaddr;
} ngx_qqfail_snap_t;


static ngx_qqfail_peers_t *ngx_qqfail_peers_create(
    ngx_qqfail_srv_conf_t *qscf, ngx_log_t *log);
static void ngx_qqfail_peers_free(void *data);
static ngx_qqfail_group_t *ngx_qqfail_group_find(
    ngx_qqfail_peers_t *peers, ngx_qqfail_server_sh_t *ssh);
static void ngx_qqfail_peers_sync(ngx_qqfail_srv_conf_t *qscf,
    ngx_qqfail_peers_t *peers, ngx_log_t *log);
static ngx_int_t ngx_qqfail_group_sync(ngx_qqfail_peers_t *peers,
    ngx_qqfail_group_t *group, ngx_log_t *log);
static ngx_qqfail_peer_t *ngx_qqfail_peer_add(
    ngx_qqfail_peers_t *peers, ngx_log_t *log);
static void ngx_qqfail_peer_remove(ngx_qqfail_peers_t *peers,
    ngx_qqfail_peer_t *peer);
static void ngx_qqfail_peer_unref(ngx_qqfail_peers_t *peers,
    ngx_qqfail_peer_t *peer);
static void ngx_qqfail_peers_cleanup(void *data);
static ngx_inline ngx_uint_t ngx_qqfail_usable(
    ngx_qqfail_peer_data_t *pd, ngx_qqfail_peer_t *peer,
    time_t now);
static ngx_qqfail_peer_t *ngx_qqfail_get_best(
    ngx_qqfail_peer_data_t *pd, ngx_uint_t backup, time_t now);
static ngx_qqfail_peer_t *ngx_qqfail_get_method(
    ngx_qqfail_peer_data_t *pd, time_t now);
static ngx_int_t ngx_qqfail_ranges(ngx_qqfail_peers_t *peers);
static ngx_int_t ngx_qqfail_range_cmp(const void *one,
    const void *two);
static ngx_qqfail_peer_t *ngx_qqfail_range_find(
    ngx_qqfail_peers_t *peers, ngx_uint_t w);
static ngx_qqfail_peer_t *ngx_qqfail_get_ranged(
    ngx_qqfail_peer_data_t *pd, time_t now);
static ngx_uint_t ngx_qqfail_next_point(
    ngx_qqfail_peer_data_t *pd);
static ngx_qqfail_peer_t *ngx_qqfail_get_random_two(
    ngx_qqfail_peer_data_t *pd, time_t now);
static ngx_qqfail_peer_t *ngx_qqfail_get_least_conn(
    ngx_qqfail_peer_data_t *pd, time_t now);
static ngx_qqfail_peer_t *ngx_qqfail_get_chash(
    ngx_qqfail_peer_data_t *pd, time_t now);
static int ngx_libc_cdecl ngx_qqfail_point_cmp(const void *one,
    const void *two);
static ngx_uint_t ngx_qqfail_find_point(
    ngx_qqfail_points_t *points, uint32_t hash);



/*
 * The ring of "hash KEY consistent", compatible with nginx's (and with
 * Cache::Memcached::Fast): a server's points are crc32(HOST \0 PORT
 * PREV_HASH), for its first name and port.
 */

static ngx_int_t
ngx_qqfail_chash_points(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf)
{
    u_char                    c, *host, *port;
    size_t                    size, port_len, host_len;
    uint32_t                  hash, base_hash;
    ngx_uint_t                i, j, n, npoints;
    ngx_qqfail_name_t        *name;
    ngx_qqfail_server_t      *server;
    ngx_qqfail_points_t      *points;

    union {
        uint32_t              value;
        u_char                byte[4];
    } prev_hash;

    server = qscf->servers->elts;
    n = 0;

    for (i = 0; i < qscf->servers->nelts; i++) {
        n += server[i].weight * 160;
    }

    size = sizeof(ngx_qqfail_points_t)
           + sizeof(ngx_qqfail_point_t) * (n - 1);

    points = ngx_palloc(cf->pool, size);
    if (points == NULL) {
        return NGX_ERROR;
    }

    points->number = 0;

    for (i = 0; i < qscf->servers->nelts; i++) {
        name = server[i].names.elts;

        /*
         * HOST and PORT as nginx splits a "server" line's text: the first
         * name as written, its port the digits after its last ':', if any
         */

        host = name->text.data;
        host_len = name->text.len;
        port = NULL;
        port_len = 0;

        for (j = 0; j < name->text.len; j++) {
            c = name->text.data[name->text.len - j - 1];

            if (c == ':') {
                host_len = name->text.len - j - 1;
                port = name->text.data + host_len + 1;
                port_len = j;
                break;
            }

            if (c < '0' || c > '9') {
                break;
            }
        }

        ngx_crc32_init(base_hash);
        ngx_crc32_update(&base_hash, host, host_len);
        ngx_crc32_update(&base_hash, (u_char *) "", 1);
        ngx_crc32_update(&base_hash, port, port_len);

        prev_hash.value = 0;
        npoints = server[i].weight * 160;

        for (j = 0; j < npoints; j++) {
            hash = base_hash;

            ngx_crc32_update(&hash, prev_hash.byte, 4);
            ngx_crc32_final(hash);

            points->point[points->number].hash = hash;
            points->point[points->number].server = i;
            points->number++;

#if (NGX_HAVE_LITTLE_ENDIAN)
            prev_hash.value = hash;
#else
            prev_hash.byte[0] = (u_char) (hash & 0xff);
            prev_hash.byte[1] = (u_char) ((hash >> 8) & 0xff);
            prev_hash.byte[2] = (u_char) ((hash >> 16) & 0xff);
            prev_hash.byte[3] = (u_char) ((hash >> 24) & 0xff);
#endif
        }
    }

    ngx_qsort(points->point, points->number, sizeof(ngx_qqfail_point_t),
              ngx_qqfail_point_cmp);

    for (i = 0, j = 1; j < points->number; j++) {
        if (points->point[i].hash != points->point[j].hash) {
            points->point[++i] = points->point[j];
        }
    }

    points->number = i + 1;

    qscf->points = points;

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_qqfail_point_cmp(const void *one, const void *two)
{
    const ngx_qqfail_point_t  *a = one;
    const ngx_qqfail_point_t  *b = two;

    if (a->hash < b->hash) {
        return -1;
    }

    return a->hash > b->hash;
}


/* the first point at or after hash */

static ngx_uint_t
ngx_qqfail_find_point(ngx_qqfail_points_t *points, uint32_t hash)
{
    ngx_uint_t  i, j, k;

    i = 0;
    j = points->number;

    while (i < j) {
        k = (i + j) / 2;

        if (hash > points->point[k].hash) {
            i = k + 1;

        } else if (hash < points->point[k].hash) {
            j = k;

        } else {
            return k;
        }
    }

    return i;
}



/*
 * The front end's init_upstream, at the end of the configuration: the
 * upstream{} against "server" and "zone", the upstream-level defaults,
 * "backup" against the method, and the ring of a consistent hash.
 */

ngx_int_t
ngx_qqfail_balancer_init(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf)
{
    ngx_uint_t              i;
    ngx_qqfail_server_t    *server;
    ngx_qqfail_upstream_t   u;

    qscf->front->read(qscf->upstream, &u);

    if (u.servers->nelts != 1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "qqfail: \"server\" cannot be combined with "
                      "\"qqfail_server\" in upstream \"%V\" in %s:%ui",
                      &qscf->name, qscf->first.file, qscf->first.line);
        return NGX_ERROR;
    }

    if (u.zone) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "qqfail: \"zone\" cannot be combined with "
                      "\"qqfail_server\" in upstream \"%V\" in %s:%ui",
                      &qscf->name, qscf->first.file, qscf->first.line);
        return NGX_ERROR;
    }

    ngx_conf_init_msec_value(qscf->refresh, 30000);
    ngx_conf_init_msec_value(qscf->timeout, 2000);
    ngx_conf_init_value(qscf->max_stale, 86400);
    ngx_conf_init_uint_value(qscf->quorum, 1);
    ngx_conf_init_value(qscf->ipv6, 1);
    ngx_conf_init_value(qscf->dnssec, 0);

    /* "backup" before hash, ip_hash or random, which refuse it after */

    if (!u.backup) {
        server = qscf->servers->elts;

        for (i = 0; i < qscf->servers->nelts; i++) {
            if (server[i].backup) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "qqfail: balancing method \"%V\" does not "
                              "support parameter \"backup\" of "
                              "\"qqfail_server\" in upstream \"%V\" "
                              "in %s:%ui", &qscf->method_name, &qscf->name,
                              qscf->method_where.file,
                              qscf->method_where.line);
                return NGX_ERROR;
            }
        }
    }

    if (qscf->method == NGX_QQFAIL_METHOD_CHASH) {
        if (ngx_qqfail_chash_points(cf, qscf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    qscf->initialized = 1;

    return NGX_OK;
}


/*
 * A request's (or a session's) state, from the pool it lives in: the
 * worker's copy brought in step with the zone, the peers it may try, and
 * the method's state.  The front end then gives the hash key or the
 * client's address the method needs.
 */

ngx_qqfail_peer_data_t *
ngx_qqfail_balancer_create(ngx_qqfail_srv_conf_t *qscf, ngx_pool_t *pool)
{
    ngx_uint_t               n;
    ngx_pool_cleanup_t      *cln;
    ngx_qqfail_peers_t      *peers;
    ngx_qqfail_peer_data_t  *pd;

    peers = qscf->peers;

    if (peers == NULL) {
        peers = ngx_qqfail_peers_create(qscf, ngx_cycle->log);
        if (peers == NULL) {
            return NULL;
        }

        qscf->peers = peers;
    }

    ngx_qqfail_peers_sync(qscf, peers, ngx_cycle->log);

    pd = ngx_palloc(pool, sizeof(ngx_qqfail_peer_data_t));
    if (pd == NULL) {
        return NULL;
    }

    pd->peers = peers;
    pd->current = NULL;
    pd->single = peers->single;
    pd->upstream = &qscf->name;
    pd->version = peers->version;
    pd->method = qscf->method;
    pd->points = qscf->points;
    pd->key.len = 0;
    pd->hash = 0;
    pd->rehash = 0;
    pd->tries = 0;
    pd->addrlen = 0;
    pd->counted = 0;

    if (peers->nelts <= 8 * sizeof(uintptr_t)) {
        pd->tried = &pd->data;
        pd->data = 0;
        pd->ntried = 1;

    } else {
        n = (peers->nelts + (8 * sizeof(uintptr_t) - 1))
            / (8 * sizeof(uintptr_t));

        pd->tried = ngx_pcalloc(pool, n * sizeof(uintptr_t));
        if (pd->tried == NULL) {
            return NULL;
        }

        pd->ntried = n;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_qqfail_peers_cleanup;
    cln->data = pd;

    return pd;
}


/* "hash KEY [consistent]": the key, evaluated by the front end */

void
ngx_qqfail_balancer_key(ngx_qqfail_peer_data_t *pd, ngx_str_t *key)
{
    pd->key = *key;

    if (pd->method == NGX_QQFAIL_METHOD_CHASH && pd->points) {
        pd->hash = ngx_qqfail_find_point(pd->points,
                                         ngx_crc32_long(key->data, key->len));
    }
}


/* "ip_hash": the client's address, as nginx's */

void
ngx_qqfail_balancer_client(ngx_qqfail_peer_data_t *pd, struct sockaddr *sa)
{
    static u_char  pseudo[3];

    switch (sa->sa_family) {

    case AF_INET:
        pd->addr = (u_char *) &((struct sockaddr_in *) sa)->sin_addr.s_addr;
        pd->addrlen = 3;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        pd->addr = (u_char *) &((struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        pd->addrlen = 16;
        break;
#endif

    default:
        pd->addr = pseudo;
        pd->addrlen = 3;
    }

    pd->hash = 89;
}


/* as many tries as addresses, at least one */

ngx_uint_t
ngx_qqfail_balancer_tries(ngx_qqfail_peer_data_t *pd)
{
    return pd->peers->live ? pd->peers->live : 1;
}


/* $qqfail_name (source 0) and $qqfail_source: NULL before a peer */

ngx_str_t *
ngx_qqfail_balancer_peer(ngx_qqfail_peer_data_t *pd, ngx_uint_t source)
{
    if (pd == NULL || pd->current == NULL) {
        return NULL;
    }

    return source ? &ngx_qqfail_sources[pd->current->source]
                  : pd->current->host;
}


/*
 * This worker's copy of an upstream: a group per configured server, and
 * an index from a server's record to its groups (two servers lines alike
 * share a record).  It lives as long as the worker.
 */

static ngx_qqfail_peers_t *
ngx_qqfail_peers_create(ngx_qqfail_srv_conf_t *qscf, ngx_log_t *log)
{
    uint32_t                  h;
    ngx_uint_t                i, n, size;
    ngx_pool_t               *pool;
    ngx_pool_cleanup_t       *cln;
    ngx_qqfail_group_t  *group, **slot;
    ngx_qqfail_peers_t      *peers;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_server_sh_t  *ssh;

    n = qscf->servers->nelts;
    server = qscf->servers->elts;

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NULL;
    }

    peers = ngx_pcalloc(pool, sizeof(ngx_qqfail_peers_t));
    if (peers == NULL) {
        goto failed;
    }

    peers->pool = pool;
    peers->shpool = qscf->main->shpool;
    peers->ranges_version = NGX_QQFAIL_NO_GEN;
    peers->ngroups = n;

    peers->groups = ngx_pcalloc(pool, (n ? n : 1)
                                      * sizeof(ngx_qqfail_group_t));
    if (peers->groups == NULL) {
        goto failed;
    }

    for (size = 16; size < 2 * n; size <<= 1) { /* void */ }

    peers->mask = size - 1;

    peers->index = ngx_pcalloc(pool, size * sizeof(ngx_qqfail_group_t *));
    if (peers->index == NULL) {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        group = &peers->groups[i];
        group->server = &server[i];
        group->gen = NGX_QQFAIL_NO_GEN;

        ssh = server[i].sh;
        h = ngx_crc32_short((u_char *) &ssh, sizeof(ssh));

        for ( ;; ) {
            slot = &peers->index[h++ & peers->mask];

            if (*slot == NULL) {
                *slot = group;
                break;
            }

            if ((*slot)->server->sh == ssh) {
                group->same = (*slot)->same;
                (*slot)->same = group;
                break;
            }
        }
    }

    /* freed with the worker's cycle, when no request is left */

    cln = ngx_pool_cleanup_add(ngx_cycle->pool, 0);
    if (cln == NULL) {
        goto failed;
    }

    cln->handler = ngx_qqfail_peers_free;
    cln->data = peers;

    return peers;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


static void
ngx_qqfail_peers_free(void *data)
{
    ngx_qqfail_peers_t  *peers = data;

#if (NGX_SSL)
    ngx_uint_t                i;

    for (i = 0; i < peers->nelts; i++) {
        if (peers->peer[i]->ssl_session) {
            ngx_ssl_free_session(peers->peer[i]->ssl_session);
        }
    }
#endif

    if (peers->peer) {
        ngx_free(peers->peer);
    }

    if (peers->ranges) {
        ngx_free(peers->ranges);
    }

    ngx_destroy_pool(peers->pool);
}


static ngx_qqfail_group_t *
ngx_qqfail_group_find(ngx_qqfail_peers_t *peers,
    ngx_qqfail_server_sh_t *ssh)
{
    uint32_t             h;
    ngx_qqfail_group_t  *group;

    h = ngx_crc32_short((u_char *) &ssh, sizeof(ssh));

    for ( ;; ) {
        group = peers->index[h++ & peers->mask];

        if (group == NULL || group->server->sh == ssh) {
            return group;
        }
    }
}


/*
 * Bring the copy in step with the zone: the servers changed since the
 * last call, as the upstream's ring of changes lists them, or, for the
 * first copy and for a worker that fell behind the ring, every server
 * whose record's generation differs from its group's.
 */

static void
ngx_qqfail_peers_sync(ngx_qqfail_srv_conf_t *qscf,
    ngx_qqfail_peers_t *peers, ngx_log_t *log)
{
    ngx_uint_t                 i, n, seq;
    ngx_slab_pool_t           *shpool;
    ngx_qqfail_group_t        *group;
    ngx_qqfail_upstream_sh_t  *ush;
    ngx_qqfail_server_sh_t    *changed[NGX_QQFAIL_CHANGES];

    ush = qscf->sh;
    shpool = peers->shpool;

    /* read without the lock: a change not seen now is seen next time */

    seq = *(volatile ngx_uint_t *) &ush->gen;

    if (peers->synced && seq == peers->seq) {
        return;
    }

    n = NGX_QQFAIL_CHANGES + 1;

    ngx_shmtx_lock(&shpool->mutex);

    seq = ush->gen;

    if (peers->synced && seq - peers->seq <= NGX_QQFAIL_CHANGES) {
        n = seq - peers->seq;

        for (i = 0; i < n; i++) {
            changed[i] = ush->changed[(peers->seq + i)
                                      % NGX_QQFAIL_CHANGES];
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    peers->seq = seq;

    if (n <= NGX_QQFAIL_CHANGES) {

        /* an entry may name a record of another generation: not found */

        for (i = 0; i < n; i++) {
            for (group = ngx_qqfail_group_find(peers, changed[i]);
                 group;
                 group = group->same)
            {
                if (ngx_qqfail_group_sync(peers, group, log) != NGX_OK) {
                    peers->synced = 0;
                }
            }
        }

    } else {
        peers->synced = 1;

        /*
         * the generations are read without the lock: every change up to
         * seq was made before the lock above was released
         */

        for (i = 0; i < peers->ngroups; i++) {
            group = &peers->groups[i];

            if (group->gen
                == *(volatile uint32_t *) &group->server->sh->gen)
            {
                continue;
            }

            if (ngx_qqfail_group_sync(peers, group, log) != NGX_OK) {
                peers->synced = 0;
            }
        }
    }

    /* a single address in the upstream: never considered unavailable */

    if (peers->live != 1) {
        peers->single = NULL;

    } else if (peers->single == NULL || !peers->single->live) {
        for (i = 0; i < peers->nelts; i++) {
            if (peers->peer[i]->live) {
                peers->single = peers->peer[i];
                break;
            }
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_EVENT, log, 0,
                   "qqfail peers of \"%V\": %ui live, %ui indices, "
                   "version %ui", &qscf->name, peers->live,
                   peers->nelts, peers->version);
}


/*
 * Copy the addresses of one server, under the zone lock, and make its
 * group match them: a peer whose slot and slot id are still there stays,
 * the others go, and a peer is added for each new address.
 */

static ngx_int_t
ngx_qqfail_group_sync(ngx_qqfail_peers_t *peers,
    ngx_qqfail_group_t *group, ngx_log_t *log)
{
    ngx_str_t               *host;
    ngx_uint_t               j, n, gen, active, source;
    ngx_slab_pool_t         *shpool;
    ngx_qqfail_peer_t  *peer, *next, **last;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_slots_t       it;
    ngx_qqfail_slot_sh_t    *slot;
    ngx_qqfail_server_sh_t  *ssh;
    u_char                   kept[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_snap_t        snap[NGX_QQFAIL_MAX_ADDRS];

    server = group->server;
    ssh = server->sh;
    shpool = peers->shpool;

    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    gen = ssh->gen;

    if (gen == group->gen) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_OK;
    }

    active = ssh->active;
    source = ssh->source;

    /* a set holds at most NGX_QQFAIL_MAX_ADDRS addresses */

    for (slot = ngx_qqfail_slot_first(ssh, &it);
         slot && n < NGX_QQFAIL_MAX_ADDRS;
         slot = ngx_qqfail_slot_next(&it))
    {
        if (!slot->in_use) {
            continue;
        }

        snap[n].slot = slot;
        snap[n].id = slot->id;
        snap[n].socklen = slot->socklen;
        snap[n].sockaddr = slot->sockaddr;
        snap[n].srv = slot->srv;
        n++;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (active >= server->names.nelts) {
        active = 0;
    }

    host = &((ngx_qqfail_name_t *) server->names.elts)[active].host;

    peers->version++;

    ngx_memzero(kept, sizeof(kept));

    last = &group->peers;

    for (peer = group->peers; peer; peer = next) {
        next = peer->next;

        for (j = 0; j < n; j++) {
            if (!kept[j] && snap[j].slot == peer->slot
                && snap[j].id == peer->id)
            {
                break;
            }
        }

        if (j < n) {
            kept[j] = 1;
            peer->host = host;
            peer->source = source;
            last = &peer->next;
            continue;
        }

        *last = next;
        ngx_qqfail_peer_remove(peers, peer);
    }

    for (j = 0; j < n; j++) {

        if (kept[j]) {
            continue;
        }

        peer = ngx_qqfail_peer_add(peers, log);
        if (peer == NULL) {
            /* copied again next time */
            group->gen = NGX_QQFAIL_NO_GEN;
            return NGX_ERROR;
        }

        peer->addr = snap[j].sockaddr;
        peer->sockaddr = &peer->addr.sockaddr;
        peer->socklen = snap[j].socklen;
        peer->name.data = peer->text;
        peer->name.len = ngx_sock_ntop(peer->sockaddr, peer->socklen,
                                       peer->text,
                                       NGX_QQFAIL_ADDR_STRLEN, 1);
        peer->host = host;
        peer->source = source;
        peer->slot = snap[j].slot;
        peer->id = snap[j].id;
        /* an address from an SRV record has the record's weight */

        peer->weight = snap[j].srv ? ngx_qqfail_srv_weight(snap[j].srv)
                                   : server->weight;
        peer->effective_weight = peer->weight;
        peer->max_fails = server->max_fails;
        peer->max_conns = server->max_conns;
        peer->fail_timeout = server->fail_timeout;
        peer->down = server->down;
        peer->backup = server->backup
                       || (snap[j].srv & NGX_QQFAIL_SRV_BACKUP);
        peer->live = 1;

        *last = peer;
        last = &peer->next;

        peers->live++;
    }

    group->gen = gen;

    return NGX_OK;
}


/* a peer struct and index: a free one, or a new one at the end */

static ngx_qqfail_peer_t *
ngx_qqfail_peer_add(ngx_qqfail_peers_t *peers, ngx_log_t *log)
{
    ngx_uint_t               index, n;
    ngx_qqfail_peer_t  *peer, **p;

    peer = peers->free;

    if (peer) {
        peers->free = peer->next;
        index = peer->index;

#if (NGX_SSL)
        /* made with another address */

        if (peer->ssl_session) {
            ngx_ssl_free_session(peer->ssl_session);
        }
#endif

    } else {
        if (peers->nelts == peers->nalloc) {
            n = peers->nalloc ? 2 * peers->nalloc : 16;

            p = ngx_alloc(n * sizeof(ngx_qqfail_peer_t *), log);
            if (p == NULL) {
                return NULL;
            }

            if (peers->peer) {
                ngx_memcpy(p, peers->peer,
                           peers->nelts * sizeof(ngx_qqfail_peer_t *));
                ngx_free(peers->peer);
            }

            peers->peer = p;
            peers->nalloc = n;
        }

        peer = ngx_palloc(peers->pool, sizeof(ngx_qqfail_peer_t));
        if (peer == NULL) {
            return NULL;
        }

        index = peers->nelts++;
        peers->peer[index] = peer;
    }

    ngx_memzero(peer, sizeof(ngx_qqfail_peer_t));

    peer->index = index;
    peer->since = peers->version;

    return peer;
}


/* out of its group; reused once no request holds it */

static void
ngx_qqfail_peer_remove(ngx_qqfail_peers_t *peers,
    ngx_qqfail_peer_t *peer)
{
    peer->live = 0;
    peers->live--;

    if (peer->refs == 0) {
        peer->next = peers->free;
        peers->free = peer;
    }
}


static void
ngx_qqfail_peer_unref(ngx_qqfail_peers_t *peers,
    ngx_qqfail_peer_t *peer)
{
    if (--peer->refs == 0 && !peer->live) {
        peer->next = peers->free;
        peers->free = peer;
    }
}


/* the request ends: the peers it tried are released */

static void
ngx_qqfail_peers_cleanup(void *data)
{
    ngx_qqfail_peer_data_t  *pd = data;

    uintptr_t   m;
    ngx_uint_t  i, n;

    for (i = 0; i < pd->ntried; i++) {
        m = pd->tried[i];

        for (n = 0; m; n++, m >>= 1) {
            if (m & 1) {
                ngx_qqfail_peer_unref(pd->peers,
                              pd->peers->peer[i * 8 * sizeof(uintptr_t) + n]);
            }
        }
    }
}


ngx_int_t
ngx_qqfail_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_qqfail_peer_data_t  *pd = data;

    time_t                   now;
    uintptr_t                m;
    ngx_uint_t               n, i;
    ngx_qqfail_peer_t     *peer;
    ngx_qqfail_slot_sh_t  *slot;

    pc->cached = 0;
    pc->connection = NULL;

    now = ngx_time();

    /*
     * a peer another worker filled up to max_conns since it was chosen
     * is chosen again, among the others
     */

    for (i = 0; /* void */ ; i++) {

        if (pd->single) {
            peer = pd->single;
            n = peer->index;
            m = (uintptr_t) 1 << n % (8 * sizeof(uintptr_t));

            /* gone, or its struct reused for another address */

            if (!peer->live || peer->since > pd->version || peer->down
                || (pd->tried[n / (8 * sizeof(uintptr_t))] & m))
            {
                goto failed;
            }

        } else {
            peer = ngx_qqfail_get_method(pd, now);

            if (peer == NULL) {
                peer = ngx_qqfail_get_best(pd, 0, now);
            }

            if (peer == NULL) {
                peer = ngx_qqfail_get_best(pd, 1, now);
            }

            if (peer == NULL) {
                goto failed;
            }
        }

        if (ngx_qqfail_slot_conns_take(peer->slot, peer->id,
                                       peer->max_conns))
        {
            break;
        }

        if (pd->single || i == pd->peers->live) {
            goto failed;
        }
    }

    pd->counted = 1;

    slot = peer->slot;

    if (slot->id == peer->id && now - slot->checked > peer->fail_timeout) {
        slot->checked = now;
    }

    n = peer->index;
    m = (uintptr_t) 1 << n % (8 * sizeof(uintptr_t));
    pd->tried[n / (8 * sizeof(uintptr_t))] |= m;

    /* held until the request ends */
    peer->refs++;

    pd->current = peer;

    pc->sockaddr = peer->sockaddr;
    pc->socklen = peer->socklen;
    pc->name = &peer->name;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, pc->log, 0,
                   "qqfail peer \"%V\" of \"%V\"", &peer->name, peer->host);

    return NGX_OK;

failed:

    pc->name = pd->upstream;

    return NGX_BUSY;
}


/*
 * Whether a request may try a peer: there when it started, not tried
 * yet, not down, not failed (max_fails, fail_timeout), not full
 * (max_conns).  The shared values are read without the lock: a stale
 * one only delays one decision.
 */

static ngx_inline ngx_uint_t
ngx_qqfail_usable(ngx_qqfail_peer_data_t *pd,
    ngx_qqfail_peer_t *peer, time_t now)
{
    uintptr_t              m;
    ngx_uint_t             n;
    ngx_qqfail_slot_sh_t  *slot;

    /* an index added since the request started is past its bitmap */

    if (!peer->live || peer->since > pd->version || peer->down) {
        return 0;
    }

    n = peer->index;
    m = (uintptr_t) 1 << n % (8 * sizeof(uintptr_t));

    if (pd->tried[n / (8 * sizeof(uintptr_t))] & m) {
        return 0;
    }

    slot = peer->slot;

    if (peer->max_fails
        && slot->id == peer->id
        && slot->fails >= peer->max_fails
        && now - slot->checked <= peer->fail_timeout)
    {
        return 0;
    }

    if (peer->max_conns
        && ngx_qqfail_slot_conns(slot, peer->id) >= peer->max_conns)
    {
        return 0;
    }

    return 1;
}


/* one step of smooth weighted round robin, as nginx's */

static ngx_inline void
ngx_qqfail_smooth(ngx_qqfail_peer_t *peer, ngx_int_t *total,
    ngx_qqfail_peer_t **best)
{
    peer->current_weight += peer->effective_weight;
    *total += peer->effective_weight;

    if (peer->effective_weight < peer->weight) {
        peer->effective_weight++;
    }

    if (*best == NULL || peer->current_weight > (*best)->current_weight) {
        *best = peer;
    }
}


/*
 * Smooth weighted round robin, as nginx's own, over the primary peers or
 * the backup ones that were there when the request started.
 */

static ngx_qqfail_peer_t *
ngx_qqfail_get_best(ngx_qqfail_peer_data_t *pd, ngx_uint_t backup,
    time_t now)
{
    ngx_int_t                total;
    ngx_uint_t               i;
    ngx_qqfail_peer_t  *peer, *best, **peerp;

    best = NULL;
    total = 0;

    peerp = pd->peers->peer;

    for (i = 0; i < pd->peers->nelts; i++) {
        peer = peerp[i];

        if (peer->backup != backup || !ngx_qqfail_usable(pd, peer, now)) {
            continue;
        }

        ngx_qqfail_smooth(peer, &total, &best);
    }

    if (best == NULL) {
        return NULL;
    }

    best->current_weight -= total;

    return best;
}


/*
 * The upstream's balancing method, as nginx's own: NULL sends the
 * request to round robin, as nginx does after 20 tries, and for an
 * empty hash key.
 */

static ngx_qqfail_peer_t *
ngx_qqfail_get_method(ngx_qqfail_peer_data_t *pd, time_t now)
{
    ngx_qqfail_peers_t  *peers;

    peers = pd->peers;

    switch (pd->method) {

    case NGX_QQFAIL_METHOD_LEAST_CONN:
        return ngx_qqfail_get_least_conn(pd, now);

    case NGX_QQFAIL_METHOD_CHASH:
        return ngx_qqfail_get_chash(pd, now);

    case NGX_QQFAIL_METHOD_RR:
        return NULL;
    }

    if (pd->tries > 20) {
        return NULL;
    }

    if (peers->ranges_version != peers->version) {
        if (ngx_qqfail_ranges(peers) != NGX_OK) {
            return NULL;
        }
    }

    if (peers->total_weight == 0) {
        return NULL;
    }

    if (pd->method == NGX_QQFAIL_METHOD_RANDOM_TWO) {
        return ngx_qqfail_get_random_two(pd, now);
    }

    return ngx_qqfail_get_ranged(pd, now);
}


/*
 * hash, ip_hash and random pick from the primary peers in the order of
 * the configuration (a server's addresses sorted, so that every worker
 * has the same order), each taking a range as wide as its weight
 */

static ngx_int_t
ngx_qqfail_ranges(ngx_qqfail_peers_t *peers)
{
    ngx_uint_t                i, n, first;
    ngx_qqfail_peer_t   *peer;
    ngx_qqfail_range_t  *ranges;

    if (peers->nalloc_ranges < peers->live) {
        ranges = ngx_alloc(peers->live * sizeof(ngx_qqfail_range_t),
                           ngx_cycle->log);
        if (ranges == NULL) {
            return NGX_ERROR;
        }

        if (peers->ranges) {
            ngx_free(peers->ranges);
        }

        peers->ranges = ranges;
        peers->nalloc_ranges = peers->live;
    }

    n = 0;
    peers->total_weight = 0;

    for (i = 0; i < peers->ngroups; i++) {
        first = n;

        for (peer = peers->groups[i].peers; peer; peer = peer->next) {
            if (peer->backup || n == peers->nalloc_ranges) {
                continue;
            }

            peers->ranges[n++].peer = peer;
        }

        ngx_sort(&peers->ranges[first], n - first,
                 sizeof(ngx_qqfail_range_t), ngx_qqfail_range_cmp);
    }

    for (i = 0; i < n; i++) {
        peers->ranges[i].range = peers->total_weight;
        peers->total_weight += peers->ranges[i].peer->weight;
    }

    peers->nranges = n;
    peers->ranges_version = peers->version;

    return NGX_OK;
}


static ngx_int_t
ngx_qqfail_range_cmp(const void *one, const void *two)
{
    const ngx_qqfail_range_t  *a = one;
    const ngx_qqfail_range_t  *b = two;

    if (a->peer->socklen != b->peer->socklen) {
        return (ngx_int_t) a->peer->socklen - (ngx_int_t) b->peer->socklen;
    }

    return ngx_memcmp(a->peer->sockaddr, b->peer->sockaddr,
                      a->peer->socklen);
}


/* the peer whose range holds w, w < total_weight */

static ngx_qqfail_peer_t *
ngx_qqfail_range_find(ngx_qqfail_peers_t *peers, ngx_uint_t w)
{
    ngx_uint_t  i, j, k;

    i = 0;
    j = peers->nranges;

    while (j - i > 1) {
        k = (i + j) / 2;

        if (w < peers->ranges[k].range) {
            j = k;

        } else {
            i = k;
        }
    }

    return peers->ranges[i].peer;
}


/*
 * "hash KEY", "ip_hash", "random": a point in the ranges, again while it
 * falls on a peer the request may not try, as nginx's
 */

static ngx_qqfail_peer_t *
ngx_qqfail_get_ranged(ngx_qqfail_peer_data_t *pd, time_t now)
{
    ngx_qqfail_peer_t  *peer;

    if (pd->method == NGX_QQFAIL_METHOD_HASH && pd->key.len == 0) {
        return NULL;
    }

    for ( ;; ) {
        peer = ngx_qqfail_range_find(pd->peers,
                                          ngx_qqfail_next_point(pd)
                                          % pd->peers->total_weight);

        if (ngx_qqfail_usable(pd, peer, now)) {
            return peer;
        }

        if (++pd->tries > 20) {
            return NULL;
        }
    }
}


static ngx_uint_t
ngx_qqfail_next_point(ngx_qqfail_peer_data_t *pd)
{
    size_t      size;
    uint32_t    hash;
    ngx_uint_t  i;
    u_char      buf[NGX_INT_T_LEN];

    switch (pd->method) {

    case NGX_QQFAIL_METHOD_HASH:

        /* Cache::Memcached's ((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV */

        ngx_crc32_init(hash);

        if (pd->rehash > 0) {
            size = ngx_sprintf(buf, "%ui", pd->rehash) - buf;
            ngx_crc32_update(&hash, buf, size);
        }

        ngx_crc32_update(&hash, pd->key.data, pd->key.len);
        ngx_crc32_final(hash);

        pd->hash += (hash >> 16) & 0x7fff;
        pd->rehash++;

        return pd->hash;

    case NGX_QQFAIL_METHOD_IP_HASH:

        /* the first three bytes of an IPv4 address, all of IPv6 */

        for (i = 0; i < pd->addrlen; i++) {
            pd->hash = (pd->hash * 113 + pd->addr[i]) % 6271;
        }

        return pd->hash;

    default: /* NGX_QQFAIL_METHOD_RANDOM */
        return ngx_random();
    }
}


/* "random two [least_conn]": the one of two with fewer connections */

static ngx_qqfail_peer_t *
ngx_qqfail_get_random_two(ngx_qqfail_peer_data_t *pd, time_t now)
{
    ngx_qqfail_peer_t  *peer, *prev;

    prev = NULL;

    for ( ;; ) {
        peer = ngx_qqfail_range_find(pd->peers,
                                    ngx_random() % pd->peers->total_weight);

        if (peer != prev && ngx_qqfail_usable(pd, peer, now)) {

            if (prev) {
                if (ngx_qqfail_conns(peer) * prev->weight
                    > ngx_qqfail_conns(prev) * peer->weight)
                {
                    peer = prev;
                }

                return peer;
            }

            prev = peer;
        }

        if (++pd->tries > 20) {
            return NULL;
        }
    }
}


/*
 * "least_conn": the fewest connections for its weight, counted by every
 * worker; among equals, round robin; the backup peers when no primary
 * one is usable
 */

static ngx_qqfail_peer_t *
ngx_qqfail_get_least_conn(ngx_qqfail_peer_data_t *pd, time_t now)
{
    ngx_int_t                total;
    ngx_uint_t               i, p, many, backup, conns, best_conns, weight;
    ngx_qqfail_peer_t  *peer, *best, **peerp;

    peerp = pd->peers->peer;

    for (backup = 0; backup < 2; backup++) {

        best = NULL;
        best_conns = 0;
        many = 0;
        p = 0;

        for (i = 0; i < pd->peers->nelts; i++) {
            peer = peerp[i];

            if (peer->backup != backup
                || !ngx_qqfail_usable(pd, peer, now))
            {
                continue;
            }

            conns = ngx_qqfail_conns(peer);

            if (best == NULL
                || conns * best->weight < best_conns * peer->weight)
            {
                best = peer;
                best_conns = conns;
                many = 0;
                p = i;

            } else if (conns * best->weight == best_conns * peer->weight) {
                many = 1;
            }
        }

        if (best == NULL) {
            continue;
        }

        if (!many) {
            return best;
        }

        /* round robin among those as loaded as the first found */

        total = 0;
        weight = best->weight;

        for (i = p; i < pd->peers->nelts; i++) {
            peer = peerp[i];

            if (peer->backup != backup
                || !ngx_qqfail_usable(pd, peer, now)
                || ngx_qqfail_conns(peer) * weight
                   != best_conns * peer->weight)
            {
                continue;
            }

            ngx_qqfail_smooth(peer, &total, &best);
        }

        best->current_weight -= total;

        return best;
    }

    return NULL;
}


/*
 * "hash KEY consistent": the ring has a point per 160 of a server's
 * weight, as nginx's, for each qqfail_server line by its first name and
 * port (nginx's: by the "server" line's text), made once per
 * configuration (ngx_qqfail_chash_points()); a server's addresses
 * share its points, and are picked among by round robin, as nginx does
 * for the addresses of one "server" line
 */

static ngx_qqfail_peer_t *
ngx_qqfail_get_chash(ngx_qqfail_peer_data_t *pd, time_t now)
{
    ngx_int_t                  total;
    ngx_qqfail_peer_t    *peer, *best;
    ngx_qqfail_group_t   *group;
    ngx_qqfail_points_t  *points;

    points = pd->points;

    if (pd->key.len == 0 || points == NULL || points->number == 0) {
        return NULL;
    }

    while (pd->tries <= 20) {

        group = &pd->peers->groups[points->point[pd->hash % points->number]
                                   .server];
        best = NULL;
        total = 0;

        for (peer = group->peers; peer; peer = peer->next) {

            /* an SRV record's later priority: not used by a hash, as nginx */

            if (peer->backup || !ngx_qqfail_usable(pd, peer, now)) {
                continue;
            }

            ngx_qqfail_smooth(peer, &total, &best);
        }

        if (best) {
            best->current_weight -= total;
            return best;
        }

        pd->hash++;
        pd->tries++;
    }

    return NULL;
}


void
ngx_qqfail_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_qqfail_peer_data_t  *pd = data;

    time_t                 now;
    ngx_uint_t             fails;
    ngx_slab_pool_t       *shpool;
    ngx_qqfail_peer_t     *peer;
    ngx_qqfail_slot_sh_t  *slot;

    peer = pd->current;

    if (peer && pd->counted) {
        pd->counted = 0;
        ngx_qqfail_slot_conns_release(peer->slot, peer->id);
    }

    if (peer == NULL || pd->single) {
        pc->tries = 0;
        return;
    }

    slot = peer->slot;
    shpool = pd->peers->shpool;

    if (state & NGX_PEER_FAILED) {
        now = ngx_time();
        fails = 0;

        fails = ngx_qqfail_zone_peer_failed(shpool, slot, peer->id, now);

        if (peer->max_fails) {
            peer->effective_weight -= peer->weight / peer->max_fails;

            if (fails >= peer->max_fails) {
                ngx_log_error(NGX_LOG_WARN, pc->log, 0,
                              "upstream server temporarily disabled");
            }
        }

        if (peer->effective_weight < 0) {
            peer->effective_weight = 0;
        }

    } else if (slot->fails && slot->id == peer->id) {

        /* the trial request after fail_timeout succeeded */

        ngx_qqfail_zone_peer_ok(shpool, slot, peer->id);
    }

    if (pc->tries) {
        pc->tries--;
    }
}


#if (NGX_SSL || NGX_COMPAT)

/*
 * A TLS session per address, as nginx's round robin keeps one per peer
 * without a zone.  After a failover the address is reached by another
 * name: a session is offered only with the server name it was made with
 * (RFC 8446, 4.6.1), since the certificate it carries was chosen, and
 * verified, for that name.
 */

ngx_int_t
ngx_qqfail_set_session(ngx_peer_connection_t *pc, void *data)
{
#if (NGX_SSL)
    ngx_qqfail_peer_data_t  *pd = data;

    ngx_int_t                     rc;
    ngx_ssl_session_t            *ssl_session;
#if (OPENSSL_VERSION_NUMBER >= 0x10101000L)
    const char                   *name, *made;
#endif

    ssl_session = pd->current->ssl_session;

    if (ssl_session == NULL) {
        return NGX_OK;
    }

#if (OPENSSL_VERSION_NUMBER >= 0x10101000L)

    /* a server that did not acknowledge the name did not choose by it */

    made = SSL_SESSION_get0_hostname(ssl_session);

    if (made) {
        name = SSL_get_servername(pc->connection->ssl->connection,
                                  TLSEXT_NAMETYPE_host_name);

        if (name == NULL || ngx_strcmp(name, made) != 0) {
            ngx_log_debug2(NGX_LOG_DEBUG_EVENT, pc->log, 0,
                           "qqfail session of \"%s\" not offered to \"%s\"",
                           made, name ? name : "");
            return NGX_OK;
        }
    }

#endif

    rc = ngx_ssl_set_session(pc->connection, ssl_session);

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, pc->log, 0,
                   "qqfail set session: %p", ssl_session);

    return rc;
#else
    return NGX_OK;
#endif
}


void
ngx_qqfail_save_session(ngx_peer_connection_t *pc, void *data)
{
#if (NGX_SSL)
    ngx_qqfail_peer_data_t  *pd = data;

    ngx_ssl_session_t            *old, *ssl_session;
    ngx_qqfail_peer_t       *peer;

    ssl_session = ngx_ssl_get_session(pc->connection);

    if (ssl_session == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, pc->log, 0,
                   "qqfail save session: %p", ssl_session);

    /* the peer is held by the request: its struct is not reused */

    peer = pd->current;

    old = peer->ssl_session;
    peer->ssl_session = ssl_session;

    if (old) {
        ngx_ssl_free_session(old);
    }
#endif
}

#endif


