
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_http.h"


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


#define NGX_HTTP_QQFAIL_NO_GEN  ((ngx_uint_t) -1)


typedef struct ngx_http_qqfail_peer_s   ngx_http_qqfail_peer_t;
typedef struct ngx_http_qqfail_group_s  ngx_http_qqfail_group_t;

struct ngx_http_qqfail_peer_s {
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
    time_t                           fail_timeout;
    ngx_uint_t                       index;      /* in peers->peer */
    ngx_uint_t                       since;      /* peers->version */
    ngx_uint_t                       refs;       /* requests using it */
    ngx_http_qqfail_peer_t          *next;       /* in its group, free */
    unsigned                         live:1;     /* in a group */
    unsigned                         down:1;
    unsigned                         backup:1;
#if (NGX_HTTP_SSL)
    ngx_ssl_session_t               *ssl_session;
#endif
    /* what sockaddr and name point to */
    ngx_qqfail_sockaddr_t            addr;
    u_char                           text[NGX_QQFAIL_ADDR_STRLEN];
};


struct ngx_http_qqfail_group_s {
    ngx_qqfail_server_t             *server;
    ngx_http_qqfail_group_t         *same;       /* a server with its record */
    ngx_http_qqfail_peer_t          *peers;
    ngx_uint_t                       gen;        /* of server->sh, copied */
};


struct ngx_http_qqfail_peers_s {
    ngx_pool_t                      *pool;
    ngx_slab_pool_t                 *shpool;
    ngx_uint_t                       seq;        /* upstream_sh->gen seen */
    ngx_uint_t                       version;    /* changes applied */
    ngx_uint_t                       nelts;      /* indices used */
    ngx_uint_t                       nalloc;
    ngx_http_qqfail_peer_t         **peer;       /* by index */
    ngx_http_qqfail_peer_t          *free;
    ngx_uint_t                       live;       /* peers in groups */
    ngx_http_qqfail_peer_t          *single;     /* the only one */
    ngx_uint_t                       ngroups;
    ngx_http_qqfail_group_t         *groups;
    ngx_uint_t                       mask;
    ngx_http_qqfail_group_t        **index;      /* by record */
    unsigned                         synced:1;
};


typedef struct {
    ngx_http_qqfail_peers_t         *peers;
    ngx_http_qqfail_peer_t          *current;
    ngx_http_qqfail_peer_t          *single;
    ngx_str_t                       *upstream;
    ngx_uint_t                       version;
    ngx_uint_t                       ntried;     /* words */
    uintptr_t                       *tried;
    uintptr_t                        data;
} ngx_http_qqfail_peer_data_t;


typedef struct {
    ngx_qqfail_slot_sh_t            *slot;
    uint32_t                         id;
    socklen_t                        socklen;
    ngx_qqfail_sockaddr_t            sockaddr;
} ngx_http_qqfail_snap_t;


static ngx_http_qqfail_peers_t *ngx_http_qqfail_peers_create(
    ngx_qqfail_srv_conf_t *qscf, ngx_log_t *log);
static void ngx_http_qqfail_peers_free(void *data);
static ngx_http_qqfail_group_t *ngx_http_qqfail_group_find(
    ngx_http_qqfail_peers_t *peers, ngx_qqfail_server_sh_t *ssh);
static void ngx_http_qqfail_peers_sync(ngx_qqfail_srv_conf_t *qscf,
    ngx_http_qqfail_peers_t *peers, ngx_log_t *log);
static ngx_int_t ngx_http_qqfail_group_sync(ngx_http_qqfail_peers_t *peers,
    ngx_http_qqfail_group_t *group, ngx_log_t *log);
static ngx_http_qqfail_peer_t *ngx_http_qqfail_peer_add(
    ngx_http_qqfail_peers_t *peers, ngx_log_t *log);
static void ngx_http_qqfail_peer_remove(ngx_http_qqfail_peers_t *peers,
    ngx_http_qqfail_peer_t *peer);
static void ngx_http_qqfail_peer_unref(ngx_http_qqfail_peers_t *peers,
    ngx_http_qqfail_peer_t *peer);
static void ngx_http_qqfail_peers_cleanup(void *data);
static ngx_int_t ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_qqfail_get_peer(ngx_peer_connection_t *pc,
    void *data);
static ngx_http_qqfail_peer_t *ngx_http_qqfail_get_best(
    ngx_http_qqfail_peer_data_t *pd, ngx_uint_t backup, time_t now);
static void ngx_http_qqfail_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
#if (NGX_HTTP_SSL || NGX_COMPAT)
static ngx_int_t ngx_http_qqfail_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_qqfail_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif



ngx_int_t
ngx_http_qqfail_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_qqfail_module);

    if (us->servers->nelts != 1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "qqfail: \"server\" cannot be combined with "
                      "\"qqfail_server\" in upstream \"%V\" in %s:%ui",
                      &us->host, qscf->first.file, qscf->first.line);
        return NGX_ERROR;
    }

    if (us->shm_zone) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "qqfail: \"zone\" cannot be combined with "
                      "\"qqfail_server\" in upstream \"%V\" in %s:%ui",
                      &us->host, qscf->first.file, qscf->first.line);
        return NGX_ERROR;
    }

    ngx_conf_init_msec_value(qscf->refresh, 30000);
    ngx_conf_init_msec_value(qscf->timeout, 2000);
    ngx_conf_init_value(qscf->max_stale, 86400);
    ngx_conf_init_uint_value(qscf->quorum, 1);
    ngx_conf_init_value(qscf->ipv6, 1);

    us->peer.init = ngx_http_qqfail_init_peer;

    qscf->initialized = 1;

    return NGX_OK;
}



/*
 * This worker's copy of an upstream: a group per configured server, and
 * an index from a server's record to its groups (two servers lines alike
 * share a record).  It lives as long as the worker.
 */

static ngx_http_qqfail_peers_t *
ngx_http_qqfail_peers_create(ngx_qqfail_srv_conf_t *qscf, ngx_log_t *log)
{
    uint32_t                  h;
    ngx_uint_t                i, n, size;
    ngx_pool_t               *pool;
    ngx_pool_cleanup_t       *cln;
    ngx_http_qqfail_group_t  *group, **slot;
    ngx_http_qqfail_peers_t  *peers;
    ngx_qqfail_server_t      *server;
    ngx_qqfail_server_sh_t   *ssh;

    n = qscf->servers->nelts;
    server = qscf->servers->elts;

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NULL;
    }

    peers = ngx_pcalloc(pool, sizeof(ngx_http_qqfail_peers_t));
    if (peers == NULL) {
        goto failed;
    }

    peers->pool = pool;
    peers->shpool = qscf->main->shpool;
    peers->ngroups = n;

    peers->groups = ngx_pcalloc(pool, (n ? n : 1)
                                      * sizeof(ngx_http_qqfail_group_t));
    if (peers->groups == NULL) {
        goto failed;
    }

    for (size = 16; size < 2 * n; size <<= 1) { /* void */ }

    peers->mask = size - 1;

    peers->index = ngx_pcalloc(pool, size * sizeof(ngx_http_qqfail_group_t *));
    if (peers->index == NULL) {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        group = &peers->groups[i];
        group->server = &server[i];
        group->gen = NGX_HTTP_QQFAIL_NO_GEN;

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

    cln->handler = ngx_http_qqfail_peers_free;
    cln->data = peers;

    return peers;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


static void
ngx_http_qqfail_peers_free(void *data)
{
    ngx_http_qqfail_peers_t  *peers = data;

#if (NGX_HTTP_SSL)
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

    ngx_destroy_pool(peers->pool);
}


static ngx_http_qqfail_group_t *
ngx_http_qqfail_group_find(ngx_http_qqfail_peers_t *peers,
    ngx_qqfail_server_sh_t *ssh)
{
    uint32_t                  h;
    ngx_http_qqfail_group_t  *group;

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
ngx_http_qqfail_peers_sync(ngx_qqfail_srv_conf_t *qscf,
    ngx_http_qqfail_peers_t *peers, ngx_log_t *log)
{
    ngx_uint_t                 i, n, seq;
    ngx_slab_pool_t           *shpool;
    ngx_http_qqfail_group_t   *group;
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
            for (group = ngx_http_qqfail_group_find(peers, changed[i]);
                 group;
                 group = group->same)
            {
                if (ngx_http_qqfail_group_sync(peers, group, log) != NGX_OK) {
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

            if (ngx_http_qqfail_group_sync(peers, group, log) != NGX_OK) {
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

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0,
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
ngx_http_qqfail_group_sync(ngx_http_qqfail_peers_t *peers,
    ngx_http_qqfail_group_t *group, ngx_log_t *log)
{
    ngx_str_t               *host;
    ngx_uint_t               j, n, gen, active, source;
    ngx_slab_pool_t         *shpool;
    ngx_http_qqfail_peer_t  *peer, *next, **last;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_slots_t       it;
    ngx_qqfail_slot_sh_t    *slot;
    ngx_qqfail_server_sh_t  *ssh;
    u_char                   kept[NGX_QQFAIL_MAX_ADDRS];
    ngx_http_qqfail_snap_t   snap[NGX_QQFAIL_MAX_ADDRS];

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
        ngx_http_qqfail_peer_remove(peers, peer);
    }

    for (j = 0; j < n; j++) {

        if (kept[j]) {
            continue;
        }

        peer = ngx_http_qqfail_peer_add(peers, log);
        if (peer == NULL) {
            /* copied again next time */
            group->gen = NGX_HTTP_QQFAIL_NO_GEN;
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
        peer->weight = server->weight;
        peer->effective_weight = server->weight;
        peer->max_fails = server->max_fails;
        peer->fail_timeout = server->fail_timeout;
        peer->down = server->down;
        peer->backup = server->backup;
        peer->live = 1;

        *last = peer;
        last = &peer->next;

        peers->live++;
    }

    group->gen = gen;

    return NGX_OK;
}


/* a peer struct and index: a free one, or a new one at the end */

static ngx_http_qqfail_peer_t *
ngx_http_qqfail_peer_add(ngx_http_qqfail_peers_t *peers, ngx_log_t *log)
{
    ngx_uint_t               index, n;
    ngx_http_qqfail_peer_t  *peer, **p;

    peer = peers->free;

    if (peer) {
        peers->free = peer->next;
        index = peer->index;

#if (NGX_HTTP_SSL)
        /* made with another address */

        if (peer->ssl_session) {
            ngx_ssl_free_session(peer->ssl_session);
        }
#endif

    } else {
        if (peers->nelts == peers->nalloc) {
            n = peers->nalloc ? 2 * peers->nalloc : 16;

            p = ngx_alloc(n * sizeof(ngx_http_qqfail_peer_t *), log);
            if (p == NULL) {
                return NULL;
            }

            if (peers->peer) {
                ngx_memcpy(p, peers->peer,
                           peers->nelts * sizeof(ngx_http_qqfail_peer_t *));
                ngx_free(peers->peer);
            }

            peers->peer = p;
            peers->nalloc = n;
        }

        peer = ngx_palloc(peers->pool, sizeof(ngx_http_qqfail_peer_t));
        if (peer == NULL) {
            return NULL;
        }

        index = peers->nelts++;
        peers->peer[index] = peer;
    }

    ngx_memzero(peer, sizeof(ngx_http_qqfail_peer_t));

    peer->index = index;
    peer->since = peers->version;

    return peer;
}


/* out of its group; reused once no request holds it */

static void
ngx_http_qqfail_peer_remove(ngx_http_qqfail_peers_t *peers,
    ngx_http_qqfail_peer_t *peer)
{
    peer->live = 0;
    peers->live--;

    if (peer->refs == 0) {
        peer->next = peers->free;
        peers->free = peer;
    }
}


static void
ngx_http_qqfail_peer_unref(ngx_http_qqfail_peers_t *peers,
    ngx_http_qqfail_peer_t *peer)
{
    if (--peer->refs == 0 && !peer->live) {
        peer->next = peers->free;
        peers->free = peer;
    }
}


/* the request ends: the peers it tried are released */

static void
ngx_http_qqfail_peers_cleanup(void *data)
{
    ngx_http_qqfail_peer_data_t  *pd = data;

    uintptr_t   m;
    ngx_uint_t  i, n;

    for (i = 0; i < pd->ntried; i++) {
        m = pd->tried[i];

        for (n = 0; m; n++, m >>= 1) {
            if (m & 1) {
                ngx_http_qqfail_peer_unref(pd->peers,
                              pd->peers->peer[i * 8 * sizeof(uintptr_t) + n]);
            }
        }
    }
}


static ngx_int_t
ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                    n;
    ngx_pool_cleanup_t           *cln;
    ngx_http_qqfail_peers_t      *peers;
    ngx_qqfail_srv_conf_t        *qscf;
    ngx_http_qqfail_peer_data_t  *pd;

    qscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_qqfail_module);

    peers = qscf->peers;

    if (peers == NULL) {
        peers = ngx_http_qqfail_peers_create(qscf, ngx_cycle->log);
        if (peers == NULL) {
            return NGX_ERROR;
        }

        qscf->peers = peers;
    }

    ngx_http_qqfail_peers_sync(qscf, peers, ngx_cycle->log);

    pd = ngx_palloc(r->pool, sizeof(ngx_http_qqfail_peer_data_t));
    if (pd == NULL) {
        return NGX_ERROR;
    }

    pd->peers = peers;
    pd->current = NULL;
    pd->single = peers->single;
    pd->upstream = &us->host;
    pd->version = peers->version;

    if (peers->nelts <= 8 * sizeof(uintptr_t)) {
        pd->tried = &pd->data;
        pd->data = 0;
        pd->ntried = 1;

    } else {
        n = (peers->nelts + (8 * sizeof(uintptr_t) - 1))
            / (8 * sizeof(uintptr_t));

        pd->tried = ngx_pcalloc(r->pool, n * sizeof(uintptr_t));
        if (pd->tried == NULL) {
            return NGX_ERROR;
        }

        pd->ntried = n;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_qqfail_peers_cleanup;
    cln->data = pd;

    ngx_http_set_ctx(r, pd, ngx_http_qqfail_module);

    r->upstream->peer.get = ngx_http_qqfail_get_peer;
    r->upstream->peer.free = ngx_http_qqfail_free_peer;
    r->upstream->peer.data = pd;
    r->upstream->peer.tries = peers->live ? peers->live : 1;

#if (NGX_HTTP_SSL || NGX_COMPAT)
    r->upstream->peer.set_session = ngx_http_qqfail_set_session;
    r->upstream->peer.save_session = ngx_http_qqfail_save_session;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_qqfail_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_qqfail_peer_data_t  *pd = data;

    time_t                   now;
    uintptr_t                m;
    ngx_uint_t               n;
    ngx_http_qqfail_peer_t  *peer;

    pc->cached = 0;
    pc->connection = NULL;

    now = ngx_time();

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
        peer = ngx_http_qqfail_get_best(pd, 0, now);

        if (peer == NULL) {
            peer = ngx_http_qqfail_get_best(pd, 1, now);
        }

        if (peer == NULL) {
            goto failed;
        }
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "qqfail peer \"%V\" of \"%V\"", &peer->name, peer->host);

    return NGX_OK;

failed:

    pc->name = pd->upstream;

    return NGX_BUSY;
}


/*
 * Smooth weighted round robin, as nginx's own, over the primary peers or
 * the backup ones that were there when the request started.
 */

static ngx_http_qqfail_peer_t *
ngx_http_qqfail_get_best(ngx_http_qqfail_peer_data_t *pd, ngx_uint_t backup,
    time_t now)
{
    uintptr_t                m;
    ngx_int_t                total;
    ngx_uint_t               i, n;
    ngx_http_qqfail_peer_t  *peer, *best, **peerp;
    ngx_qqfail_slot_sh_t    *slot;

    best = NULL;
    total = 0;

    peerp = pd->peers->peer;

    for (i = 0; i < pd->peers->nelts; i++) {
        peer = peerp[i];

        /* an index added since the request started is past its bitmap */

        if (!peer->live || peer->backup != backup
            || peer->since > pd->version)
        {
            continue;
        }

        n = i / (8 * sizeof(uintptr_t));
        m = (uintptr_t) 1 << i % (8 * sizeof(uintptr_t));

        if (pd->tried[n] & m) {
            continue;
        }

        if (peer->down) {
            continue;
        }

        slot = peer->slot;

        /* read without the lock: a stale value only delays one decision */

        if (peer->max_fails
            && slot->id == peer->id
            && slot->fails >= peer->max_fails
            && now - slot->checked <= peer->fail_timeout)
        {
            continue;
        }

        peer->current_weight += peer->effective_weight;
        total += peer->effective_weight;

        if (peer->effective_weight < peer->weight) {
            peer->effective_weight++;
        }

        if (best == NULL || peer->current_weight > best->current_weight) {
            best = peer;
        }
    }

    if (best == NULL) {
        return NULL;
    }

    best->current_weight -= total;

    slot = best->slot;

    if (slot->id == best->id && now - slot->checked > best->fail_timeout) {
        slot->checked = now;
    }

    return best;
}


static void
ngx_http_qqfail_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_qqfail_peer_data_t  *pd = data;

    time_t                   now;
    ngx_uint_t               fails;
    ngx_slab_pool_t         *shpool;
    ngx_http_qqfail_peer_t  *peer;
    ngx_qqfail_slot_sh_t    *slot;

    peer = pd->current;

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


#if (NGX_HTTP_SSL || NGX_COMPAT)

/*
 * A TLS session per address, as nginx's round robin keeps one per peer
 * without a zone.  After a failover the address is reached by another
 * name: a session is offered only with the server name it was made with
 * (RFC 8446, 4.6.1), since the certificate it carries was chosen, and
 * verified, for that name.
 */

static ngx_int_t
ngx_http_qqfail_set_session(ngx_peer_connection_t *pc, void *data)
{
#if (NGX_HTTP_SSL)
    ngx_http_qqfail_peer_data_t  *pd = data;

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
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                           "qqfail session of \"%s\" not offered to \"%s\"",
                           made, name ? name : "");
            return NGX_OK;
        }
    }

#endif

    rc = ngx_ssl_set_session(pc->connection, ssl_session);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "qqfail set session: %p", ssl_session);

    return rc;
#else
    return NGX_OK;
#endif
}


static void
ngx_http_qqfail_save_session(ngx_peer_connection_t *pc, void *data)
{
#if (NGX_HTTP_SSL)
    ngx_http_qqfail_peer_data_t  *pd = data;

    ngx_ssl_session_t            *old, *ssl_session;
    ngx_http_qqfail_peer_t       *peer;

    ssl_session = ngx_ssl_get_session(pc->connection);

    if (ssl_session == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
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


ngx_int_t
ngx_http_qqfail_variable_peer(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                    *s;
    ngx_http_qqfail_peer_data_t  *pd;

    pd = ngx_http_get_module_ctx(r, ngx_http_qqfail_module);

    if (pd == NULL || pd->current == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = data ? &ngx_qqfail_sources[pd->current->source]
             : pd->current->host;

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
