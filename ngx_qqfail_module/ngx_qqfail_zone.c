
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"


#define NGX_QQFAIL_LEASE       700      /* ms; renewed every 250 ms */


typedef struct {
    ngx_uint_t                       mask;
    ngx_qqfail_server_sh_t         **slot;   /* by upstream and key */
    ngx_qqfail_server_sh_t         **named;  /* by upstream, active name */
} ngx_qqfail_zone_index_t;


/*
 * What the master's attach lacks in the zone (counted under the lock) and
 * what it allocated for it (without the lock): by names of a record, by
 * upstream, by server in the order of the configuration
 */

typedef struct {
    ngx_uint_t                       records[NGX_QQFAIL_MAX_NAMES];
    ngx_uint_t                       npages[NGX_QQFAIL_MAX_NAMES];
    void                            *pages[NGX_QQFAIL_MAX_NAMES];
    u_char                          *missing;    /* an upstream's record */
    ngx_qqfail_upstream_sh_t       **upstreams;
    ngx_uint_t                      *slots;      /* a set to inherit */
    ngx_qqfail_chunk_sh_t          **chunks;
} ngx_qqfail_zone_prep_t;


typedef struct {
    ngx_uint_t                       current;    /* records, this config */
    ngx_uint_t                       older;      /* kept for older ones */
    ngx_uint_t                       naddrs;
    size_t                           needed;
    size_t                           suggest;    /* kilobytes */
} ngx_qqfail_zone_usage_t;


static ngx_int_t ngx_qqfail_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_qqfail_zone_attach(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log);
static ngx_int_t ngx_qqfail_zone_attach_providers(
    ngx_qqfail_main_conf_t *qmcf);
static void ngx_qqfail_zone_usage(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_usage_t *u);
static void ngx_qqfail_zone_usage_log(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log, ngx_qqfail_zone_usage_t *u,
    ngx_qqfail_server_t *server);
static void ngx_qqfail_zone_scan(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_index_t *index, ngx_qqfail_zone_prep_t *prep);
static ngx_uint_t ngx_qqfail_zone_ready(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_prep_t *prep);
static ngx_int_t ngx_qqfail_zone_prepare(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_zone_prep_t *prep);
static void ngx_qqfail_zone_release(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_prep_t *prep);
static ngx_qqfail_upstream_sh_t *ngx_qqfail_zone_upstream(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_srv_conf_t *qscf);
static ngx_int_t ngx_qqfail_zone_index(
    ngx_qqfail_zone_index_t *index, ngx_uint_t n, ngx_log_t *log);
static ngx_int_t ngx_qqfail_zone_index_fill(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_zone_index_t *index,
    ngx_uint_t n);
static ngx_uint_t ngx_qqfail_zone_hash(ngx_qqfail_upstream_sh_t *ush,
    uint64_t hash);
static uint64_t ngx_qqfail_zone_key_hash(
    ngx_qqfail_server_t *server);
static uint64_t ngx_qqfail_zone_record_hash(
    ngx_qqfail_server_sh_t *ssh);
static void ngx_qqfail_zone_index_add(
    ngx_qqfail_zone_index_t *index, ngx_qqfail_server_sh_t *ssh);
static ngx_qqfail_server_sh_t *ngx_qqfail_zone_find(
    ngx_qqfail_zone_index_t *index, ngx_qqfail_upstream_sh_t *ush,
    ngx_qqfail_server_t *server);
static ngx_qqfail_server_sh_t *ngx_qqfail_zone_best(
    ngx_qqfail_zone_index_t *index, ngx_qqfail_upstream_sh_t *ush,
    ngx_qqfail_server_sh_t *ssh, ngx_qqfail_server_t *server,
    ngx_uint_t *best_name);
static void ngx_qqfail_zone_inherit(ngx_qqfail_server_t *server,
    ngx_qqfail_zone_index_t *index, ngx_qqfail_chunk_sh_t **more);
static void *ngx_qqfail_zone_gc(ngx_qqfail_main_conf_t *qmcf);
static void ngx_qqfail_zone_free(ngx_slab_pool_t *shpool,
    void *garbage);
static ngx_uint_t ngx_qqfail_zone_slots(ngx_qqfail_server_sh_t *ssh,
    ngx_qqfail_chunk_sh_t ***last);
static ngx_qqfail_chunk_sh_t *ngx_qqfail_zone_room(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_server_t *server,
    ngx_uint_t n, ngx_log_t *log);
static size_t ngx_qqfail_zone_fit(size_t size);
static void ngx_qqfail_zone_count(size_t n, size_t *bytes,
    ngx_uint_t *pages);
static size_t ngx_qqfail_zone_head(ngx_uint_t nnames);
static ngx_uint_t ngx_qqfail_zone_per_page(ngx_uint_t nnames);
static ngx_uint_t ngx_qqfail_zone_record_slots(ngx_uint_t nnames);
static void ngx_qqfail_zone_cells(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_prep_t *prep);
static ngx_qqfail_server_sh_t *ngx_qqfail_zone_record(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_server_t *server);
static ngx_qqfail_chunk_sh_t *ngx_qqfail_zone_chunk(
    ngx_slab_pool_t *shpool, ngx_uint_t n);
static ngx_qqfail_org_sh_t *ngx_qqfail_zone_orgs(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_geo_t *geo,
    ngx_uint_t naddrs);
static ngx_qqfail_org_sh_t *ngx_qqfail_zone_orgs_link(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_org_sh_t *orgs);
static ngx_uint_t ngx_qqfail_zone_org_known(ngx_qqfail_org_sh_t *o,
    uint32_t asn, u_char *org, size_t len);
static ngx_qqfail_slot_sh_t *ngx_qqfail_zone_find_slot(
    ngx_qqfail_server_sh_t *ssh, ngx_addr_t *addr);
static ngx_qqfail_slot_sh_t *ngx_qqfail_zone_free_slot(
    ngx_qqfail_server_sh_t *ssh);


static ngx_str_t  ngx_qqfail_zone_name = ngx_string("qqfail");


ngx_int_t
ngx_qqfail_zone_add(ngx_conf_t *cf, ngx_qqfail_main_conf_t *qmcf,
    void *tag)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_qqfail_zone_name,
                                     qmcf->zone_size, tag);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_qqfail_zone_init;
    shm_zone->data = qmcf;

    qmcf->shm_zone = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_qqfail_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                   len;
    ngx_slab_pool_t         *shpool;
    ngx_qqfail_sh_t         *sh;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    qmcf->shpool = shpool;

    /* a full zone is reported once per episode, with what fills it */
    shpool->log_nomem = 0;

    if (data) {
        /* reused across a reload: keep every address and counter */

        qmcf->sh = shpool->data;

        if (qmcf->sh->layout != NGX_QQFAIL_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "qqfail: the shared zone was made by another "
                          "version of the module; restart nginx, or "
                          "change the \"qqfail_zone\" size, to load it");
            return NGX_ERROR;
        }

        return ngx_qqfail_zone_attach(qmcf, shm_zone->shm.log);
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_qqfail_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    qmcf->sh = sh;

    sh->layout = NGX_QQFAIL_LAYOUT;

    sh->events = ngx_slab_calloc(shpool, sizeof(ngx_qqfail_events_sh_t));
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

    return ngx_qqfail_zone_attach(qmcf, shm_zone->shm.log);
}


/*
 * Find or create the records of every configured upstream and server, in
 * the master.  A reload with the same server finds the addresses the
 * previous generation had; an edited server line (a name added, removed
 * or reordered) inherits them from the record of a name it shares.
 * Records no running generation uses are freed first.
 *
 * Nothing is allocated with the zone locked: what is missing is counted
 * under the lock (ngx_qqfail_zone_scan()), allocated without it
 * (ngx_qqfail_zone_prepare()), and linked once the lock is taken
 * again and the count shows that nothing else is missing; a zone that
 * cannot hold it is left as it was.
 */

static ngx_int_t
ngx_qqfail_zone_attach(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log)
{
    void                      *garbage;
    ngx_uint_t                 i, j, n, epoch, nupstreams;
    ngx_slab_pool_t           *shpool;
    ngx_qqfail_sh_t           *sh;
    ngx_qqfail_server_t       *server;
    ngx_qqfail_zone_prep_t     prep;
    ngx_qqfail_zone_index_t    index;
    ngx_qqfail_zone_usage_t    usage;
    ngx_qqfail_srv_conf_t    **qscfp, *qscf;
    ngx_qqfail_server_sh_t    *ssh;
    ngx_qqfail_upstream_sh_t  *ush;

    shpool = qmcf->shpool;
    sh = qmcf->sh;

    /* the generation this configuration starts, if it starts */
    epoch = sh->epoch + 1;

    ngx_memzero(&index, sizeof(ngx_qqfail_zone_index_t));
    ngx_memzero(&prep, sizeof(ngx_qqfail_zone_prep_t));

    n = 0;
    nupstreams = qmcf->upstreams.nelts;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < nupstreams; i++) {
        n += qscfp[i]->servers->nelts;
    }

    prep.upstreams = ngx_calloc(nupstreams
                                * sizeof(ngx_qqfail_upstream_sh_t *)
                                + nupstreams + n * sizeof(ngx_uint_t)
                                + n * sizeof(ngx_qqfail_chunk_sh_t *)
                                + 1,
                                log);
    if (prep.upstreams == NULL) {
        return NGX_ERROR;
    }

    prep.chunks = (ngx_qqfail_chunk_sh_t **) &prep.upstreams[nupstreams];
    prep.slots = (ngx_uint_t *) &prep.chunks[n];
    prep.missing = (u_char *) &prep.slots[n];

    for ( ;; ) {

        /* finding records is linear in their number, not quadratic */

        if (ngx_qqfail_zone_index(&index, sh->nservers + n, log)
            != NGX_OK)
        {
            goto failed;
        }

        ngx_shmtx_lock(&shpool->mutex);

        garbage = ngx_qqfail_zone_gc(qmcf);

        if (ngx_qqfail_zone_attach_providers(qmcf) != NGX_OK) {
            goto nomem;
        }

        if (ngx_qqfail_zone_index_fill(qmcf, &index, n) != NGX_OK) {
            /* records were added meanwhile: a bigger index */
            ngx_shmtx_unlock(&shpool->mutex);
            ngx_qqfail_zone_free(shpool, garbage);
            continue;
        }

        ngx_qqfail_zone_scan(qmcf, &index, &prep);

        if (ngx_qqfail_zone_ready(qmcf, &prep)) {
            break;
        }

        ngx_shmtx_unlock(&shpool->mutex);

        ngx_qqfail_zone_free(shpool, garbage);

        if (ngx_qqfail_zone_prepare(qmcf, &prep) != NGX_OK) {
            ngx_shmtx_lock(&shpool->mutex);
            garbage = NULL;
            goto nomem;
        }
    }

    /* the zone is locked, and everything missing is allocated */

    ngx_qqfail_zone_cells(qmcf, &prep);

    n = 0;

    for (i = 0; i < nupstreams; i++) {
        qscf = qscfp[i];

        ush = ngx_qqfail_zone_upstream(qmcf, qscf);

        if (ush == NULL) {
            ush = prep.upstreams[i];
            prep.upstreams[i] = NULL;

            ush->next = sh->upstreams;
            sh->upstreams = ush;
        }

        ush->epoch = epoch;
        qscf->sh = ush;

        server = qscf->servers->elts;

        for (j = 0; j < qscf->servers->nelts; j++, n++) {

            ssh = ngx_qqfail_zone_find(&index, ush, &server[j]);

            if (ssh == NULL) {
                ssh = ngx_qqfail_zone_record(qmcf, &server[j]);

                ssh->upstream = ush;
                ssh->next = sh->servers;
                sh->servers = ssh;
                sh->nservers++;

                ngx_qqfail_zone_index_add(&index, ssh);
            }

            ssh->epoch = (uint32_t) epoch;

            server[j].sh = ssh;
            server[j].upstream = qscf;

            if (ssh->source == NGX_QQFAIL_SOURCE_NONE) {
                ngx_qqfail_zone_inherit(&server[j], &index,
                                        &prep.chunks[n]);
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_qqfail_zone_free(shpool, garbage);
    ngx_qqfail_zone_release(qmcf, &prep);
    ngx_free(index.slot);

    return NGX_OK;

nomem:

    ngx_qqfail_zone_usage(qmcf, &usage);

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_qqfail_zone_free(shpool, garbage);

    ngx_qqfail_zone_usage_log(qmcf, log, &usage, NULL);

failed:

    ngx_qqfail_zone_release(qmcf, &prep);

    if (index.slot) {
        ngx_free(index.slot);
    }

    return NGX_ERROR;
}


/*
 * What the records of a configuration lack in the zone, with the zone
 * locked: the upstreams and the servers without a record, the records
 * that the free ones do not cover, and the slots an edited server needs
 * to inherit a set (ngx_qqfail_zone_inherit()).
 */

static void
ngx_qqfail_zone_scan(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_index_t *index, ngx_qqfail_zone_prep_t *prep)
{
    void                      *cell;
    ngx_uint_t                 i, j, k, n, room, name;
    ngx_qqfail_server_t       *server;
    ngx_qqfail_chunk_sh_t    **last;
    ngx_qqfail_srv_conf_t    **qscfp;
    ngx_qqfail_server_sh_t    *ssh, *best;
    ngx_qqfail_upstream_sh_t  *ush;

    ngx_memzero(prep->records, sizeof(prep->records));

    n = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        ush = ngx_qqfail_zone_upstream(qmcf, qscfp[i]);
        prep->missing[i] = (ush == NULL);

        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++, n++) {
            k = server[j].names.nelts - 1;
            prep->slots[n] = 0;

            ssh = ush ? ngx_qqfail_zone_find(index, ush, &server[j])
                      : NULL;

            if (ssh == NULL) {
                prep->records[k]++;

                if (ush == NULL) {
                    /* a new upstream: no set to inherit */
                    continue;
                }

                room = ngx_qqfail_zone_record_slots(k + 1);

            } else if (ssh->source == NGX_QQFAIL_SOURCE_NONE) {
                room = ngx_qqfail_zone_slots(ssh, &last);

            } else {
                continue;
            }

            best = ngx_qqfail_zone_best(index, ush, ssh, &server[j],
                                        &name);

            if (best && best->naddrs > room) {
                prep->slots[n] = best->naddrs - room;
            }
        }
    }

    /* the free records count */

    for (k = 0; k < NGX_QQFAIL_MAX_NAMES; k++) {
        for (cell = qmcf->sh->cells[k];
             cell && prep->records[k];
             cell = *(void **) cell)
        {
            prep->records[k]--;
        }
    }
}


/* whether what ngx_qqfail_zone_scan() found missing is allocated */

static ngx_uint_t
ngx_qqfail_zone_ready(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_prep_t *prep)
{
    ngx_uint_t  i, k, n;

    for (k = 0; k < NGX_QQFAIL_MAX_NAMES; k++) {
        if (prep->records[k]
            > prep->npages[k] * ngx_qqfail_zone_per_page(k + 1))
        {
            return 0;
        }
    }

    n = 0;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        if (prep->missing[i] && prep->upstreams[i] == NULL) {
            return 0;
        }

        n += ((ngx_qqfail_srv_conf_t **) qmcf->upstreams.elts)[i]
                 ->servers->nelts;
    }

    for (i = 0; i < n; i++) {
        if (prep->slots[i] && prep->chunks[i] == NULL) {
            return 0;
        }
    }

    return 1;
}


/*
 * Allocate what ngx_qqfail_zone_scan() found missing and is not
 * yet; called with the zone unlocked
 */

static ngx_int_t
ngx_qqfail_zone_prepare(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_prep_t *prep)
{
    void                      *page;
    ngx_str_t                 *host;
    ngx_uint_t                 i, k, n;
    ngx_slab_pool_t           *shpool;
    ngx_qqfail_srv_conf_t    **qscfp;
    ngx_qqfail_upstream_sh_t  *ush;

    shpool = qmcf->shpool;

    /* records are cut from whole pages (ngx_qqfail_zone_cells()) */

    for (k = 0; k < NGX_QQFAIL_MAX_NAMES; k++) {
        while (prep->records[k]
               > prep->npages[k] * ngx_qqfail_zone_per_page(k + 1))
        {
            page = ngx_slab_alloc(shpool, ngx_pagesize);
            if (page == NULL) {
                return NGX_ERROR;
            }

            *(void **) page = prep->pages[k];
            prep->pages[k] = page;
            prep->npages[k]++;
        }
    }

    n = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        n += qscfp[i]->servers->nelts;

        if (!prep->missing[i] || prep->upstreams[i]) {
            continue;
        }

        host = &qscfp[i]->id;

        ush = ngx_slab_calloc(shpool, sizeof(ngx_qqfail_upstream_sh_t));
        if (ush == NULL) {
            return NGX_ERROR;
        }

        ush->key = ngx_slab_alloc(shpool, host->len + 1);
        if (ush->key == NULL) {
            ngx_slab_free(shpool, ush);
            return NGX_ERROR;
        }

        ngx_memcpy(ush->key, host->data, host->len);
        ush->key[host->len] = '\0';
        ush->key_len = host->len;

        prep->upstreams[i] = ush;
    }

    for (i = 0; i < n; i++) {
        if (prep->slots[i] && prep->chunks[i] == NULL) {
            prep->chunks[i] = ngx_qqfail_zone_chunk(shpool,
                                                    prep->slots[i]);
            if (prep->chunks[i] == NULL) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/* what was allocated and not used; called with the zone unlocked */

static void
ngx_qqfail_zone_release(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_prep_t *prep)
{
    ngx_uint_t        i, k, n;
    ngx_slab_pool_t  *shpool;
    ngx_qqfail_srv_conf_t **qscfp;

    shpool = qmcf->shpool;

    for (k = 0; k < NGX_QQFAIL_MAX_NAMES; k++) {
        ngx_qqfail_zone_free(shpool, prep->pages[k]);
    }

    n = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        n += qscfp[i]->servers->nelts;

        if (prep->upstreams[i]) {
            ngx_slab_free(shpool, prep->upstreams[i]->key);
            ngx_slab_free(shpool, prep->upstreams[i]);
        }
    }

    for (i = 0; i < n; i++) {
        if (prep->chunks[i]) {
            ngx_slab_free(shpool, prep->chunks[i]);
        }
    }

    ngx_free(prep->upstreams);
}


/* the record of an upstream; called with the zone locked */

static ngx_qqfail_upstream_sh_t *
ngx_qqfail_zone_upstream(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_srv_conf_t *qscf)
{
    ngx_qqfail_upstream_sh_t  *ush;

    for (ush = qmcf->sh->upstreams; ush; ush = ush->next) {
        if (ush->key_len == qscf->id.len
            && ngx_memcmp(ush->key, qscf->id.data,
                          ush->key_len) == 0)
        {
            return ush;
        }
    }

    return NULL;
}


/*
 * A process-local index of the records, for the master's attach: by
 * upstream and key, and by upstream and the name the addresses came from
 * (for inheriting).  Open addressing, at most half full.
 */

static ngx_int_t
ngx_qqfail_zone_index(ngx_qqfail_zone_index_t *index, ngx_uint_t n,
    ngx_log_t *log)
{
    ngx_uint_t  size;

    for (size = 16; size < 2 * n; size <<= 1) { /* void */ }

    if (index->slot && index->mask + 1 >= size) {
        return NGX_OK;
    }

    if (index->slot) {
        ngx_free(index->slot);
    }

    index->mask = size - 1;
    index->slot = ngx_alloc(2 * size * sizeof(ngx_qqfail_server_sh_t *),
                            log);
    if (index->slot == NULL) {
        return NGX_ERROR;
    }

    index->named = index->slot + size;

    return NGX_OK;
}


/*
 * The records into the index, with the zone locked; NGX_AGAIN: more than
 * it was made for, with the n records a configuration may add
 */

static ngx_int_t
ngx_qqfail_zone_index_fill(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_index_t *index, ngx_uint_t n)
{
    ngx_qqfail_server_sh_t  *ssh;

    if (2 * (qmcf->sh->nservers + n) > index->mask + 1) {
        return NGX_AGAIN;
    }

    ngx_memzero(index->slot,
                2 * (index->mask + 1) * sizeof(ngx_qqfail_server_sh_t *));

    for (ssh = qmcf->sh->servers; ssh; ssh = ssh->next) {
        ngx_qqfail_zone_index_add(index, ssh);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_qqfail_zone_hash(ngx_qqfail_upstream_sh_t *ush, uint64_t hash)
{
    return (ngx_uint_t) (hash ^ (hash >> 32)) ^ ((uintptr_t) ush >> 4);
}


/*
 * The 64-bit FNV-1a hash of a name "name:port" (or "ip:port"): what a
 * record keeps of its key, instead of the text.
 */

uint64_t
ngx_qqfail_zone_name_hash(u_char *data, size_t len)
{
    uint64_t  h;

    h = 0xcbf29ce484222325ULL;

    while (len--) {
        h ^= *data++;
        h *= 0x100000001b3ULL;
    }

    return h;
}


static uint64_t
ngx_qqfail_zone_key_hash(ngx_qqfail_server_t *server)
{
    uint64_t            h;
    ngx_uint_t          n;
    ngx_qqfail_name_t  *name;

    h = 0;
    name = server->names.elts;

    for (n = 0; n < server->names.nelts; n++) {
        h = h * 0x100000001b3ULL
            ^ ngx_qqfail_zone_name_hash(name[n].key.data,
                                        name[n].key.len);
    }

    return h;
}


static uint64_t
ngx_qqfail_zone_record_hash(ngx_qqfail_server_sh_t *ssh)
{
    uint64_t    h;
    ngx_uint_t  n;

    h = 0;

    for (n = 0; n < ssh->nnames; n++) {
        h = h * 0x100000001b3ULL ^ ssh->names[n].hash;
    }

    return h;
}


static void
ngx_qqfail_zone_index_add(ngx_qqfail_zone_index_t *index,
    ngx_qqfail_server_sh_t *ssh)
{
    ngx_uint_t  h;

    h = ngx_qqfail_zone_hash(ssh->upstream,
                             ngx_qqfail_zone_record_hash(ssh));

    while (index->slot[h & index->mask]) {
        h++;
    }

    index->slot[h & index->mask] = ssh;

    /* the name that supplied the addresses: what an edited line shares */

    if (ssh->source == NGX_QQFAIL_SOURCE_NONE || ssh->naddrs == 0
        || ssh->active >= ssh->nnames)
    {
        return;
    }

    h = ngx_qqfail_zone_hash(ssh->upstream,
                             ssh->names[ssh->active].hash);

    while (index->named[h & index->mask]) {
        h++;
    }

    index->named[h & index->mask] = ssh;
}


static ngx_qqfail_server_sh_t *
ngx_qqfail_zone_find(ngx_qqfail_zone_index_t *index,
    ngx_qqfail_upstream_sh_t *ush, ngx_qqfail_server_t *server)
{
    ngx_uint_t               h, n;
    ngx_qqfail_name_t       *name;
    ngx_qqfail_server_sh_t  *ssh;

    name = server->names.elts;

    h = ngx_qqfail_zone_hash(ush,
                             ngx_qqfail_zone_key_hash(server));

    for ( ;; ) {
        ssh = index->slot[h++ & index->mask];

        if (ssh == NULL) {
            return NULL;
        }

        if (ssh->upstream != ush || ssh->nnames != server->names.nelts) {
            continue;
        }

        for (n = 0; n < server->names.nelts; n++) {
            if (ssh->names[n].hash
                != ngx_qqfail_zone_name_hash(name[n].key.data,
                                             name[n].key.len))
            {
                break;
            }
        }

        if (n == server->names.nelts) {
            return ssh;
        }
    }
}


/*
 * What fills the zone, for the message that says it is full: counted
 * with the zone locked, logged once it is unlocked.
 */

static void
ngx_qqfail_zone_usage(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_usage_t *u)
{
    ngx_qqfail_sh_t         *sh;
    ngx_qqfail_server_sh_t  *ssh;

    sh = qmcf->sh;
    ngx_memzero(u, sizeof(ngx_qqfail_zone_usage_t));

    for (ssh = sh->servers; ssh; ssh = ssh->next) {
        if (ssh->epoch >= sh->epoch) {
            u->current++;

        } else {
            u->older++;
        }

        u->naddrs += ssh->naddrs;
    }

    u->needed = sh->needed;
    u->suggest = ngx_qqfail_zone_suggest(qmcf);
}


static void
ngx_qqfail_zone_usage_log(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log, ngx_qqfail_zone_usage_t *u,
    ngx_qqfail_server_t *server)
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
                  &((ngx_qqfail_name_t *) server->names.elts)[0].text,
                  &server->upstream->name, u->needed, u->suggest);
}


/*
 * A zone size that would hold what is stored and what did not fit, with
 * a quarter to spare, in kilobytes.  Called with the zone locked.
 */

size_t
ngx_qqfail_zone_suggest(ngx_qqfail_main_conf_t *qmcf)
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
 * Whether a configured "qqfail_zone" holds the configuration: the zone
 * header, the upstream records and a record of every server with room for
 * its first address, in the slab pages they take; and, a warning only,
 * the independence check's report of every server with two names or more
 * that are not IP literals (without room, the check's reports are
 * missing, nothing else is).  Without it a start
 * or "nginx -t" fails later, when the zone is made, without saying where
 * the size was set or how much is needed.  Addresses beyond the first of
 * a server and the records kept for older generations during a reload
 * need more: the suggested size leaves that room.
 */

ngx_int_t
ngx_qqfail_zone_check(ngx_conf_t *cf, ngx_qqfail_main_conf_t *qmcf)
{
    size_t                   need, usable, bytes[32];
    ngx_uint_t               i, j, k, n, pages, reports;
    ngx_uint_t               records[NGX_QQFAIL_MAX_NAMES];
    ngx_qqfail_server_t     *server;
    ngx_qqfail_srv_conf_t  **qscfp;

    if (qmcf->zone_where.file == NULL) {
        /* sized from the configuration */
        return NGX_OK;
    }

    ngx_memzero(bytes, sizeof(bytes));
    ngx_memzero(records, sizeof(records));

    pages = 0;
    reports = 0;
    qscfp = qmcf->upstreams.elts;

    /* bytes by slab size class (its shift), whole pages apart */

    ngx_qqfail_zone_count(sizeof(ngx_qqfail_sh_t), bytes, &pages);
    ngx_qqfail_zone_count(sizeof(ngx_qqfail_events_sh_t), bytes,
                          &pages);
    ngx_qqfail_zone_count(sizeof(" in qqfail zone \"qqfail\""), bytes,
                          &pages);

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        ngx_qqfail_zone_count(sizeof(ngx_qqfail_upstream_sh_t),
                              bytes, &pages);
        ngx_qqfail_zone_count(qscfp[i]->id.len + 1, bytes,
                              &pages);

        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            records[server[j].names.nelts - 1]++;

            /* the independence check's report */

            reports += (ngx_qqfail_check_named(&server[j]) > 1);
        }
    }

    /* records: whole pages of them (ngx_qqfail_zone_record) */

    for (k = 0; k < NGX_QQFAIL_MAX_NAMES; k++) {
        n = ngx_pagesize / ngx_qqfail_zone_record_size(k + 1);
        pages += (records[k] + n - 1) / n;
    }

    for (k = 0; k < 32; k++) {
        pages += (bytes[k] + ngx_pagesize - 1) / ngx_pagesize;
    }

    need = pages * ngx_pagesize;

    /* what ngx_slab_init() leaves for pages: a descriptor each, and one */

    usable = (qmcf->zone_size - sizeof(ngx_slab_pool_t)
              - 16 * (sizeof(ngx_slab_page_t) + sizeof(ngx_slab_stat_t)))
             / (ngx_pagesize + sizeof(ngx_slab_page_t));
    usable = (usable ? usable - 1 : 0) * ngx_pagesize;

    if (need > usable) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "qqfail: \"qqfail_zone\" %uzk is too small for the "
                      "%ui configured server(s): their records alone take "
                      "%uzk; set it to at least %uzk, or remove it to size "
                      "the zone from the configuration, in %s:%ui",
                      qmcf->zone_size / 1024, qmcf->nservers, need / 1024,
                      ngx_align(2 * need + 256 * 1024, 1024 * 1024) / 1024,
                      qmcf->zone_where.file, qmcf->zone_where.line);
        return NGX_ERROR;
    }

    /* the reports, in pages of their own size class */

    n = ngx_pagesize / ngx_qqfail_zone_fit(sizeof(ngx_qqfail_check_sh_t));
    need += (reports + n - 1) / n * ngx_pagesize;

    if (need > usable) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "qqfail: \"qqfail_zone\" %uzk holds the records of "
                      "the %ui configured server(s) but not the "
                      "independence check's reports of the %ui with "
                      "aliases, %uzk in all: the reports that do not fit "
                      "are missing from the status page; set it to at "
                      "least %uzk, in %s:%ui",
                      qmcf->zone_size / 1024, qmcf->nservers, reports,
                      need / 1024,
                      ngx_align(2 * need + 256 * 1024, 1024 * 1024) / 1024,
                      qmcf->zone_where.file, qmcf->zone_where.line);
    }

    return NGX_OK;
}


/*
 * The names of a server that have a zone (not IP literals): the
 * independence check runs for two or more, and the zone keeps its report
 */

ngx_uint_t
ngx_qqfail_check_named(ngx_qqfail_server_t *server)
{
    ngx_uint_t          k, n;
    ngx_qqfail_name_t  *name;

    name = server->names.elts;
    n = 0;

    for (k = 0; k < server->names.nelts; k++) {
        if (!name[k].literal) {
            n++;
        }
    }

    return n;
}

static void
ngx_qqfail_zone_count(size_t n, size_t *bytes, ngx_uint_t *pages)
{
    size_t      size;
    ngx_uint_t  shift;

    size = ngx_qqfail_zone_fit(n);

    if (size >= ngx_pagesize) {
        *pages += size / ngx_pagesize;
        return;
    }

    for (shift = 0; ((size_t) 1 << shift) < size; shift++) { /* void */ }

    bytes[shift] += size;
}


/*
 * A server whose record has no addresses (a new record: the server line
 * was edited) takes them from the record of another server of the same
 * upstream whose addresses came from one of its names: during an outage,
 * adding an alias or removing a dead one must not cost the last good
 * addresses.  The best of its names wins.  Called with the zone locked;
 * "ssh" is the server's record, NULL if it has none yet.
 */

static ngx_qqfail_server_sh_t *
ngx_qqfail_zone_best(ngx_qqfail_zone_index_t *index,
    ngx_qqfail_upstream_sh_t *ush, ngx_qqfail_server_sh_t *ssh,
    ngx_qqfail_server_t *server, ngx_uint_t *best_name)
{
    uint64_t                 hash;
    ngx_uint_t               n, h;
    ngx_qqfail_name_t       *name;
    ngx_qqfail_server_sh_t  *old;

    name = server->names.elts;

    /* the best name first: the first record its addresses came from wins */

    for (n = 0; n < server->names.nelts; n++) {
        hash = ngx_qqfail_zone_name_hash(name[n].key.data,
                                         name[n].key.len);
        h = ngx_qqfail_zone_hash(ush, hash);

        for ( ;; ) {
            old = index->named[h++ & index->mask];

            if (old == NULL) {
                break;
            }

            if (old == ssh || old->upstream != ush
                || old->source == NGX_QQFAIL_SOURCE_NONE
                || old->naddrs == 0
                || old->active >= old->nnames
                || old->names[old->active].hash != hash)
            {
                continue;
            }

            *best_name = n;
            return old;
        }
    }

    return NULL;
}


static void
ngx_qqfail_zone_inherit(ngx_qqfail_server_t *server,
    ngx_qqfail_zone_index_t *index, ngx_qqfail_chunk_sh_t **more)
{
    ngx_uint_t               n, k, best_name;
    ngx_qqfail_slots_t       it;
    ngx_qqfail_chunk_sh_t  **last;
    ngx_qqfail_slot_sh_t    *slot, *to;
    ngx_qqfail_server_sh_t  *ssh, *best;

    ssh = server->sh;

    best = ngx_qqfail_zone_best(index, ssh->upstream, ssh, server,
                                &best_name);
    if (best == NULL) {
        return;
    }

    /*
     * room for the set, without freeing records: the index points to them;
     * the chunk made for it by ngx_qqfail_zone_prepare(), or as many
     * as fit, the lookups complete the set
     */

    if (ngx_qqfail_zone_slots(ssh, &last) < best->naddrs && *more) {
        *last = *more;
        *more = NULL;
    }

    for (slot = ngx_qqfail_slot_first(best, &it);
         slot;
         slot = ngx_qqfail_slot_next(&it))
    {
        if (!slot->in_use) {
            continue;
        }

        to = ngx_qqfail_zone_free_slot(ssh);
        if (to == NULL) {
            break;
        }

        k = to->id;
        *to = *slot;
        to->id = (uint32_t) k + 1;
        to->fails = 0;
        to->conns = 0;
        to->accessed = 0;
        to->checked = 0;

        ssh->naddrs++;
    }

    if (ssh->naddrs == 0) {
        return;
    }

    /* the state of every name the two servers share */

    for (n = 0; n < ssh->nnames; n++) {
        for (k = 0; k < best->nnames; k++) {
            if (ssh->names[n].hash == best->names[k].hash) {
                ssh->names[n] = best->names[k];
                break;
            }
        }
    }

    ssh->active = (u_char) best_name;
    ssh->source = best->source;
    ssh->quorum = best->quorum;
    ssh->last_success = best->last_success;
    ssh->stale_since = best->stale_since;
    ssh->next_lookup = best->next_lookup;

    ngx_qqfail_zone_changed(ssh);
}


/*
 * Free the records that no running generation uses: those of servers and
 * upstreams configured only by generations older than the oldest worker
 * still running.  Called with the zone locked: a server record goes back
 * to the free records at once, what was allocated apart (more chunks,
 * an upstream and its key) is unlinked and returned, linked by its first
 * word, for ngx_qqfail_zone_free() once the zone is unlocked.
 */

static void *
ngx_qqfail_zone_gc(ngx_qqfail_main_conf_t *qmcf)
{
    void                      *garbage;
    ngx_uint_t                 i, k, oldest;
    ngx_qqfail_sh_t           *sh;
    ngx_qqfail_chunk_sh_t     *chunk, *next;
    ngx_qqfail_server_sh_t    *ssh, **sshp;
    ngx_qqfail_upstream_sh_t  *ush, **ushp;

    sh = qmcf->sh;
    garbage = NULL;

    if (sh->nprocs > NGX_QQFAIL_MAX_PROCS) {
        /* a worker could not register: who uses what is unknown */
        return NULL;
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

        /* the first chunk is part of the record */

        for (chunk = ssh->chunks->next; chunk; chunk = next) {
            next = chunk->next;
            *(void **) chunk = garbage;
            garbage = chunk;
        }

        /* the independence report, if any */

        if (ssh->check) {
            *(void **) ssh->check = garbage;
            garbage = ssh->check;
            ssh->check = NULL;
        }

        k = ssh->nnames - 1;
        *(void **) ssh = sh->cells[k];
        sh->cells[k] = ssh;
        sh->nservers--;
    }

    for (ushp = &sh->upstreams; *ushp; /* void */ ) {
        ush = *ushp;

        if (ush->epoch >= oldest) {
            ushp = &ush->next;
            continue;
        }

        *ushp = ush->next;

        /* a key takes at least shpool->min_size bytes, room for the link */

        *(void **) ush->key = garbage;
        *(void **) ush = ush->key;
        garbage = ush;
    }

    return garbage;
}


/* what the garbage collection unlinked; called with the zone unlocked */

static void
ngx_qqfail_zone_free(ngx_slab_pool_t *shpool, void *garbage)
{
    void  *next;

    while (garbage) {
        next = *(void **) garbage;
        ngx_slab_free(shpool, garbage);
        garbage = next;
    }
}


/*
 * A worker says which generation it belongs to (epoch 0: it exits), so
 * that records it may still use are not freed under it.
 */

void
ngx_qqfail_zone_register(ngx_qqfail_main_conf_t *qmcf,
    ngx_uint_t epoch)
{
    ngx_uint_t        i;
    ngx_qqfail_sh_t  *sh;

    sh = qmcf->sh;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    for (i = 0; i < sh->nprocs && i < NGX_QQFAIL_MAX_PROCS; i++) {
        if (sh->procs[i].pid == ngx_pid) {
            break;
        }
    }

    if (epoch == 0) {
        if (i < sh->nprocs && i < NGX_QQFAIL_MAX_PROCS) {
            sh->procs[i] = sh->procs[--sh->nprocs];
        }

    } else if (i < sh->nprocs && i < NGX_QQFAIL_MAX_PROCS) {
        sh->procs[i].epoch = epoch;

    } else if (sh->nprocs < NGX_QQFAIL_MAX_PROCS) {
        sh->procs[sh->nprocs].pid = ngx_pid;
        sh->procs[sh->nprocs].epoch = epoch;
        sh->nprocs++;

    } else if (sh->nprocs == NGX_QQFAIL_MAX_PROCS) {
        /* more workers than places: records are never freed again */
        sh->nprocs++;
        ngx_shmtx_unlock(&qmcf->shpool->mutex);

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "qqfail: more than %d worker processes, records of "
                      "servers no longer configured will not be freed",
                      NGX_QQFAIL_MAX_PROCS);
        return;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


static ngx_int_t
ngx_qqfail_zone_attach_providers(ngx_qqfail_main_conf_t *qmcf)
{
    ngx_uint_t                 i, j, k, used;
    ngx_qqfail_sh_t           *sh;
    ngx_qqfail_provider_t     *pr;
    ngx_qqfail_provider_sh_t  *psh;

    sh = qmcf->sh;
    pr = qmcf->providers.elts;

    /*
     * a provider keeps its record across reloads, found by name, so that
     * workers of the previous generation keep counting into the right one
     */

    for (i = 0; i < qmcf->providers.nelts; i++) {
        psh = NULL;

        for (j = 0; j < NGX_QQFAIL_MAX_PROVIDERS; j++) {
            if (sh->providers[j].name_len == pr[i].name.len
                && ngx_memcmp(sh->providers[j].name, pr[i].name.data,
                              pr[i].name.len) == 0)
            {
                psh = &sh->providers[j];
                break;
            }
        }

        /* a free record, else one of a provider no longer configured */

        for (j = 0; psh == NULL && j < NGX_QQFAIL_MAX_PROVIDERS; j++) {
            if (sh->providers[j].name_len == 0) {
                psh = &sh->providers[j];
            }
        }

        for (j = 0; psh == NULL && j < NGX_QQFAIL_MAX_PROVIDERS; j++) {
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
            ngx_memzero(psh, sizeof(ngx_qqfail_provider_sh_t));
            ngx_memcpy(psh->name, pr[i].name.data, pr[i].name.len);
            psh->name_len = pr[i].name.len;
        }

        pr[i].sh = psh;
    }

    return NGX_OK;
}


static ngx_qqfail_slot_sh_t *
ngx_qqfail_zone_find_slot(ngx_qqfail_server_sh_t *ssh,
    ngx_addr_t *addr)
{
    ngx_qqfail_slots_t     it;
    ngx_qqfail_slot_sh_t  *slot;

    for (slot = ngx_qqfail_slot_first(ssh, &it);
         slot;
         slot = ngx_qqfail_slot_next(&it))
    {
        if (slot->in_use
            && ngx_cmp_sockaddr(&slot->sockaddr.sockaddr, slot->socklen,
                                addr->sockaddr, addr->socklen, 1)
               == NGX_OK)
        {
            return slot;
        }
    }

    return NULL;
}


static ngx_qqfail_slot_sh_t *
ngx_qqfail_zone_free_slot(ngx_qqfail_server_sh_t *ssh)
{
    ngx_qqfail_slots_t     it;
    ngx_qqfail_slot_sh_t  *slot;

    for (slot = ngx_qqfail_slot_first(ssh, &it);
         slot;
         slot = ngx_qqfail_slot_next(&it))
    {
        if (!slot->in_use) {
            return slot;
        }
    }

    return NULL;
}


/*
 * What the slab allocator takes for an allocation of "size" bytes: a
 * power of two up to half a page, whole pages above.  Records and chunks
 * are made that big, and the rest holds more slots instead of nothing.
 */

static size_t
ngx_qqfail_zone_fit(size_t size)
{
    size_t  fit;

    if (size > ngx_pagesize / 2) {
        return ngx_align(size, ngx_pagesize);
    }

    for (fit = 8; fit < size; fit <<= 1) { /* void */ }

    return fit;
}


/* a record and its names, up to its first chunk */

static size_t
ngx_qqfail_zone_head(ngx_uint_t nnames)
{
    return ngx_align(sizeof(ngx_qqfail_server_sh_t)
                     + nnames * sizeof(ngx_qqfail_name_sh_t),
                     sizeof(void *));
}


/*
 * The bytes a record of a server with nnames names takes, with its first
 * slot: every server has room for an address from the start, so that
 * when the zone is full a small set (an IP-literal alias) still fits.
 * Records are cut from whole pages at this exact size, not rounded up
 * to the slab's power of two (216 bytes with two names, not 256).
 */

size_t
ngx_qqfail_zone_record_size(ngx_uint_t nnames)
{
    return ngx_align(ngx_qqfail_zone_head(nnames)
                     + offsetof(ngx_qqfail_chunk_sh_t, slot)
                     + sizeof(ngx_qqfail_slot_sh_t),
                     sizeof(void *));
}


/* the records a page holds, and the slots of a new record */

static ngx_uint_t
ngx_qqfail_zone_per_page(ngx_uint_t nnames)
{
    return ngx_pagesize / ngx_qqfail_zone_record_size(nnames);
}


static ngx_uint_t
ngx_qqfail_zone_record_slots(ngx_uint_t nnames)
{
    return (ngx_qqfail_zone_record_size(nnames)
            - ngx_qqfail_zone_head(nnames)
            - offsetof(ngx_qqfail_chunk_sh_t, slot))
           / sizeof(ngx_qqfail_slot_sh_t);
}


/*
 * The pages ngx_qqfail_zone_prepare() allocated, cut into free
 * records.  Called with the zone locked.
 */

static void
ngx_qqfail_zone_cells(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_zone_prep_t *prep)
{
    u_char     *page;
    size_t      size;
    ngx_uint_t  k, n;

    for (k = 0; k < NGX_QQFAIL_MAX_NAMES; k++) {
        size = ngx_qqfail_zone_record_size(k + 1);

        while (prep->pages[k]) {
            page = prep->pages[k];
            prep->pages[k] = *(void **) page;
            prep->npages[k]--;

            for (n = ngx_pagesize / size; n--; /* void */) {
                *(void **) (page + n * size) = qmcf->sh->cells[k];
                qmcf->sh->cells[k] = page + n * size;
            }
        }
    }
}


/*
 * A record: a free one of the same size, the pages of free ones made by
 * ngx_qqfail_zone_cells(), as ngx_qqfail_zone_scan() counted.
 * Freed records go back to that list (ngx_qqfail_zone_gc), their
 * pages stay records.  Called with the zone locked.
 */

static ngx_qqfail_server_sh_t *
ngx_qqfail_zone_record(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server)
{
    size_t                   size, head;
    ngx_uint_t               n, k;
    ngx_qqfail_name_t       *name;
    ngx_qqfail_server_sh_t  *ssh;

    k = server->names.nelts - 1;
    head = ngx_qqfail_zone_head(server->names.nelts);
    size = ngx_qqfail_zone_record_size(server->names.nelts);

    ssh = qmcf->sh->cells[k];
    qmcf->sh->cells[k] = *(void **) ssh;

    ngx_memzero(ssh, size);

    ssh->names = (ngx_qqfail_name_sh_t *) (ssh + 1);
    ssh->nnames = (u_char) server->names.nelts;

    name = server->names.elts;

    for (n = 0; n < server->names.nelts; n++) {
        ssh->names[n].hash = ngx_qqfail_zone_name_hash(name[n].key.data,
                                                       name[n].key.len);
    }

    ssh->chunks = (ngx_qqfail_chunk_sh_t *) ((u_char *) ssh + head);
    ssh->chunks->nslots = ngx_qqfail_zone_record_slots(ssh->nnames);

    return ssh;
}


/*
 * More slots: at least n, as many as the allocation holds.  Called with
 * the zone unlocked.
 */

static ngx_qqfail_chunk_sh_t *
ngx_qqfail_zone_chunk(ngx_slab_pool_t *shpool, ngx_uint_t n)
{
    size_t                  size;
    ngx_qqfail_chunk_sh_t  *chunk;

    size = ngx_qqfail_zone_fit(offsetof(ngx_qqfail_chunk_sh_t, slot)
                               + n * sizeof(ngx_qqfail_slot_sh_t));

    chunk = ngx_slab_calloc(shpool, size);
    if (chunk == NULL) {
        return NULL;
    }

    chunk->nslots = (size - offsetof(ngx_qqfail_chunk_sh_t, slot))
                    / sizeof(ngx_qqfail_slot_sh_t);

    return chunk;
}


/*
 * The AS organisation names, one per AS number for the whole zone: linked
 * under the lock, never freed (at most NGX_QQFAIL_MAX_ORGS), so that
 * ngx_qqfail_zone_org() reads them without it.       A new name for a
 * number goes first and hides the older one.
 *
 * The names of a set that the zone lacks are allocated before the lock is
 * taken (ngx_qqfail_zone_orgs()), linked under it
 * (ngx_qqfail_zone_orgs_link()); what another process linked
 * meanwhile is freed after.
 */

static ngx_qqfail_org_sh_t *
ngx_qqfail_zone_orgs(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_geo_t *geo, ngx_uint_t naddrs)
{
    size_t                len;
    ngx_uint_t            j;
    ngx_qqfail_org_sh_t  *o, *orgs;

    orgs = NULL;

    for (j = 0; geo && j < naddrs; j++) {
        len = ngx_strnlen(geo[j].org, NGX_QQFAIL_ORG_LEN - 1);

        if (geo[j].asn == 0 || len == 0
            || qmcf->sh->norgs >= NGX_QQFAIL_MAX_ORGS
            || ngx_qqfail_zone_org_known(
                   qmcf->sh->orgs[geo[j].asn % NGX_QQFAIL_ORG_HASH],
                   geo[j].asn, geo[j].org, len)
            || ngx_qqfail_zone_org_known(orgs, geo[j].asn, geo[j].org,
                                         len))
        {
            continue;
        }

        o = ngx_slab_alloc(qmcf->shpool,
                           offsetof(ngx_qqfail_org_sh_t, data) + len);
        if (o == NULL) {
            /* the zone is full: the name is not shown */
            break;
        }

        o->asn = geo[j].asn;
        o->len = (u_char) len;
        ngx_memcpy(o->data, geo[j].org, len);

        o->next = orgs;
        orgs = o;
    }

    return orgs;
}


/* called with the zone locked; returns the names not linked */

static ngx_qqfail_org_sh_t *
ngx_qqfail_zone_orgs_link(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_org_sh_t *orgs)
{
    ngx_qqfail_sh_t      *sh;
    ngx_qqfail_org_sh_t  *o, *next, *unused, **bucket;

    sh = qmcf->sh;
    unused = NULL;

    for (o = orgs; o; o = next) {
        next = o->next;

        bucket = &sh->orgs[o->asn % NGX_QQFAIL_ORG_HASH];

        if (sh->norgs >= NGX_QQFAIL_MAX_ORGS
            || ngx_qqfail_zone_org_known(*bucket, o->asn, o->data,
                                         o->len))
        {
            o->next = unused;
            unused = o;
            continue;
        }

        o->next = *bucket;

        ngx_memory_barrier();

        *bucket = o;
        sh->norgs++;
    }

    return unused;
}


/* whether the first name of an AS number in a list is "org" */

static ngx_uint_t
ngx_qqfail_zone_org_known(ngx_qqfail_org_sh_t *o, uint32_t asn,
    u_char *org, size_t len)
{
    for ( /* void */ ; o; o = o->next) {
        if (o->asn == asn) {
            return o->len == len && ngx_memcmp(o->data, org, len) == 0;
        }
    }

    return 0;
}


void
ngx_qqfail_zone_org(ngx_qqfail_main_conf_t *qmcf, uint32_t asn,
    ngx_str_t *org)
{
    ngx_qqfail_org_sh_t  *o;

    if (asn && qmcf->sh) {
        for (o = qmcf->sh->orgs[asn % NGX_QQFAIL_ORG_HASH];
             o;
             o = o->next)
        {
            if (o->asn == asn) {
                org->data = o->data;
                org->len = o->len;
                return;
            }
        }
    }

    org->data = (u_char *) "";
    org->len = 0;
}


/* "ip:port" of an address, into NGX_QQFAIL_ADDR_STRLEN bytes */

/*
 * A reader's copy of n servers' records, taken under the lock in one go
 * (the state file's save): what it writes, nothing it could follow into
 * the zone
 */

void
ngx_qqfail_zone_copy(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server, ngx_uint_t n, ngx_qqfail_server_copy_t *copy)
{
    ngx_uint_t               i;
    ngx_qqfail_slots_t       it;
    ngx_qqfail_slot_sh_t    *slot;
    ngx_qqfail_server_sh_t  *ssh;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    for (i = 0; i < n; i++) {
        ssh = server[i].sh;

        copy[i].active = ssh->active;
        copy[i].source = ssh->source;
        copy[i].naddrs = ssh->naddrs;
        copy[i].last_success = ssh->last_success;
        copy[i].nslots = 0;

        for (slot = ngx_qqfail_slot_first(ssh, &it);
             slot && copy[i].nslots < NGX_QQFAIL_MAX_ADDRS;
             slot = ngx_qqfail_slot_next(&it))
        {
            if (slot->in_use) {
                copy[i].slots[copy[i].nslots++] = *slot;
            }
        }
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


size_t
ngx_qqfail_slot_text(ngx_qqfail_slot_sh_t *slot, u_char *text)
{
    return ngx_sock_ntop(&slot->sockaddr.sockaddr, slot->socklen, text,
                         NGX_QQFAIL_ADDR_STRLEN, 1);
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
ngx_qqfail_zone_publish(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server, ngx_uint_t name, ngx_addr_t *addrs,
    ngx_qqfail_geo_t *geo, uint32_t *srv, ngx_uint_t naddrs,
    ngx_uint_t source, ngx_log_t *log)
{
    ngx_int_t                rc;
    ngx_uint_t               j, room, added, removed, changed;
    ngx_slab_pool_t         *shpool;
    ngx_qqfail_slots_t       it;
    ngx_qqfail_org_sh_t     *orgs;
    ngx_qqfail_chunk_sh_t   *chunk, **last;
    ngx_qqfail_slot_sh_t    *slot;
    ngx_qqfail_server_sh_t  *ssh;

    shpool = qmcf->shpool;
    ssh = server->sh;

    added = 0;
    removed = 0;
    changed = 0;
    chunk = NULL;

    /*
     * nothing is allocated with the zone locked: the AS names it lacks
     * before, the slots a record lacks (ngx_qqfail_zone_room())
     * between two turns of the lock, and what was not used is freed after
     */

    orgs = ngx_qqfail_zone_orgs(qmcf, geo, naddrs);

    for ( ;; ) {
        ngx_shmtx_lock(&shpool->mutex);

        if (qmcf->epoch && qmcf->epoch != qmcf->sh->epoch) {
            /* a worker of an older generation: its rules are gone */
            rc = NGX_DECLINED;
            goto unlock;
        }

        room = ngx_qqfail_zone_slots(ssh, &last);

        if (room >= naddrs) {
            break;
        }

        if (chunk) {
            /* made for this record's room or less: it never shrinks */
            *last = chunk;
            chunk = NULL;
            qmcf->sh->full = 0;
            qmcf->sh->needed = 0;
            break;
        }

        ngx_shmtx_unlock(&shpool->mutex);

        chunk = ngx_qqfail_zone_room(qmcf, server, naddrs - room, log);

        if (chunk == NULL) {
            rc = NGX_ERROR;
            goto free;
        }
    }

    orgs = ngx_qqfail_zone_orgs_link(qmcf, orgs);

    for (slot = ngx_qqfail_slot_first(ssh, &it);
         slot;
         slot = ngx_qqfail_slot_next(&it))
    {
        if (!slot->in_use) {
            continue;
        }

        for (j = 0; j < naddrs; j++) {
            if (ngx_cmp_sockaddr(&slot->sockaddr.sockaddr, slot->socklen,
                                 addrs[j].sockaddr, addrs[j].socklen, 1)
                == NGX_OK)
            {
                break;
            }
        }

        if (j == naddrs) {
            slot->in_use = 0;
            slot->id++;
            removed++;
        }
    }

    for (j = 0; j < naddrs; j++) {

        slot = ngx_qqfail_zone_find_slot(ssh, &addrs[j]);

        if (slot) {
            if (slot->srv != (srv ? srv[j] : 0)) {
                /* a new SRV weight or priority: a new peer, as nginx's */
                slot->srv = srv ? srv[j] : 0;
                slot->id++;
                slot->fails = 0;
                slot->checked = 0;
                changed++;
            }

            goto annotate;
        }

        /* never NULL: the room was made above */

        slot = ngx_qqfail_zone_free_slot(ssh);

        ngx_memzero(&slot->sockaddr, sizeof(ngx_qqfail_sockaddr_t));
        ngx_memcpy(&slot->sockaddr, addrs[j].sockaddr, addrs[j].socklen);
        slot->socklen = (u_char) addrs[j].socklen;
        slot->srv = srv ? srv[j] : 0;
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

        } else {
            ngx_memzero(slot->country, 2);
            ngx_memzero(slot->continent, 2);
            slot->asn = 0;
        }
    }

    ssh->naddrs += added;
    ssh->naddrs -= removed;

    if (source != NGX_QQFAIL_SOURCE_STALE) {
        ssh->quorum = (u_char) server->upstream->quorum;
    }

    rc = 0;

    if (added || removed || changed || ssh->active != name
        || ssh->source != source)
    {
        ssh->active = (u_char) name;
        ssh->source = (u_char) source;
        ngx_qqfail_zone_changed(ssh);
        rc = 1;
    }

unlock:

    ngx_shmtx_unlock(&shpool->mutex);

free:

    /* what another process made meanwhile, or a set that is not made */

    if (chunk) {
        ngx_slab_free(shpool, chunk);
    }

    ngx_qqfail_zone_free(shpool, orgs);

    if (added || removed || changed) {
        /* "reweighted": an SRV record's new weight or priority */

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "qqfail: address set of \"%V\" changed: %ui added, "
                      "%ui removed, %supstream \"%V\"",
                      &((ngx_qqfail_name_t *)
                        server->names.elts)[name].text,
                      added, removed, changed ? "reweighted, " : "",
                      &server->upstream->name);
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
ngx_qqfail_zone_changed(ngx_qqfail_server_sh_t *ssh)
{
    ngx_qqfail_upstream_sh_t  *ush;

    ush = ssh->upstream;

    ssh->gen++;

    ush->changed[ush->gen % NGX_QQFAIL_CHANGES] = ssh;
    ush->gen++;
}


/*
 * The slots of a record, and where a chunk is linked to add more.
 * Called with the zone locked.
 */

static ngx_uint_t
ngx_qqfail_zone_slots(ngx_qqfail_server_sh_t *ssh,
    ngx_qqfail_chunk_sh_t ***last)
{
    ngx_uint_t              room;
    ngx_qqfail_chunk_sh_t  *chunk;

    room = 0;
    *last = &ssh->chunks;

    for (chunk = ssh->chunks; chunk; chunk = chunk->next) {
        room += chunk->nslots;
        *last = &chunk->next;
    }

    return room;
}


/*
 * A chunk of at least n slots for a server, allocated with the zone
 * unlocked; when the zone has no room, records no running generation
 * uses are freed and the allocation tried again.  NULL: the zone is
 * full, logged once per episode.
 */

static ngx_qqfail_chunk_sh_t *
ngx_qqfail_zone_room(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server, ngx_uint_t n, ngx_log_t *log)
{
    void                    *garbage;
    ngx_uint_t               full;
    ngx_slab_pool_t         *shpool;
    ngx_qqfail_zone_usage_t  usage;
    ngx_qqfail_chunk_sh_t   *chunk;

    shpool = qmcf->shpool;

    chunk = ngx_qqfail_zone_chunk(shpool, n);
    if (chunk) {
        return chunk;
    }

    ngx_shmtx_lock(&shpool->mutex);
    garbage = ngx_qqfail_zone_gc(qmcf);
    ngx_shmtx_unlock(&shpool->mutex);

    ngx_qqfail_zone_free(shpool, garbage);

    chunk = ngx_qqfail_zone_chunk(shpool, n);
    if (chunk) {
        return chunk;
    }

    ngx_shmtx_lock(&shpool->mutex);

    /* what the zone lacks, for the message and the status */

    qmcf->sh->needed = ngx_qqfail_zone_fit(
                                 offsetof(ngx_qqfail_chunk_sh_t, slot)
                                 + n * sizeof(ngx_qqfail_slot_sh_t));

    full = !qmcf->sh->full;
    qmcf->sh->full = 1;

    if (full) {
        ngx_qqfail_zone_usage(qmcf, &usage);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (full) {
        ngx_qqfail_zone_usage_log(qmcf, log, &usage, server);
    }

    return NULL;
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
ngx_qqfail_zone_refilter(ngx_qqfail_main_conf_t *qmcf,
    ngx_uint_t empty, ngx_log_t *log)
{
    ngx_uint_t               i, j, k, n, m, active, source, why;
    ngx_qqfail_slots_t       it;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_slot_sh_t    *slot;
    ngx_qqfail_srv_conf_t  **qscfp;
    ngx_qqfail_server_sh_t  *ssh;
    ngx_addr_t               addrs[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_geo_t         geo[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_sockaddr_t    sa[NGX_QQFAIL_MAX_ADDRS];
    uint32_t                 srv[NGX_QQFAIL_MAX_ADDRS];
    uint32_t                 kept[NGX_QQFAIL_MAX_ADDRS];

    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            ssh = server[j].sh;
            n = 0;

            ngx_shmtx_lock(&qmcf->shpool->mutex);

            active = ssh->active;
            source = ssh->source;

            for (slot = ngx_qqfail_slot_first(ssh, &it);
                 slot && n < NGX_QQFAIL_MAX_ADDRS;
                 slot = ngx_qqfail_slot_next(&it))
            {
                if (slot->in_use) {
                    sa[n] = slot->sockaddr;
                    addrs[n].sockaddr = &sa[n].sockaddr;
                    addrs[n].socklen = slot->socklen;
                    srv[n] = slot->srv;
                    n++;
                }
            }

            ngx_shmtx_unlock(&qmcf->shpool->mutex);

            if (n == 0 || source == NGX_QQFAIL_SOURCE_NONE) {
                continue;
            }

            m = ngx_qqfail_filter(qscfp[i], addrs, geo, n, &why);

            /* what SRV records gave the addresses the filter kept */

            for (k = 0; k < m; k++) {
                kept[k] = srv[(ngx_qqfail_sockaddr_t *) addrs[k].sockaddr
                              - sa];
            }

            if (m < n) {
                ngx_log_error(NGX_LOG_WARN, log, 0,
                              "qqfail: %ui of %ui address(es) of \"%V\" "
                              "refused by the new configuration (%V), "
                              "upstream \"%V\"%s", n - m, n,
                              &((ngx_qqfail_name_t *)
                                server[j].names.elts)[active].text,
                              &ngx_qqfail_refusals[why],
                              &qscfp[i]->name,
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

            (void) ngx_qqfail_zone_publish(qmcf, &server[j], active,
                                          addrs, geo, kept, m,
                                          m ? source
                                            : NGX_QQFAIL_SOURCE_NONE,
                                          log);
        }
    }
}


ngx_uint_t
ngx_qqfail_zone_same(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server, ngx_uint_t name, ngx_addr_t *addrs,
    uint32_t *srv, ngx_uint_t naddrs)
{
    ngx_uint_t               j, same;
    ngx_qqfail_slot_sh_t    *slot;
    ngx_qqfail_server_sh_t  *ssh;

    ssh = server->sh;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    /* a set agreed by fewer providers than the quorum asks now is not */

    same = (ssh->active == name && ssh->naddrs == naddrs
            && ssh->source != NGX_QQFAIL_SOURCE_NONE
            && ssh->quorum >= server->upstream->quorum);

    for (j = 0; same && j < naddrs; j++) {
        slot = ngx_qqfail_zone_find_slot(ssh, &addrs[j]);

        if (slot == NULL || slot->srv != (srv ? srv[j] : 0)) {
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
ngx_qqfail_event(ngx_qqfail_main_conf_t *qmcf, ngx_uint_t level,
    ngx_log_t *log, ngx_err_t err, ngx_qqfail_server_t *server,
    const char *fmt, ...)
{
    u_char                 *p;
    size_t                  len;
    va_list                 args;
    ngx_str_t              *upstream, *name;
    ngx_qqfail_event_sh_t  *ev;
    u_char                  msg[1024];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    len = p - msg;

    upstream = NULL;
    name = NULL;

    if (server) {
        upstream = &server->upstream->name;
        name = &((ngx_qqfail_name_t *) server->names.elts)[0].text;

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
                                  % NGX_QQFAIL_NEVENTS];

    ev->time = ngx_time();

    /* cut at a character boundary: the status page shows valid UTF-8 */

    ev->message_len = (u_char) ngx_qqfail_utf8_cut(msg, len,
                                           NGX_QQFAIL_EVENT_MESSAGE - 1);
    ngx_memcpy(ev->message, msg, ev->message_len);

    if (server) {
        ev->upstream_len = (u_char) ngx_qqfail_utf8_cut(upstream->data,
                                          upstream->len,
                                          NGX_QQFAIL_EVENT_UPSTREAM - 1);
        ngx_memcpy(ev->upstream, upstream->data, ev->upstream_len);

        ev->server_len = (u_char) ngx_qqfail_utf8_cut(name->data,
                                          name->len,
                                          NGX_QQFAIL_EVENT_SERVER - 1);
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
ngx_qqfail_lease(ngx_qqfail_main_conf_t *qmcf, ngx_uint_t epoch,
    ngx_uint_t leading)
{
    ngx_int_t         rc;
    ngx_msec_t        now, lease;
    ngx_uint_t        ours, expired;
    ngx_core_conf_t  *ccf;
    ngx_qqfail_sh_t  *sh;

    sh = qmcf->sh;

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    lease = ngx_max(NGX_QQFAIL_LEASE, 3 * ccf->timer_resolution);

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    now = ngx_qqfail_msec();

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


/*
 * Reports: what the lookups, the start-up pass and the state file write
 * into shared records other than the address sets, each under the zone's
 * lock.  Nothing outside this file takes the lock to write.
 */

void
ngx_qqfail_zone_counter(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_provider_sh_t *psh, ngx_uint_t what, ngx_uint_t n)
{
    ngx_shmtx_lock(&qmcf->shpool->mutex);

    switch (what) {

    case NGX_QQFAIL_COUNT_QUERIES:
        psh->queries += n;
        break;

    case NGX_QQFAIL_COUNT_DROPS:
        psh->drops += n;
        break;

    default: /* NGX_QQFAIL_COUNT_DISAGREEMENTS */
        psh->disagreements += n;
        break;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/*
 * Answers refused by the address filter: counted for the provider and
 * the name; returns 1 when this starts an episode (to be logged once)
 */

ngx_uint_t
ngx_qqfail_zone_rejected(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_provider_sh_t *psh, ngx_qqfail_name_sh_t *nsh,
    ngx_uint_t n)
{
    ngx_uint_t  first;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    psh->rejected += n;
    nsh->rejected += n;

    first = !nsh->rejecting;
    nsh->rejecting = 1;

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    return first;
}


/*
 * A provider's answer for one name: its latency, its failure if any, and
 * whether it is up.  Two transport failures in a row (a timeout, an
 * unreachable port) mark it down, any answer up again.  Returns 1 when it
 * came up, -1 when it went down, 0 otherwise.
 */

ngx_int_t
ngx_qqfail_zone_provider_result(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_provider_sh_t *psh, ngx_qqfail_result_report_t *r)
{
    ngx_int_t  change;
    time_t     now;

    change = 0;
    now = ngx_time();

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    psh->disagreements += r->disagree;
    psh->validated += r->validated;
    psh->unvalidated += r->unvalidated;

    if (!r->transport) {
        psh->rtt = psh->rtt ? (psh->rtt * 7 + r->rtt) / 8 : r->rtt;
        psh->transport_fails = 0;

        if (psh->down) {
            psh->down = 0;
            change = 1;
        }
    }

    if (r->ok) {
        psh->last_success = now;

    } else {
        psh->failures[r->error]++;
        psh->last_failure = now;

        ngx_memcpy(psh->last_error, r->text, r->len);
        psh->last_error[r->len] = '\0';

        if (r->transport && ++psh->transport_fails >= 2 && !psh->down) {
            psh->down = 1;
            change = -1;
        }
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    return change;
}


/*
 * What a round found for each name it asked ("state" and "report" for
 * the first "n" names): a failed name keeps its error, a name that
 * resolved its time and number of addresses; an undecided name, or one
 * without a quorum, keeps its status.  "success": the name chosen
 * resolved, the server's last success is now.
 */

void
ngx_qqfail_zone_names(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh, ngx_uint_t n,
    ngx_qqfail_name_report_t *report, ngx_uint_t success)
{
    time_t                 now;
    ngx_uint_t             i;
    ngx_qqfail_name_sh_t  *nsh;

    now = ngx_time();

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    for (i = 0; i < n && i < ssh->nnames; i++) {
        nsh = &ssh->names[i];

        if (report[i].state == NGX_QQFAIL_NAME_FAILED) {
            nsh->state = NGX_QQFAIL_NAME_FAILED;
            nsh->error = (u_char) report[i].error;

        } else if (report[i].state == NGX_QQFAIL_NAME_OK) {
            nsh->state = NGX_QQFAIL_NAME_OK;
            nsh->last_success = now;
            nsh->naddrs = (u_char) report[i].naddrs;

            if (report[i].rejected == 0) {
                nsh->rejecting = 0;
            }
        }
    }

    if (success) {
        ssh->last_success = now;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/*
 * The independence check's report on a server: returns the findings
 * (a bit each) the record did not have, for the log
 */

ngx_uint_t
ngx_qqfail_zone_independence(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh, ngx_qqfail_check_sh_t *report)
{
    ngx_uint_t                i, k, fresh;
    ngx_qqfail_check_sh_t    *block, *c;
    ngx_qqfail_finding_sh_t  *f, *o;

    fresh = 0;
    block = NULL;

    /* the block, allocated before the lock is taken (the zone's rule) */

    if (ssh->check == NULL) {
        block = ngx_slab_alloc(qmcf->shpool, sizeof(ngx_qqfail_check_sh_t));

        if (block == NULL) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "qqfail: \"qqfail_zone\" has no room for an "
                          "independence report");
            return 0;
        }

        ngx_memzero(block, sizeof(ngx_qqfail_check_sh_t));
    }

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    if (ssh->check == NULL) {
        ssh->check = block;
        block = NULL;
    }

    c = ssh->check;

    for (i = 0; i < report->nfindings; i++) {
        f = &report->finding[i];

        for (k = 0; k < c->nfindings; k++) {
            o = &c->finding[k];

            if (o->kind == f->kind && o->names == f->names
                && o->len == f->len
                && ngx_memcmp(o->detail, f->detail, f->len) == 0)
            {
                break;
            }
        }

        if (k == c->nfindings) {
            fresh |= (ngx_uint_t) 1 << i;
        }
    }

    *c = *report;

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    if (block) {
        ngx_slab_free(qmcf->shpool, block);
    }

    return fresh;
}


/* the server moved to another name */

void
ngx_qqfail_zone_failover(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh)
{
    ngx_shmtx_lock(&qmcf->shpool->mutex);
    ssh->failovers++;
    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/*
 * Every name of the server failed: its live (or literal) addresses become
 * stale; returns NGX_QQFAIL_STALE_NEW when they just did, and
 * NGX_QQFAIL_STALE_EXPIRED (with or without it) when they are older
 * than qqfail_max_stale and must go
 */

ngx_uint_t
ngx_qqfail_zone_stale(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server)
{
    time_t                   now;
    ngx_uint_t               rc;
    ngx_qqfail_srv_conf_t   *qscf;
    ngx_qqfail_server_sh_t  *ssh;

    qscf = server->upstream;
    ssh = server->sh;
    now = ngx_time();
    rc = 0;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    if (ssh->naddrs) {
        if (ssh->source == NGX_QQFAIL_SOURCE_LIVE
            || ssh->source == NGX_QQFAIL_SOURCE_LITERAL)
        {
            ssh->source = NGX_QQFAIL_SOURCE_STALE;
            ssh->stale_since = ssh->last_success ? ssh->last_success : now;
            ngx_qqfail_zone_changed(ssh);
            rc |= NGX_QQFAIL_STALE_NEW;
        }

        if (qscf->max_stale != NGX_QQFAIL_STALE_FOREVER
            && ssh->stale_since
            && now - ssh->stale_since > qscf->max_stale)
        {
            rc |= NGX_QQFAIL_STALE_EXPIRED;
        }
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    return rc;
}


/* addresses loaded from the state file: their last success, as saved */

void
ngx_qqfail_zone_loaded(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh, time_t last_success)
{
    ngx_shmtx_lock(&qmcf->shpool->mutex);
    ssh->last_success = last_success;
    ssh->stale_since = last_success;
    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/* a new generation: from now on older ones publish nothing */

void
ngx_qqfail_zone_generation(ngx_qqfail_main_conf_t *qmcf)
{
    ngx_shmtx_lock(&qmcf->shpool->mutex);
    qmcf->sh->epoch++;
    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/* the state file was written ("error" NULL), or could not be */

void
ngx_qqfail_zone_state_saved(ngx_qqfail_main_conf_t *qmcf,
    u_char *error, size_t len)
{
    ngx_shmtx_lock(&qmcf->shpool->mutex);

    qmcf->sh->state_path_hash = qmcf->state_file_hash;

    if (error == NULL) {
        qmcf->sh->state_written = ngx_time();
        qmcf->sh->state_error[0] = '\0';

    } else {
        len = ngx_min(len, sizeof(qmcf->sh->state_error) - 1);
        ngx_memcpy(qmcf->sh->state_error, error, len);
        qmcf->sh->state_error[len] = '\0';
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);
}


/*
 * The balancer's passive health checks, as nginx's round robin keeps them
 * (max_fails, fail_timeout), on the address's slot; "id": the address
 * the peer was copied from, a slot reused since is not touched
 */

ngx_uint_t
ngx_qqfail_zone_peer_failed(ngx_slab_pool_t *shpool,
    ngx_qqfail_slot_sh_t *slot, uint32_t id, time_t now)
{
    ngx_uint_t  fails;

    fails = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (slot->id == id) {
        fails = ++slot->fails;
        slot->accessed = now;
        slot->checked = now;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return fails;
}


/* the trial request after fail_timeout succeeded */

void
ngx_qqfail_zone_peer_ok(ngx_slab_pool_t *shpool,
    ngx_qqfail_slot_sh_t *slot, uint32_t id)
{
    ngx_shmtx_lock(&shpool->mutex);

    if (slot->id == id && slot->accessed < slot->checked) {
        slot->fails = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * The start (on 1) or the end (0) of a name's episode without a quorum;
 * returns 1 when that changes it, so that it is logged once
 */

ngx_uint_t
ngx_qqfail_zone_noquorum(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_name_sh_t *nsh, ngx_uint_t on)
{
    ngx_uint_t  changed;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    changed = (nsh->noquorum != on);
    nsh->noquorum = on;

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    return changed;
}
