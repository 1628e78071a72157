
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_http.h"


static char *ngx_http_qqfail_refuse(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/* a qqfail upstream learns its http upstream{} at its first directive */

void
ngx_http_qqfail_attach(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf)
{
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    qscf->upstream = uscf;
    qscf->name = uscf->host;
    qscf->id = uscf->host;
    qscf->main = ngx_qqfail_conf_get(cf->cycle);
}


char *
ngx_http_qqfail_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_qqfail_srv_conf_t  *qscf;

    ngx_str_t                      s;
    ngx_http_upstream_server_t    *us;
    ngx_qqfail_srv_conf_t        **qscfp;
    ngx_http_upstream_srv_conf_t  *uscf;

    qscf = ngx_qqfail_upstream_conf(cf, conf);
    uscf = qscf->upstream;

    if (qscf->servers == NULL) {

        /* a balancing method before the first qqfail_server is ours */

        if (uscf->peer.init_upstream != NULL
            && uscf->peer.init_upstream != ngx_http_qqfail_init_upstream
            && (void *) uscf->peer.init_upstream != qscf->method_init)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"qqfail_server\" must precede \"keepalive\" "
                               "and cannot be combined with another load "
                               "balancing method in upstream \"%V\"",
                               &uscf->host);
            return NGX_CONF_ERROR;
        }

        if (uscf->shm_zone) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"qqfail_server\" cannot be combined with "
                               "\"zone\" in upstream \"%V\"", &uscf->host);
            return NGX_CONF_ERROR;
        }

        qscf->servers = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_qqfail_server_t));
        if (qscf->servers == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_qqfail_conf_where(cf, &qscf->first);

        /*
         * the upstream module requires at least one "server" entry;
         * a placeholder that is never used for connections
         */

        us = ngx_array_push(uscf->servers);
        if (us == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(us, sizeof(ngx_http_upstream_server_t));

        us->addrs = ngx_pcalloc(cf->pool, sizeof(ngx_addr_t));
        if (us->addrs == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&s, "0.0.0.1:80");

        if (ngx_parse_addr_port(cf->pool, us->addrs, s.data, s.len)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        us->addrs->name = s;
        us->naddrs = 1;
        us->weight = 1;
        us->max_fails = 1;
        us->fail_timeout = 10;

        uscf->peer.init_upstream = ngx_http_qqfail_init_upstream;

        qscfp = ngx_array_push(&qscf->main->upstreams);
        if (qscfp == NULL) {
            return NGX_CONF_ERROR;
        }

        *qscfp = qscf;
    }

    return ngx_qqfail_conf_server(cf, qscf,
                                  uscf->flags & NGX_HTTP_UPSTREAM_BACKUP);
}


/* nginx's balancing methods in an http upstream (ngx_qqfail_methods_wrap) */

static ngx_qqfail_method_t  ngx_http_qqfail_methods[] = {
    { "ngx_http_upstream_hash_module", ngx_string("hash"), NULL, NULL },
    { "ngx_http_upstream_ip_hash_module", ngx_string("ip_hash"),
      NULL, NULL },
    { "ngx_http_upstream_least_conn_module", ngx_string("least_conn"),
      NULL, NULL },
    { "ngx_http_upstream_random_module", ngx_string("random"), NULL, NULL },
    { NULL, ngx_null_string, NULL, NULL }
};


/*
 * upstream directives of nginx's that a qqfail upstream refuses after
 * "qqfail_server" (before it, "qqfail_server" refuses the upstream as
 * one with another balancing method): "sticky" of nginx 1.29.6 and later
 * selects a peer of nginx's round robin by the hint it gives, which the
 * qqfail balancer does not take, so it would set no cookie and log
 * "balancer does not support sticky" for each request
 */

static ngx_qqfail_method_t  ngx_http_qqfail_refused[] = {
    { "ngx_http_upstream_sticky_module", ngx_string("sticky"), NULL, NULL },
    { NULL, ngx_null_string, NULL, NULL }
};


ngx_int_t
ngx_http_qqfail_methods_wrap(ngx_conf_t *cf)
{
    if (ngx_qqfail_methods_wrap(cf, ngx_http_qqfail_methods,
                                ngx_http_qqfail_method)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_qqfail_methods_wrap(cf, ngx_http_qqfail_refused,
                                   ngx_http_qqfail_refuse);
}


void
ngx_http_qqfail_methods_unwrap(void)
{
    ngx_qqfail_methods_unwrap(ngx_http_qqfail_methods);
    ngx_qqfail_methods_unwrap(ngx_http_qqfail_refused);
}


static char *
ngx_http_qqfail_refuse(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_qqfail_method_t    *m;
    ngx_qqfail_srv_conf_t  *qscf;

    m = ngx_qqfail_method_find(ngx_http_qqfail_refused, cmd);
    if (m == NULL) {
        return "is wrapped by the qqfail module but not known to it";
    }

    qscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_qqfail_module);

    if (qscf->servers != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "qqfail: \"%V\" cannot be combined with "
                           "\"qqfail_server\" in upstream \"%V\"",
                           &cmd->name, &qscf->name);
        return NGX_CONF_ERROR;
    }

    return m->set(cf, cmd, conf);
}


char *
ngx_http_qqfail_method(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                              *rv;
    ngx_str_t                         *value;
    ngx_uint_t                         ours;
    ngx_qqfail_srv_conf_t             *qscf;
    ngx_http_complex_value_t          *key;
    ngx_qqfail_method_t               *m;
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_compile_complex_value_t   ccv;

    m = ngx_qqfail_method_find(ngx_http_qqfail_methods, cmd);
    if (m == NULL) {
        return "is wrapped by the qqfail module but not known to it";
    }

    qscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_qqfail_module);
    qscf = ngx_qqfail_upstream_conf(cf, qscf);
    uscf = qscf->upstream;

    /*
     * after qqfail_server, nginx warns "load balancing method redefined"
     * only if a method was set before
     */

    ours = (uscf->peer.init_upstream == ngx_http_qqfail_init_upstream);

    if (ours) {
        uscf->peer.init_upstream = qscf->method_init;
    }

    rv = m->set(cf, cmd, conf);

    qscf->method_init = (void *) uscf->peer.init_upstream;

    if (ours) {
        uscf->peer.init_upstream = ngx_http_qqfail_init_upstream;
    }

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    qscf->method_name = cmd->name;
    ngx_qqfail_conf_where(cf, &qscf->method_where);

    qscf->method = ngx_qqfail_method_of(cf);

    if (qscf->method == NGX_QQFAIL_METHOD_HASH
        || qscf->method == NGX_QQFAIL_METHOD_CHASH)
    {
        key = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (key == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[1];
        ccv.complex_value = key;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        qscf->key = key;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_qqfail_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_qqfail_loc_conf_t *qlcf = conf;

    ngx_str_t                    *value;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_qqfail_main_conf_t       *qmcf;

    if (qlcf->format != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 1 || ngx_strcmp(value[1].data, "json") == 0) {
        qlcf->format = NGX_QQFAIL_STATUS_JSON;

    } else if (ngx_strcmp(value[1].data, "prometheus") == 0) {
        qlcf->format = NGX_QQFAIL_STATUS_PROMETHEUS;

    } else if (ngx_strcmp(value[1].data, "html") == 0) {
        qlcf->format = NGX_QQFAIL_STATUS_HTML;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"qqfail_status\" format \"%V\", "
                           "it must be \"json\", \"prometheus\" or \"html\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_qqfail_status_handler;

    qmcf = ngx_qqfail_conf_get(cf->cycle);
    qmcf->status_used = 1;

    return NGX_CONF_OK;
}
