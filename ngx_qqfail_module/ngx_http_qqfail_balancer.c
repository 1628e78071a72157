
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


static ngx_int_t ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_qqfail_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_qqfail_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);


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


static ngx_int_t
ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    r->upstream->peer.get = ngx_http_qqfail_get_peer;
    r->upstream->peer.free = ngx_http_qqfail_free_peer;
    r->upstream->peer.tries = 1;
    r->upstream->peer.data = us;

    return NGX_OK;
}


static ngx_int_t
ngx_http_qqfail_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_upstream_srv_conf_t  *us = data;

    pc->cached = 0;
    pc->connection = NULL;
    pc->name = &us->host;

    /* no addresses until the resolver publishes them */

    return NGX_BUSY;
}


static void
ngx_http_qqfail_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    pc->tries = 0;
}
