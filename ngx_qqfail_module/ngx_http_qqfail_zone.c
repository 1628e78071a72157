
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


#define NGX_HTTP_QQFAIL_LEASE  700      /* ms; renewed every 250 ms */


typedef struct {
    ngx_uint_t                       mask;
    ngx_http_qqfail_server_sh_t    **slot;   /* by upstream and key */
    ngx_http_qqfail_server_sh_t    **named;  /* by upstream, active name */
} ngx_http_qqfail_zone_index_t;


typedef struct {
    ngx_uint_t                       current;    /* records, this config */
    ngx_uint_t                       older;      /* kept for older ones */
    ngx_uint_t                       naddrs;
    size_t                           needed;
    size_t                           suggest;    /* kilobytes */
} ngx_http_qqfail_zone_usage_t;


static ngx_int_t ngx_http_qqfail_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_qqfail_zone_attach(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_log_t *log);
static ngx_int_t ngx_http_qqfail_zone_attach_providers(
    ngx_http_qqfail_main_conf_t *qmcf);
static void ngx_http_qqfail_zone_usage(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_zone_usage_t *u);
static void ngx_http_qqfail_zone_usage_log(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_log_t *log, ngx_http_qqfail_zone_usage_t *u,
    ngx_http_qqfail_server_t *server);
static ngx_int_t ngx_http_qqfail_zone_index(
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_zone_index_t *index,
    ngx_uint_t n, ngx_log_t *log);
static ngx_uint_t ngx_http_qqfail_zone_hash(ngx_http_qqfail_upstream_sh_t *ush,
    u_char *key, size_t len);
static void ngx_http_qqfail_zone_index_add(
    ngx_http_qqfail_zone_index_t *index, ngx_http_qqfail_server_sh_t *ssh);
static ngx_http_qqfail_server_sh_t *ngx_http_qqfail_zone_find(
    ngx_http_qqfail_zone_index_t *index, ngx_http_qqfail_upstream_sh_t *ush,
    ngx_str_t *key);
static void ngx_http_qqfail_zone_inherit(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_server_t *server, ngx_http_qqfail_zone_index_t *index);
static ngx_int_t ngx_http_qqfail_zone_key_name(
    ngx_http_qqfail_server_sh_t *ssh, ngx_uint_t n, ngx_str_t *name);
static void ngx_http_qqfail_zone_gc(ngx_http_qqfail_main_conf_t *qmcf);
static ngx_int_t ngx_http_qqfail_zone_room(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_server_sh_t *ssh, ngx_uint_t naddrs);
static u_char *ngx_http_qqfail_zone_strdup(ngx_slab_pool_t *shpool,
    u_char *data, size_t len);
static ngx_http_qqfail_slot_sh_t *ngx_http_qqfail_zone_find_slot(
    ngx_http_qqfail_server_sh_t *ssh, ngx_addr_t *addr);
static ngx_http_qqfail_slot_sh_t *ngx_http_qqfail_zone_free_slot(
    ngx_slab_pool_t *shpool, ngx_http_qqfail_server_sh_t *ssh);


static ngx_str_t  ngx_http_qqfail_zone_name = ngx_string("qqfail");


ngx_int_t
ngx_http_qqfail_zone_add(ngx_conf_t *cf, ngx_http_qqfail_main_conf_t *qmcf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_qqfail_zone_name,
                                     qmcf->zone_size, &ngx_http_qqfail_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_qqfail_zone_init;
    shm_zone->data = qmcf;

    qmcf->shm_zone = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_qqfail_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                        len;
    ngx_slab_pool_t              *shpool;
    ngx_http_qqfail_sh_t         *sh;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    qmcf->shpool = shpool;

    /* a full zone is reported once per episode, with what fills it */
    shpool->log_nomem = 0;

    if (data) {
        /* reused across a reload: keep every address and counter */

        qmcf->sh = shpool->data;

        if (qmcf->sh->layout != NGX_HTTP_QQFAIL_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "qqfail: the shared zone was made by another "
                          "version of the module; restart nginx, or "
                          "change the \"qqfail_zone\" size, to load it");
            return NGX_ERROR;
        }

        return ngx_http_qqfail_zone_attach(qmcf, shm_zone->shm.log);
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_qqfail_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    qmcf->sh = sh;

    sh->layout = NGX_HTTP_QQFAIL_LAYOUT;

    sh->events = ngx_slab_calloc(shpool, sizeof(ngx_http_qqfail_events_sh_t));
    if (sh->events == NULL) {
        return NGX_ERROR;
    }

    len = sizeof(" in qqfail zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in qqfail zone \"%V\"%Z",
                &shm_zone->shm.name);

    return ngx_http_qqfail_zone_attach(qmcf, shm_zone->shm.log);
}


/*
 * Find or create the records of every configured upstream and server, in
 * the master.  A reload with the same server finds the addresses the
 * previous generation had; an edited server line (a name added, removed
 * or reordered) inherits them from the record of a name it shares.
 * Records no running generation uses are freed first.
 */

static ngx_int_t
ngx_http_qqfail_zone_attach(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_log_t *log)
{
    ngx_uint_t                      i, j, n, epoch;
    ngx_slab_pool_t                *shpool;
    ngx_http_qqfail_sh_t           *sh;
    ngx_http_qqfail_server_t       *server;
    ngx_http_qqfail_zone_index_t    index;
    ngx_http_qqfail_zone_usage_t    usage;
    ngx_http_qqfail_srv_conf_t    **qscfp, *qscf;
    ngx_http_qqfail_server_sh_t    *ssh;
    ngx_http_qqfail_upstream_sh_t  *ush;

    shpool = qmcf->shpool;
    sh = qmcf->sh;

    /* the generation this configuration starts, if it starts */
    epoch = sh->epoch + 1;

    index.slot = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    ngx_http_qqfail_zone_gc(qmcf);

    if (ngx_http_qqfail_zone_attach_providers(qmcf) != NGX_OK) {
        goto nomem;
    }

    /* finding records is linear in their number, not quadratic */

    n = sh->nservers;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        n += qscfp[i]->servers->nelts;
    }

    if (ngx_http_qqfail_zone_index(qmcf, &index, n, log) != NGX_OK) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_ERROR;
    }

    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        qscf = qscfp[i];

        for (ush = sh->upstreams; ush; ush = ush->next) {
            if (ush->key_len == qscf->upstream->host.len
                && ngx_memcmp(ush->key, qscf->upstream->host.data,
                              ush->key_len) == 0)
            {
                break;
            }
        }

        if (ush == NULL) {
            ush = ngx_slab_calloc_locked(shpool,
                                         sizeof(ngx_http_qqfail_upstream_sh_t));
            if (ush == NULL) {
                goto nomem;
            }

            ush->key = ngx_http_qqfail_zone_strdup(shpool,
                                                   qscf->upstream->host.data,
                                                   qscf->upstream->host.len);
            if (ush->key == NULL) {
                ngx_slab_free_locked(shpool, ush);
                goto nomem;
            }

            ush->key_len = qscf->upstream->host.len;
            ush->next = sh->upstreams;
            sh->upstreams = ush;
        }

        ush->epoch = epoch;
        qscf->sh = ush;

        server = qscf->servers->elts;

        for (j = 0; j < qscf->servers->nelts; j++) {

            ssh = ngx_http_qqfail_zone_find(&index, ush, &server[j].key);

            if (ssh == NULL) {
                ssh = ngx_slab_calloc_locked(shpool,
                                          sizeof(ngx_http_qqfail_server_sh_t));
                if (ssh == NULL) {
                    goto nomem;
                }

                ssh->key = ngx_http_qqfail_zone_strdup(shpool,
                                                       server[j].key.data,
                                                       server[j].key.len);
                if (ssh->key == NULL) {
                    ngx_slab_free_locked(shpool, ssh);
                    goto nomem;
                }

                /*
                 * every server has room for a few addresses from the
                 * start: when the zone is full, a small set (an IP-literal
                 * alias) still fits
                 */

                ssh->chunks = ngx_slab_calloc_locked(shpool,
                                          sizeof(ngx_http_qqfail_chunk_sh_t));
                if (ssh->chunks == NULL) {
                    ngx_slab_free_locked(shpool, ssh->key);
                    ngx_slab_free_locked(shpool, ssh);
                    goto nomem;
                }

                ssh->key_len = server[j].key.len;
                ssh->upstream = ush;
                ssh->next = sh->servers;
                sh->servers = ssh;
                sh->nservers++;

                ngx_http_qqfail_zone_index_add(&index, ssh);
            }

            ssh->epoch = epoch;

            server[j].sh = ssh;
            server[j].upstream = qscf;

            if (ssh->source == NGX_HTTP_QQFAIL_SOURCE_NONE) {
                ngx_http_qqfail_zone_inherit(qmcf, &server[j], &index);
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_free(index.slot);

    return NGX_OK;

nomem:

    ngx_http_qqfail_zone_usage(qmcf, &usage);

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_qqfail_zone_usage_log(qmcf, log, &usage, NULL);

    if (index.slot) {
        ngx_free(index.slot);
    }

    return NGX_ERROR;
}


/*
 * A process-local index of the records, for the master's attach: by
 * upstream and key, and by upstream and the name the addresses came from
 * (for inheriting).  Open addressing, at most half full.
 */

static ngx_int_t
ngx_http_qqfail_zone_index(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_zone_index_t *index, ngx_uint_t n, ngx_log_t *log)
{
    ngx_uint_t                    size;
    ngx_http_qqfail_server_sh_t  *ssh;

    for (size = 16; size < 2 * n; size <<= 1) { /* void */ }

    index->mask = size - 1;
    index->slot = ngx_calloc(2 * size * sizeof(ngx_http_qqfail_server_sh_t *),
                             log);
    if (index->slot == NULL) {
        return NGX_ERROR;
    }

    index->named = index->slot + size;

    for (ssh = qmcf->sh->servers; ssh; ssh = ssh->next) {
        ngx_http_qqfail_zone_index_add(index, ssh);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_qqfail_zone_hash(ngx_http_qqfail_upstream_sh_t *ush, u_char *key,
    size_t len)
{
    return ngx_crc32_short(key, len) ^ ((uintptr_t) ush >> 4);
}


static void
ngx_http_qqfail_zone_index_add(ngx_http_qqfail_zone_index_t *index,
    ngx_http_qqfail_server_sh_t *ssh)
{
    ngx_str_t   name;
    ngx_uint_t  h;

    h = ngx_http_qqfail_zone_hash(ssh->upstream, ssh->key, ssh->key_len);

    while (index->slot[h & index->mask]) {
        h++;
    }

    index->slot[h & index->mask] = ssh;

    /* the name that supplied the addresses: what an edited line shares */

    if (ssh->source == NGX_HTTP_QQFAIL_SOURCE_NONE || ssh->naddrs == 0
        || ngx_http_qqfail_zone_key_name(ssh, ssh->active, &name) != NGX_OK)
    {
        return;
    }

    h = ngx_http_qqfail_zone_hash(ssh->upstream, name.data, name.len);

    while (index->named[h & index->mask]) {
        h++;
    }

    index->named[h & index->mask] = ssh;
}


static ngx_http_qqfail_server_sh_t *
ngx_http_qqfail_zone_find(ngx_http_qqfail_zone_index_t *index,
    ngx_http_qqfail_upstream_sh_t *ush, ngx_str_t *key)
{
    ngx_uint_t                    h;
    ngx_http_qqfail_server_sh_t  *ssh;

    h = ngx_http_qqfail_zone_hash(ush, key->data, key->len);

    for ( ;; ) {
        ssh = index->slot[h++ & index->mask];

        if (ssh == NULL) {
            return NULL;
        }

        if (ssh->upstream == ush && ssh->key_len == key->len
            && ngx_memcmp(ssh->key, key->data, key->len) == 0)
        {
            return ssh;
        }
    }
}


/*
 * What fills the zone, for the message that says it is full: counted
 * with the zone locked, logged once it is unlocked.
 */

static void
ngx_http_qqfail_zone_usage(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_zone_usage_t *u)
{
    ngx_http_qqfail_sh_t         *sh;
    ngx_http_qqfail_server_sh_t  *ssh;

    sh = qmcf->sh;
    ngx_memzero(u, sizeof(ngx_http_qqfail_zone_usage_t));

    for (ssh = sh->servers; ssh; ssh = ssh->next) {
        if (ssh->epoch >= sh->epoch) {
            u->current++;

        } else {
            u->older++;
        }

        u->naddrs += ssh->naddrs;
    }

    u->needed = sh->needed;
    u->suggest = ngx_http_qqfail_zone_suggest(qmcf);
}


static void
ngx_http_qqfail_zone_usage_log(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_log_t *log, ngx_http_qqfail_zone_usage_t *u,
    ngx_http_qqfail_server_t *server)
{
    if (server == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "qqfail: \"qqfail_zone\" %uzk is too small for this "
                      "configuration: it holds %ui server record(s) of the "
                      "running configuration, %ui kept for workers of "
                      "older generations still running, %ui address(es) "
                      "in all; raise \"qqfail_zone\"",
                      qmcf->zone_size / 1024, u->current, u->older,
                      u->naddrs);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "qqfail: \"qqfail_zone\" %uzk is full: %ui server "
                  "record(s) of the running configuration, %ui kept for "
                  "workers of older generations still running, %ui "
                  "address(es) in all; the addresses of \"%V\" stay as they "
                  "were, upstream \"%V\"; %uz more bytes are needed, "
                  "raise \"qqfail_zone\" to at least %uzk",
                  qmcf->zone_size / 1024, u->current, u->older, u->naddrs,
                  &((ngx_http_qqfail_name_t *) server->names.elts)[0].text,
                  &server->upstream->upstream->host, u->needed, u->suggest);
}


/*
 * A zone size that would hold what is stored and what did not fit, with
 * a quarter to spare, in kilobytes.  Called with the zone locked.
 */

size_t
ngx_http_qqfail_zone_suggest(ngx_http_qqfail_main_conf_t *qmcf)
{
    size_t            used;
    ngx_slab_pool_t  *shpool;

    shpool = qmcf->shpool;

    used = ((shpool->end - shpool->start) / ngx_pagesize - shpool->pfree)
           * ngx_pagesize;

    return ngx_align((qmcf->zone_size + used / 4 + qmcf->sh->needed * 2)
                     / 1024, 64);
}


/*
 * A server whose record has no addresses (a new record: the server line
 * was edited) takes them from the record of another server of the same
 * upstream whose addresses came from one of its names: during an outage,
 * adding an alias or removing a dead one must not cost the last good
 * addresses.  The best of its names wins.  Called with the zone locked.
 */

static void
ngx_http_qqfail_zone_inherit(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_server_t *server, ngx_http_qqfail_zone_index_t *index)
{
    ngx_str_t                     key;
    ngx_uint_t                    i, n, k, h, best_name;
    ngx_http_qqfail_name_t       *name;
    ngx_http_qqfail_chunk_sh_t   *chunk;
    ngx_http_qqfail_slot_sh_t    *slot, *to;
    ngx_http_qqfail_server_sh_t  *ssh, *old, *best;

    ssh = server->sh;
    name = server->names.elts;

    best = NULL;
    best_name = server->names.nelts;

    /* the best name first: the first record its addresses came from wins */

    for (n = 0; best == NULL && n < server->names.nelts; n++) {
        h = ngx_http_qqfail_zone_hash(ssh->upstream, name[n].key.data,
                                      name[n].key.len);

        for ( ;; ) {
            old = index->named[h++ & index->mask];

            if (old == NULL) {
                break;
            }

            if (old == ssh || old->upstream != ssh->upstream
                || old->source == NGX_HTTP_QQFAIL_SOURCE_NONE
                || old->naddrs == 0
                || ngx_http_qqfail_zone_key_name(old, old->active, &key)
                   != NGX_OK
                || key.len != name[n].key.len
                || ngx_memcmp(key.data, name[n].key.data, key.len) != 0)
            {
                continue;
            }

            best = old;
            best_name = n;
            break;
        }
    }

    if (best == NULL) {
        return;
    }

    for (chunk = best->chunks; chunk; chunk = chunk->next) {
        for (i = 0; i < NGX_HTTP_QQFAIL_SLOTS; i++) {
            slot = &chunk->slot[i];

            if (!slot->in_use) {
                continue;
            }

            to = ngx_http_qqfail_zone_free_slot(qmcf->shpool, ssh);
            if (to == NULL) {
                /* as many as fit: the lookups complete the set */
                goto done;
            }

            k = to->id;
            *to = *slot;
            to->id = k + 1;
            to->fails = 0;
            to->accessed = 0;
            to->checked = 0;

            ssh->naddrs++;
        }
    }

done:

    if (ssh->naddrs == 0) {
        return;
    }

    /* the state of every name the two servers share */

    for (n = 0; n < server->names.nelts; n++) {
        for (k = 0; ngx_http_qqfail_zone_key_name(best, k, &key) == NGX_OK;
             k++)
        {
            if (name[n].key.len == key.len
                && ngx_memcmp(name[n].key.data, key.data, key.len) == 0)
            {
                ssh->names[n] = best->names[k];
                break;
            }
        }
    }

    ssh->active = best_name;
    ssh->source = best->source;
    ssh->quorum = best->quorum;
    ssh->last_success = best->last_success;
    ssh->stale_since = best->stale_since;
    ssh->next_lookup = best->next_lookup;

    ngx_http_qqfail_zone_changed(ssh);
}


/* the n-th name of a record's key, "name:port,name:port" */

static ngx_int_t
ngx_http_qqfail_zone_key_name(ngx_http_qqfail_server_sh_t *ssh, ngx_uint_t n,
    ngx_str_t *name)
{
    u_char  *p, *last, *comma;

    p = ssh->key;
    last = ssh->key + ssh->key_len;

    for ( ;; ) {
        comma = ngx_strlchr(p, last, ',');

        if (n == 0) {
            name->data = p;
            name->len = (comma ? comma : last) - p;
            return NGX_OK;
        }

        if (comma == NULL) {
            return NGX_DECLINED;
        }

        p = comma + 1;
        n--;
    }
}


/*
 * Free the records that no running generation uses: those of servers and
 * upstreams configured only by generations older than the oldest worker
 * still running.  Called with the zone locked.
 */

static void
ngx_http_qqfail_zone_gc(ngx_http_qqfail_main_conf_t *qmcf)
{
    ngx_uint_t                       i, oldest;
    ngx_slab_pool_t                 *shpool;
    ngx_http_qqfail_sh_t            *sh;
    ngx_http_qqfail_chunk_sh_t      *chunk, *next;
    ngx_http_qqfail_server_sh_t     *ssh, **sshp;
    ngx_http_qqfail_upstream_sh_t   *ush, **ushp;

    shpool = qmcf->shpool;
    sh = qmcf->sh;

    if (sh->nprocs > NGX_HTTP_QQFAIL_MAX_PROCS) {
        /* a worker could not register: who uses what is unknown */
        return;
    }

    oldest = sh->epoch;

    for (i = 0; i < sh->nprocs; /* void */ ) {

        /* a worker that died without a goodbye (SIGKILL, a crash) */

        if (kill(sh->procs[i].pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
            sh->procs[i] = sh->procs[--sh->nprocs];
            continue;
        }

        if (sh->procs[i].epoch < oldest) {
            oldest = sh->procs[i].epoch;
        }

        i++;
    }

    for (sshp = &sh->servers; *sshp; /* void */ ) {
        ssh = *sshp;

        if (ssh->epoch >= oldest) {
            sshp = &ssh->next;
            continue;
        }

        *sshp = ssh->next;

        for (chunk = ssh->chunks; chunk; chunk = next) {
            next = chunk->next;
            ngx_slab_free_locked(shpool, chunk);
        }

        ngx_slab_free_locked(shpool, ssh->key);
        ngx_slab_free_locked(shpool, ssh);
        sh->nservers--;
    }

    for (ushp = &sh->upstreams; *ushp; /* void */ ) {
        ush = *ushp;

        if (ush->epoch >= oldest) {
            ushp = &ush->next;
            continue;
        }

        *ushp = ush->next;

        ngx_slab_free_locked(shpool, ush->key);
        ngx_slab_free_locked(shpool, ush);
    }
}


/*
 * A worker says which generation it belongs to (epoch 0: it exits), so
 * that records it may still use are not freed under it.
 */

void
ngx_http_qqfail_zone_register(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_uint_t epoch)
{
    ngx_uint_t             i;
    ngx_http_qqfail_sh_t  *sh;

    sh = qmcf->sh;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    for (i = 0; i < sh->nprocs && i < NGX_HTTP_QQFAIL_MAX_PROCS; i++) {
        if (sh->procs[i].pid == ngx_pid) {
            break;
        }
    }

    if (epoch == 0) {
        if (i < sh->nprocs && i < NGX_HTTP_QQFAIL_MAX_PROCS) {
            sh->procs[i] = sh->procs[--sh->nprocs];
        }

    } else if (i < sh->nprocs && i < NGX_HTTP_QQFAIL_MAX_PROCS) {
        sh->procs[i].epoch = epoch;

    } else if (sh->nprocs < NGX_HTTP_QQFAIL_MAX_PROCS) {
        sh->procs[sh->nprocs].pid = ngx_pid;
        sh->procs[sh->nprocs].epoch = epoch;
        sh->nprocs++;

    } else if (sh->nprocs == NGX_HTTP_QQFAIL_MAX_PROCS) {
        /* more workers than places: records are never freed again */
        sh->nprocs++;
        ngx_shmtx_unlock(&qmcf->shpool->mutex);

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "qqfail: more than %d worker processes, records of "
                      "servers no longer configured will not be freed",
                      NGX_HTTP_QQFAIL_MAX_PROCS);
        return;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


static ngx_int_t
ngx_http_qqfail_zone_attach_providers(ngx_http_qqfail_main_conf_t *qmcf)
{
    ngx_uint_t                      i, j, k, used;
    ngx_http_qqfail_sh_t           *sh;
    ngx_http_qqfail_provider_t     *pr;
    ngx_http_qqfail_provider_sh_t  *psh;

    sh = qmcf->sh;
    pr = qmcf->providers.elts;

    /*
     * a provider keeps its record across reloads, found by name, so that
     * workers of the previous generation keep counting into the right one
     */

    for (i = 0; i < qmcf->providers.nelts; i++) {
        psh = NULL;

        for (j = 0; j < NGX_HTTP_QQFAIL_MAX_PROVIDERS; j++) {
            if (sh->providers[j].name_len == pr[i].name.len
                && ngx_memcmp(sh->providers[j].name, pr[i].name.data,
                              pr[i].name.len) == 0)
            {
                psh = &sh->providers[j];
                break;
            }
        }

        /* a free record, else one of a provider no longer configured */

        for (j = 0; psh == NULL && j < NGX_HTTP_QQFAIL_MAX_PROVIDERS; j++) {
            if (sh->providers[j].name_len == 0) {
                psh = &sh->providers[j];
            }
        }

        for (j = 0; psh == NULL && j < NGX_HTTP_QQFAIL_MAX_PROVIDERS; j++) {
            used = 0;

            for (k = 0; k < qmcf->providers.nelts; k++) {
                if (sh->providers[j].name_len == pr[k].name.len
                    && ngx_memcmp(sh->providers[j].name, pr[k].name.data,
                                  pr[k].name.len) == 0)
                {
                    used = 1;
                    break;
                }
            }

            if (!used) {
                psh = &sh->providers[j];
            }
        }

        if (psh == NULL) {
            return NGX_ERROR;
        }

        if (psh->name_len != pr[i].name.len
            || ngx_memcmp(psh->name, pr[i].name.data, pr[i].name.len) != 0)
        {
            ngx_memzero(psh, sizeof(ngx_http_qqfail_provider_sh_t));
            ngx_memcpy(psh->name, pr[i].name.data, pr[i].name.len);
            psh->name_len = pr[i].name.len;
        }

        pr[i].sh = psh;
    }

    return NGX_OK;
}


static u_char *
ngx_http_qqfail_zone_strdup(ngx_slab_pool_t *shpool, u_char *data,
    size_t len)
{
    u_char  *p;

    p = ngx_slab_alloc_locked(shpool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, data, len);
    p[len] = '\0';

    return p;
}


static ngx_http_qqfail_slot_sh_t *
ngx_http_qqfail_zone_find_slot(ngx_http_qqfail_server_sh_t *ssh,
    ngx_addr_t *addr)
{
    ngx_uint_t                   i;
    ngx_http_qqfail_chunk_sh_t  *chunk;
    ngx_http_qqfail_slot_sh_t   *slot;

    for (chunk = ssh->chunks; chunk; chunk = chunk->next) {
        for (i = 0; i < NGX_HTTP_QQFAIL_SLOTS; i++) {
            slot = &chunk->slot[i];

            if (slot->in_use
                && ngx_cmp_sockaddr(&slot->sockaddr.sockaddr, slot->socklen,
                                    addr->sockaddr, addr->socklen, 1)
                   == NGX_OK)
            {
                return slot;
            }
        }
    }

    return NULL;
}


static ngx_http_qqfail_slot_sh_t *
ngx_http_qqfail_zone_free_slot(ngx_slab_pool_t *shpool,
    ngx_http_qqfail_server_sh_t *ssh)
{
    ngx_uint_t                    i;
    ngx_http_qqfail_chunk_sh_t   *chunk, **last;

    last = &ssh->chunks;

    for (chunk = ssh->chunks; chunk; chunk = chunk->next) {
        for (i = 0; i < NGX_HTTP_QQFAIL_SLOTS; i++) {
            if (!chunk->slot[i].in_use) {
                return &chunk->slot[i];
            }
        }

        last = &chunk->next;
    }

    chunk = ngx_slab_calloc_locked(shpool, sizeof(ngx_http_qqfail_chunk_sh_t));
    if (chunk == NULL) {
        return NULL;
    }

    *last = chunk;

    return &chunk->slot[0];
}


/*
 * Make addrs the address set of a server, supplied by its name "name".
 * Slots of addresses that stay keep their failure state; a freed slot is
 * reused only with a new id, so workers holding it see the change.
 * Room is made first: a set that does not fit leaves the previous one in
 * place.  Returns 1 if the set, the active name or the source changed, 0
 * if not, NGX_DECLINED if a newer generation publishes now, NGX_ERROR if
 * the zone is full.
 */

ngx_int_t
ngx_http_qqfail_zone_publish(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_server_t *server, ngx_uint_t name, ngx_addr_t *addrs,
    ngx_http_qqfail_geo_t *geo, ngx_uint_t naddrs, ngx_uint_t source,
    ngx_log_t *log)
{
    ngx_int_t                     rc;
    ngx_uint_t                    i, j, added, removed, found, full;
    ngx_http_qqfail_zone_usage_t  usage;
    ngx_slab_pool_t              *shpool;
    ngx_http_qqfail_chunk_sh_t   *chunk;
    ngx_http_qqfail_slot_sh_t    *slot;
    ngx_http_qqfail_server_sh_t  *ssh;

    shpool = qmcf->shpool;
    ssh = server->sh;

    added = 0;
    removed = 0;
    rc = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (qmcf->epoch && qmcf->epoch != qmcf->sh->epoch) {
        /* a worker of an older generation: its rules are gone */
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    if (ngx_http_qqfail_zone_room(qmcf, ssh, naddrs) != NGX_OK) {
        full = !qmcf->sh->full;
        qmcf->sh->full = 1;

        if (full) {
            ngx_http_qqfail_zone_usage(qmcf, &usage);
        }

        ngx_shmtx_unlock(&shpool->mutex);

        if (full) {
            ngx_http_qqfail_zone_usage_log(qmcf, log, &usage, server);
        }

        return NGX_ERROR;
    }

    for (chunk = ssh->chunks; chunk; chunk = chunk->next) {
        for (i = 0; i < NGX_HTTP_QQFAIL_SLOTS; i++) {
            slot = &chunk->slot[i];

            if (!slot->in_use) {
                continue;
            }

            found = 0;

            for (j = 0; j < naddrs; j++) {
                if (ngx_cmp_sockaddr(&slot->sockaddr.sockaddr, slot->socklen,
                                     addrs[j].sockaddr, addrs[j].socklen, 1)
                    == NGX_OK)
                {
                    found = 1;
                    break;
                }
            }

            if (!found) {
                slot->in_use = 0;
                slot->id++;
                removed++;
            }
        }
    }

    for (j = 0; j < naddrs; j++) {

        slot = ngx_http_qqfail_zone_find_slot(ssh, &addrs[j]);

        if (slot) {
            goto annotate;
        }

        /* never NULL: ngx_http_qqfail_zone_room() made the room */

        slot = ngx_http_qqfail_zone_free_slot(shpool, ssh);

        ngx_memzero(&slot->sockaddr, sizeof(ngx_http_qqfail_sockaddr_t));
        ngx_memcpy(&slot->sockaddr, addrs[j].sockaddr, addrs[j].socklen);
        slot->socklen = addrs[j].socklen;
        slot->text_len = (u_char) ngx_sock_ntop(addrs[j].sockaddr,
                                                addrs[j].socklen, slot->text,
                                                NGX_HTTP_QQFAIL_ADDR_STRLEN,
                                                1);
        slot->id++;
        slot->fails = 0;
        slot->accessed = 0;
        slot->checked = 0;
        slot->in_use = 1;

        added++;

    annotate:

        if (geo) {
            ngx_memcpy(slot->country, geo[j].country, 2);
            ngx_memcpy(slot->continent, geo[j].continent, 2);
            slot->asn = geo[j].asn;
            ngx_memcpy(slot->org, geo[j].org, NGX_HTTP_QQFAIL_ORG_LEN);

        } else {
            ngx_memzero(slot->country, 2);
            ngx_memzero(slot->continent, 2);
            slot->asn = 0;
            slot->org[0] = '\0';
        }
    }

    ssh->naddrs += added;
    ssh->naddrs -= removed;

    if (source != NGX_HTTP_QQFAIL_SOURCE_STALE) {
        ssh->quorum = server->upstream->quorum;
    }

    if (added || removed || ssh->active != name || ssh->source != source) {
        ssh->active = name;
        ssh->source = source;
        ngx_http_qqfail_zone_changed(ssh);
        rc = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (added || removed) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "qqfail: address set of \"%V\" changed: %ui added, "
                      "%ui removed, upstream \"%V\"",
                      &((ngx_http_qqfail_name_t *)
                        server->names.elts)[name].text,
                      added, removed, &server->upstream->upstream->host);
    }

    return rc;
}


/*
 * A server's address set, active name or source changed: its generation
 * and its upstream's change in step, and the change is logged in the
 * upstream's ring, so that each worker copies this server again, and no
 * other (ngx_http_qqfail_balancer.c).  Called with the zone locked.
 */

void
ngx_http_qqfail_zone_changed(ngx_http_qqfail_server_sh_t *ssh)
{
    ngx_http_qqfail_upstream_sh_t  *ush;

    ush = ssh->upstream;

    ssh->gen++;

    ush->changed[ush->gen % NGX_HTTP_QQFAIL_CHANGES] = ssh;
    ush->gen++;
}


/*
 * Enough slots for naddrs addresses; when the zone has no room, records
 * no running generation uses are freed and the allocation tried again.
 * Called with the zone locked.
 */

static ngx_int_t
ngx_http_qqfail_zone_room(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_server_sh_t *ssh, ngx_uint_t naddrs)
{
    ngx_uint_t                    room, gc;
    ngx_http_qqfail_chunk_sh_t   *chunk, *next, **last, **added;

    room = 0;
    last = &ssh->chunks;

    for (chunk = ssh->chunks; chunk; chunk = chunk->next) {
        room += NGX_HTTP_QQFAIL_SLOTS;
        last = &chunk->next;
    }

    added = last;
    gc = 0;

    while (room < naddrs) {
        chunk = ngx_slab_calloc_locked(qmcf->shpool,
                                       sizeof(ngx_http_qqfail_chunk_sh_t));

        if (chunk != NULL) {
            *last = chunk;
            last = &chunk->next;
            room += NGX_HTTP_QQFAIL_SLOTS;
            continue;
        }

        if (gc++ == 0) {
            ngx_http_qqfail_zone_gc(qmcf);
            continue;
        }

        /* what the zone lacks, for the message and the status */

        qmcf->sh->needed = ((naddrs - room + NGX_HTTP_QQFAIL_SLOTS - 1)
                            / NGX_HTTP_QQFAIL_SLOTS)
                           * sizeof(ngx_http_qqfail_chunk_sh_t);

        /* the chunks taken for this set go back: a smaller one may fit */

        for (chunk = *added; chunk; chunk = next) {
            next = chunk->next;
            ngx_slab_free_locked(qmcf->shpool, chunk);
        }

        *added = NULL;

        return NGX_ERROR;
    }

    if (*added) {
        qmcf->sh->full = 0;
        qmcf->sh->needed = 0;
    }

    return NGX_OK;
}


/*
 * At the start of a generation, in the master: the addresses a reused
 * zone keeps (or the state file gave) pass the new configuration's
 * filter at once, "qqfail_allow" rules, "qqfail_ipv6" and a replaced
 * GeoIP2 database alike.  A server none of whose addresses pass keeps
 * them, marked "refused", until the start-up pass has looked it up;
 * the second call ("empty") then takes them away if it found nothing
 * better.
 */

void
ngx_http_qqfail_zone_refilter(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_uint_t empty, ngx_log_t *log)
{
    ngx_uint_t                    i, j, k, n, m, active, source, why;
    ngx_http_qqfail_server_t     *server;
    ngx_http_qqfail_chunk_sh_t   *chunk;
    ngx_http_qqfail_srv_conf_t  **qscfp;
    ngx_http_qqfail_server_sh_t  *ssh;
    ngx_addr_t                    addrs[NGX_HTTP_QQFAIL_MAX_ADDRS];
    ngx_http_qqfail_geo_t         geo[NGX_HTTP_QQFAIL_MAX_ADDRS];
    ngx_http_qqfail_sockaddr_t    sa[NGX_HTTP_QQFAIL_MAX_ADDRS];

    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            ssh = server[j].sh;
            n = 0;

            ngx_shmtx_lock(&qmcf->shpool->mutex);

            active = ssh->active;
            source = ssh->source;

            for (chunk = ssh->chunks; chunk; chunk = chunk->next) {
                for (k = 0; k < NGX_HTTP_QQFAIL_SLOTS; k++) {
                    if (chunk->slot[k].in_use
                        && n < NGX_HTTP_QQFAIL_MAX_ADDRS)
                    {
                        sa[n] = chunk->slot[k].sockaddr;
                        addrs[n].sockaddr = &sa[n].sockaddr;
                        addrs[n].socklen = chunk->slot[k].socklen;
                        n++;
                    }
                }
            }

            ngx_shmtx_unlock(&qmcf->shpool->mutex);

            if (n == 0 || source == NGX_HTTP_QQFAIL_SOURCE_NONE) {
                continue;
            }

            m = ngx_http_qqfail_filter(qscfp[i], addrs, geo, n, &why);

            if (m < n) {
                ngx_log_error(NGX_LOG_WARN, log, 0,
                              "qqfail: %ui of %ui address(es) of \"%V\" "
                              "refused by the new configuration (%V), "
                              "upstream \"%V\"%s", n - m, n,
                              &((ngx_http_qqfail_name_t *)
                                server[j].names.elts)[active].text,
                              &ngx_http_qqfail_refusals[why],
                              &qscfp[i]->upstream->host,
                              (m == 0 && !empty)
                              ? ", looked up again before it is emptied" : "");

                if (m == 0 && !empty) {
                    server[j].refused = 1;
                    continue;
                }

            } else if (qmcf->geo_country == NULL && qmcf->geo_asn == NULL) {
                continue;
            }

            /* with a GeoIP2 database the annotations are renewed too */

            (void) ngx_http_qqfail_zone_publish(qmcf, &server[j], active,
                                          addrs, geo, m,
                                          m ? source
                                            : NGX_HTTP_QQFAIL_SOURCE_NONE,
                                          log);
        }
    }
}


ngx_uint_t
ngx_http_qqfail_zone_same(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_server_t *server, ngx_uint_t name, ngx_addr_t *addrs,
    ngx_uint_t naddrs)
{
    ngx_uint_t                    j, same;
    ngx_http_qqfail_server_sh_t  *ssh;

    ssh = server->sh;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    /* a set agreed by fewer providers than the quorum asks now is not */

    same = (ssh->active == name && ssh->naddrs == naddrs
            && ssh->source != NGX_HTTP_QQFAIL_SOURCE_NONE
            && ssh->quorum >= server->upstream->quorum);

    for (j = 0; same && j < naddrs; j++) {
        if (ngx_http_qqfail_zone_find_slot(ssh, &addrs[j]) == NULL) {
            same = 0;
        }
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    return same;
}


/*
 * A state change: logged once, and kept in the ring of recent events that
 * the status endpoint shows.  The log line ends with the upstream and the
 * server, if there is one.
 */

void
ngx_http_qqfail_event(ngx_http_qqfail_main_conf_t *qmcf, ngx_uint_t level,
    ngx_log_t *log, ngx_err_t err, ngx_http_qqfail_server_t *server,
    const char *fmt, ...)
{
    u_char                      *p;
    size_t                       len;
    va_list                      args;
    ngx_str_t                   *upstream, *name;
    ngx_http_qqfail_event_sh_t  *ev;
    u_char                       msg[1024];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    len = p - msg;

    upstream = NULL;
    name = NULL;

    if (server) {
        upstream = &server->upstream->upstream->host;
        name = &((ngx_http_qqfail_name_t *) server->names.elts)[0].text;

        ngx_log_error(level, log, err,
                      "qqfail: %*s, upstream \"%V\", server \"%V\"",
                      len, msg, upstream, name);

    } else {
        ngx_log_error(level, log, err, "qqfail: %*s", len, msg);
    }

    if (qmcf->sh == NULL || qmcf->sh->events == NULL) {
        return;
    }

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    ev = &qmcf->sh->events->event[qmcf->sh->events->nevents++
                                  % NGX_HTTP_QQFAIL_NEVENTS];

    ev->time = ngx_time();

    /* cut at a character boundary: the status page shows valid UTF-8 */

    ev->message_len = (u_char) ngx_http_qqfail_utf8_cut(msg, len,
                                           NGX_HTTP_QQFAIL_EVENT_MESSAGE - 1);
    ngx_memcpy(ev->message, msg, ev->message_len);

    if (server) {
        ev->upstream_len = (u_char) ngx_http_qqfail_utf8_cut(upstream->data,
                                          upstream->len,
                                          NGX_HTTP_QQFAIL_EVENT_UPSTREAM - 1);
        ngx_memcpy(ev->upstream, upstream->data, ev->upstream_len);

        ev->server_len = (u_char) ngx_http_qqfail_utf8_cut(name->data,
                                          name->len,
                                          NGX_HTTP_QQFAIL_EVENT_SERVER - 1);
        ngx_memcpy(ev->server, name->data, ev->server_len);

    } else {
        ev->upstream_len = 0;
        ev->server_len = 0;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/*
 * The lookup leader lease: returns NGX_OK if this process leads now,
 * NGX_DECLINED if another one does, NGX_ABORT if this process belongs to
 * an older generation (a reload happened) and must never lead again.
 *
 * A leader ("leading" set) only renews a lease it still holds: once its
 * lease ran out (it was stopped, or blocked in a slow system call) it has
 * lost it, even if no other process took it, and must stop at once; it
 * may acquire it again later like any other process, starting afresh.
 *
 * The lease outlives a late renewal: with "timer_resolution" timers fire
 * only when the timer signal comes, so a 250 ms tick may come a whole
 * resolution late, and the lease lasts three of them.  The clock is read
 * under the lock, not taken from the cache.
 */

ngx_int_t
ngx_http_qqfail_lease(ngx_http_qqfail_main_conf_t *qmcf, ngx_uint_t epoch,
    ngx_uint_t leading)
{
    ngx_int_t              rc;
    ngx_msec_t             now, lease;
    ngx_uint_t             ours, expired;
    ngx_core_conf_t       *ccf;
    ngx_http_qqfail_sh_t  *sh;

    sh = qmcf->sh;

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    lease = ngx_max(NGX_HTTP_QQFAIL_LEASE, 3 * ccf->timer_resolution);

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    now = ngx_http_qqfail_msec();

    ours = (sh->leader_pid == ngx_pid && sh->leader_epoch == epoch);
    expired = ((ngx_msec_int_t) (now - sh->lease_until) >= 0);

    if (sh->epoch != epoch) {
        if (sh->leader_pid == ngx_pid) {
            sh->leader_pid = 0;
        }

        rc = NGX_ABORT;

    } else if (leading ? (ours && !expired)
                       : (ours || sh->leader_pid == 0
                          || sh->leader_epoch != epoch || expired))
    {
        sh->leader_pid = ngx_pid;
        sh->leader_epoch = epoch;
        sh->lease_until = now + lease;
        rc = NGX_OK;

    } else {
        if (ours) {
            /* lost: let any process, this one included, acquire it anew */
            sh->leader_pid = 0;
        }

        rc = NGX_DECLINED;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    return rc;
}
