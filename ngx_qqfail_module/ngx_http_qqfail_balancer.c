
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


typedef struct {
    struct sockaddr                 *sockaddr;
    socklen_t                        socklen;
    ngx_str_t                        name;       /* "ip:port" */
    ngx_str_t                       *host;       /* the qqfail name */
    ngx_uint_t                       source;
    ngx_http_qqfail_slot_sh_t       *slot;
    uint32_t                         id;
    ngx_int_t                        current_weight;
    ngx_int_t                        effective_weight;
    ngx_int_t                        weight;
    ngx_uint_t                       max_fails;
    time_t                           fail_timeout;
    ngx_uint_t                       down;
    /* what sockaddr and name point to: one allocation per copy */
    ngx_http_qqfail_sockaddr_t       addr;
    u_char                           text[NGX_HTTP_QQFAIL_ADDR_STRLEN];
} ngx_http_qqfail_peer_t;


/*
 * This worker's copy of the addresses of one upstream, rebuilt when the
 * lookup leader changes them; requests hold a reference, so a copy lives
 * until its last request ends.
 */

struct ngx_http_qqfail_peers_s {
    ngx_uint_t                       refs;
    ngx_uint_t                       gen;
    ngx_pool_t                      *pool;
    ngx_slab_pool_t                 *shpool;
    ngx_uint_t                       number;     /* primary peers */
    ngx_uint_t                       total;      /* with backup peers */
    ngx_http_qqfail_peer_t          *peer;
    unsigned                         single:1;
    unsigned                         replaced:1;
};


typedef struct {
    ngx_http_qqfail_peers_t         *peers;
    ngx_http_qqfail_peer_t          *current;
    ngx_str_t                       *upstream;
    uintptr_t                       *tried;
    uintptr_t                        data;
} ngx_http_qqfail_peer_data_t;


static ngx_http_qqfail_peers_t *ngx_http_qqfail_peers_build(
    ngx_http_qqfail_srv_conf_t *qscf, ngx_log_t *log);
static void ngx_http_qqfail_peers_cleanup(void *data);
static ngx_int_t ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_qqfail_get_peer(ngx_peer_connection_t *pc,
    void *data);
static ngx_http_qqfail_peer_t *ngx_http_qqfail_get_best(
    ngx_http_qqfail_peer_data_t *pd, ngx_uint_t from, ngx_uint_t to,
    time_t now);
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
    ngx_http_qqfail_srv_conf_t  *qscf;

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


static ngx_http_qqfail_peers_t *
ngx_http_qqfail_peers_build(ngx_http_qqfail_srv_conf_t *qscf, ngx_log_t *log)
{
    ngx_uint_t                    i, j, n, count, backup;
    ngx_pool_t                   *pool;
    ngx_slab_pool_t              *shpool;
    ngx_http_qqfail_peer_t       *peer;
    ngx_http_qqfail_peers_t      *peers;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_chunk_sh_t   *chunk;
    ngx_http_qqfail_slot_sh_t    *slot;
    ngx_http_qqfail_server_sh_t  *ssh;

    shpool = qscf->main->shpool;
    server = qscf->servers->elts;

    pool = ngx_create_pool(1024, log);
    if (pool == NULL) {
        return NULL;
    }

    peers = ngx_pcalloc(pool, sizeof(ngx_http_qqfail_peers_t));
    if (peers == NULL) {
        goto failed;
    }

    peers->pool = pool;
    peers->shpool = shpool;

    ngx_shmtx_lock(&shpool->mutex);

    peers->gen = qscf->sh->gen;

    count = 0;

    for (i = 0; i < qscf->servers->nelts; i++) {
        count += server[i].sh->naddrs;
    }

    peers->peer = ngx_pcalloc(pool, (count ? count : 1)
                                    * sizeof(ngx_http_qqfail_peer_t));
    if (peers->peer == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        goto failed;
    }

    /* primary servers first, then backup ones */

    n = 0;

    for (backup = 0; backup < 2; backup++) {

        for (i = 0; i < qscf->servers->nelts; i++) {

            if (server[i].backup != backup) {
                continue;
            }

            ssh = server[i].sh;

            for (chunk = ssh->chunks; chunk; chunk = chunk->next) {
                for (j = 0; j < chunk->nslots; j++) {
                    slot = &chunk->slot[j];

                    /* the counts are kept under this lock: n < count */

                    if (!slot->in_use || n == count) {
                        continue;
                    }

                    peer = &peers->peer[n];

                    peer->addr = slot->sockaddr;
                    peer->sockaddr = &peer->addr.sockaddr;
                    peer->socklen = slot->socklen;
                    peer->name.data = peer->text;
                    peer->name.len = ngx_http_qqfail_slot_text(slot,
                                                               peer->text);

                    peer->host = &((ngx_http_qqfail_name_t *)
                                   server[i].names.elts)[ssh->active].host;
                    peer->source = ssh->source;
                    peer->slot = slot;
                    peer->id = slot->id;
                    peer->weight = server[i].weight;
                    peer->effective_weight = server[i].weight;
                    peer->max_fails = server[i].max_fails;
                    peer->fail_timeout = server[i].fail_timeout;
                    peer->down = server[i].down;

                    n++;
                }
            }
        }

        if (backup == 0) {
            peers->number = n;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    peers->total = n;

    /* a group of one address: never considered unavailable */
    peers->single = (n == 1);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "qqfail peers of \"%V\": %ui, %ui backup",
                   &qscf->upstream->host, peers->number,
                   peers->total - peers->number);

    return peers;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


void
ngx_http_qqfail_peers_unref(ngx_http_qqfail_peers_t *peers)
{
    if (--peers->refs == 0 && peers->replaced) {
        ngx_destroy_pool(peers->pool);
    }
}


static void
ngx_http_qqfail_peers_cleanup(void *data)
{
    ngx_http_qqfail_peer_data_t  *pd = data;

    ngx_http_qqfail_peers_unref(pd->peers);
}


static ngx_int_t
ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                    n;
    ngx_pool_cleanup_t           *cln;
    ngx_http_qqfail_peers_t      *peers, *fresh;
    ngx_http_qqfail_srv_conf_t   *qscf;
    ngx_http_qqfail_peer_data_t  *pd;

    qscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_qqfail_module);

    peers = qscf->peers;

    if (peers == NULL || peers->gen != qscf->sh->gen) {

        fresh = ngx_http_qqfail_peers_build(qscf, ngx_cycle->log);

        if (fresh == NULL) {
            if (peers == NULL) {
                return NGX_ERROR;
            }

            /* keep using the previous copy */

        } else {
            if (peers) {
                peers->replaced = 1;

                if (peers->refs == 0) {
                    ngx_destroy_pool(peers->pool);
                }
            }

            qscf->peers = fresh;
            peers = fresh;
        }
    }

    pd = ngx_palloc(r->pool, sizeof(ngx_http_qqfail_peer_data_t));
    if (pd == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    peers->refs++;

    cln->handler = ngx_http_qqfail_peers_cleanup;
    cln->data = pd;

    pd->peers = peers;
    pd->current = NULL;
    pd->upstream = &us->host;

    if (peers->total <= 8 * sizeof(uintptr_t)) {
        pd->tried = &pd->data;
        pd->data = 0;

    } else {
        n = (peers->total + (8 * sizeof(uintptr_t) - 1))
            / (8 * sizeof(uintptr_t));

        pd->tried = ngx_pcalloc(r->pool, n * sizeof(uintptr_t));
        if (pd->tried == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_http_set_ctx(r, pd, ngx_http_qqfail_module);

    r->upstream->peer.get = ngx_http_qqfail_get_peer;
    r->upstream->peer.free = ngx_http_qqfail_free_peer;
    r->upstream->peer.data = pd;
    r->upstream->peer.tries = peers->total ? peers->total : 1;

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

    time_t                    now;
    uintptr_t                 m;
    ngx_uint_t                n;
    ngx_http_qqfail_peer_t   *peer;
    ngx_http_qqfail_peers_t  *peers;

    pc->cached = 0;
    pc->connection = NULL;

    peers = pd->peers;
    now = ngx_time();

    if (peers->single) {
        peer = &peers->peer[0];

        if (peer->down || (pd->tried[0] & 1)) {
            goto failed;
        }

    } else {
        peer = ngx_http_qqfail_get_best(pd, 0, peers->number, now);

        if (peer == NULL) {
            peer = ngx_http_qqfail_get_best(pd, peers->number, peers->total,
                                            now);
        }

        if (peer == NULL) {
            goto failed;
        }
    }

    n = peer - peers->peer;
    m = (uintptr_t) 1 << n % (8 * sizeof(uintptr_t));
    pd->tried[n / (8 * sizeof(uintptr_t))] |= m;

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


/* smooth weighted round robin, as nginx's own */

static ngx_http_qqfail_peer_t *
ngx_http_qqfail_get_best(ngx_http_qqfail_peer_data_t *pd, ngx_uint_t from,
    ngx_uint_t to, time_t now)
{
    uintptr_t                   m;
    ngx_int_t                   total;
    ngx_uint_t                  i, n;
    ngx_http_qqfail_peer_t     *peer, *best;
    ngx_http_qqfail_slot_sh_t  *slot;

    best = NULL;
    total = 0;

    for (i = from; i < to; i++) {
        peer = &pd->peers->peer[i];

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

    time_t                      now;
    ngx_uint_t                  fails;
    ngx_slab_pool_t            *shpool;
    ngx_http_qqfail_peer_t     *peer;
    ngx_http_qqfail_slot_sh_t  *slot;

    peer = pd->current;

    if (peer == NULL || pd->peers->single) {
        pc->tries = 0;
        return;
    }

    slot = peer->slot;
    shpool = pd->peers->shpool;

    if (state & NGX_PEER_FAILED) {
        now = ngx_time();
        fails = 0;

        ngx_shmtx_lock(&shpool->mutex);

        if (slot->id == peer->id) {
            fails = ++slot->fails;
            slot->accessed = now;
            slot->checked = now;
        }

        ngx_shmtx_unlock(&shpool->mutex);

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

        ngx_shmtx_lock(&shpool->mutex);

        if (slot->id == peer->id && slot->accessed < slot->checked) {
            slot->fails = 0;
        }

        ngx_shmtx_unlock(&shpool->mutex);
    }

    if (pc->tries) {
        pc->tries--;
    }
}


#if (NGX_HTTP_SSL || NGX_COMPAT)

static ngx_int_t
ngx_http_qqfail_set_session(ngx_peer_connection_t *pc, void *data)
{
    return NGX_OK;
}


static void
ngx_http_qqfail_save_session(ngx_peer_connection_t *pc, void *data)
{
    return;
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

    s = data ? &ngx_http_qqfail_sources[pd->current->source]
             : pd->current->host;

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
