
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


typedef struct {
    ngx_uint_t                       epoch;
} ngx_http_qqfail_sh_t;


static ngx_int_t ngx_http_qqfail_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);


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
    size_t                 len;
    ngx_slab_pool_t       *shpool;
    ngx_http_qqfail_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* reused across a reload */

        sh = shpool->data;
        sh->epoch++;

        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_qqfail_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;

    len = sizeof(" in qqfail zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in qqfail zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}
