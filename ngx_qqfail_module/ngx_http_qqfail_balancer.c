
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_http.h"
#include "ngx_qqfail_balancer.h"


/*
 * The http side of the balancer (the balancer is the core's,
 * ngx_qqfail_balancer.c): the upstream's checks at the end of the
 * configuration, a request's state with its hash key or client address,
 * and the variables.
 */


static ngx_int_t ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);


ngx_int_t
ngx_http_qqfail_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_qqfail_module);

    if (ngx_qqfail_balancer_init(cf, qscf) != NGX_OK) {
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_qqfail_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_qqfail_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_str_t                key;
    ngx_qqfail_srv_conf_t   *qscf;
    ngx_qqfail_peer_data_t  *pd;

    qscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_qqfail_module);

    pd = ngx_qqfail_balancer_create(qscf, r->pool);
    if (pd == NULL) {
        return NGX_ERROR;
    }

    switch (qscf->method) {

    case NGX_QQFAIL_METHOD_HASH:
    case NGX_QQFAIL_METHOD_CHASH:

        if (ngx_http_complex_value(r, qscf->key, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_qqfail_balancer_key(pd, &key);
        break;

    case NGX_QQFAIL_METHOD_IP_HASH:
        ngx_qqfail_balancer_client(pd, r->connection->sockaddr);
        break;
    }

    ngx_http_set_ctx(r, pd, ngx_http_qqfail_module);

    r->upstream->peer.get = ngx_qqfail_get_peer;
    r->upstream->peer.free = ngx_qqfail_free_peer;
    r->upstream->peer.data = pd;
    r->upstream->peer.tries = ngx_qqfail_balancer_tries(pd);

#if (NGX_HTTP_SSL || NGX_COMPAT)
    r->upstream->peer.set_session = ngx_qqfail_set_session;
    r->upstream->peer.save_session = ngx_qqfail_save_session;
#endif

    return NGX_OK;
}


ngx_int_t
ngx_http_qqfail_variable_peer(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  *s;

    s = ngx_qqfail_balancer_peer(ngx_http_get_module_ctx(r,
                                                   ngx_http_qqfail_module),
                                 data);

    if (s == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
