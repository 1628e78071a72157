
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


#define NGX_HTTP_QQFAIL_LEASE  700      /* ms; renewed every 250 ms */


static ngx_int_t ngx_http_qqfail_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_qqfail_zone_attach(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_log_t *log);
static ngx_int_t ngx_http_qqfail_zone_attach_providers(
    ngx_http_qqfail_main_conf_t *qmcf);
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

        if (ngx_http_qqfail_zone_attach(qmcf, shm_zone->shm.log) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_qqfail_state_load(qmcf, shm_zone->shm.log);
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

    if (ngx_http_qqfail_zone_attach(qmcf, shm_zone->shm.log) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_qqfail_state_load(qmcf, shm_zone->shm.log);
}


/*
 * Find or create the records of every configured upstream, server and
 * provider.  Records are keyed by strings, so a reload with the same
 * configuration finds the addresses the previous generation had.
 * Records of servers that are no longer configured are kept: workers of
 * the previous generation may still use them.
 */

static ngx_int_t
ngx_http_qqfail_zone_attach(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_log_t *log)
{
    u_char                         *p, *key;
    size_t                          len;
    ngx_uint_t                      i, j, k;
    ngx_slab_pool_t                *shpool;
    ngx_http_qqfail_sh_t           *sh;
    ngx_http_qqfail_name_t         *name;
    ngx_http_qqfail_server_t       *server;
    ngx_http_qqfail_srv_conf_t    **qscfp, *qscf;
    ngx_http_qqfail_server_sh_t    *ssh;
    ngx_http_qqfail_upstream_sh_t  *ush;

    shpool = qmcf->shpool;
    sh = qmcf->sh;

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_qqfail_zone_attach_providers(qmcf) != NGX_OK) {
        goto nomem;
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
                goto nomem;
            }

            ush->key_len = qscf->upstream->host.len;
            ush->next = sh->upstreams;
            sh->upstreams = ush;
        }

        qscf->sh = ush;

        server = qscf->servers->elts;

        for (j = 0; j < qscf->servers->nelts; j++) {

            /* key: "upstream name1:port name2:port ..." */

            len = qscf->upstream->host.len;
            name = server[j].names.elts;

            for (k = 0; k < server[j].names.nelts; k++) {
                len += 1 + name[k].host.len + sizeof(":65535") - 1;
            }

            key = ngx_alloc(len, log);
            if (key == NULL) {
                ngx_shmtx_unlock(&shpool->mutex);
                return NGX_ERROR;
            }

            p = ngx_cpymem(key, qscf->upstream->host.data,
                           qscf->upstream->host.len);

            for (k = 0; k < server[j].names.nelts; k++) {
                p = ngx_sprintf(p, " %V:%d", &name[k].host,
                                (int) name[k].port);
            }

            len = p - key;

            for (ssh = sh->servers; ssh; ssh = ssh->next) {
                if (ssh->key_len == len
                    && ngx_memcmp(ssh->key, key, len) == 0)
                {
                    break;
                }
            }

            if (ssh == NULL) {
                ssh = ngx_slab_calloc_locked(shpool,
                                          sizeof(ngx_http_qqfail_server_sh_t));
                if (ssh == NULL) {
                    ngx_free(key);
                    goto nomem;
                }

                ssh->key = ngx_http_qqfail_zone_strdup(shpool, key, len);
                if (ssh->key == NULL) {
                    ngx_free(key);
                    goto nomem;
                }

                ssh->key_len = len;
                ssh->nnames = server[j].names.nelts;
                ssh->next = sh->servers;
                sh->servers = ssh;
            }

            ngx_free(key);

            server[j].sh = ssh;
            server[j].upstream = qscf;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;

nomem:

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_EMERG, log, 0,
                  "qqfail: \"qqfail_zone\" %uzk is too small for this "
                  "configuration", qmcf->zone_size / 1024);

    return NGX_ERROR;
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
 * Slots of addresses that stay keep their failure state; a slot is never
 * freed, so workers may keep pointers to it.  Returns 1 if the set, the
 * active name or the source changed, 0 if not, NGX_ERROR if the zone is
 * full (as many addresses as fit are used).
 */

ngx_int_t
ngx_http_qqfail_zone_publish(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_http_qqfail_server_t *server, ngx_uint_t name, ngx_addr_t *addrs,
    ngx_http_qqfail_geo_t *geo, ngx_uint_t naddrs, ngx_uint_t source,
    ngx_log_t *log)
{
    ngx_int_t                     rc;
    ngx_uint_t                    i, j, added, removed, found;
    ngx_slab_pool_t              *shpool;
    ngx_http_qqfail_chunk_sh_t   *chunk;
    ngx_http_qqfail_slot_sh_t    *slot;
    ngx_http_qqfail_server_sh_t  *ssh;

    shpool = qmcf->shpool;
    ssh = server->sh;

    added = 0;
    removed = 0;
    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

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

        slot = ngx_http_qqfail_zone_free_slot(shpool, ssh);

        if (slot == NULL) {
            rc = NGX_ERROR;
            break;
        }

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

    if (added || removed || ssh->active != name || ssh->source != source) {
        ssh->active = name;
        ssh->source = source;
        ssh->gen++;
        server->upstream->sh->gen++;

        if (rc == NGX_OK) {
            rc = 1;
        }
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

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "qqfail: \"qqfail_zone\" is full, some addresses of "
                      "\"%V\" are not used, upstream \"%V\"",
                      &((ngx_http_qqfail_name_t *)
                        server->names.elts)[name].text,
                      &server->upstream->upstream->host);
    }

    return rc;
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

    same = (ssh->active == name && ssh->naddrs == naddrs
            && ssh->source != NGX_HTTP_QQFAIL_SOURCE_NONE);

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
    ev->message_len = (u_char) ngx_min(len, NGX_HTTP_QQFAIL_EVENT_MESSAGE - 1);
    ngx_memcpy(ev->message, msg, ev->message_len);

    if (server) {
        ev->upstream_len = (u_char) ngx_min(upstream->len,
                                            NGX_HTTP_QQFAIL_EVENT_UPSTREAM - 1);
        ngx_memcpy(ev->upstream, upstream->data, ev->upstream_len);

        ev->server_len = (u_char) ngx_min(name->len,
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
