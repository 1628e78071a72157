
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_http.h"


static void ngx_http_qqfail_attach(ngx_conf_t *cf,
    ngx_qqfail_srv_conf_t *qscf);
static void ngx_http_qqfail_read(void *upstream, ngx_qqfail_upstream_t *u);
static void ngx_http_qqfail_set(void *upstream, ngx_qqfail_init_pt init);
static void ngx_http_qqfail_placeholder(void *server, ngx_addr_t *addr);
static char *ngx_http_qqfail_method(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_qqfail_refuse(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


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


/* an http upstream{}, to the core (ngx_qqfail_front_t) */

ngx_qqfail_front_t  ngx_http_qqfail_front = {
    ngx_http_qqfail_attach,
    ngx_http_qqfail_read,
    ngx_http_qqfail_set,
    ngx_http_qqfail_placeholder,
    ngx_http_set_complex_value_slot,
    (ngx_qqfail_init_pt) ngx_http_qqfail_init_upstream,
    ngx_http_qqfail_methods,
    "\"qqfail_server\" must precede \"keepalive\" and cannot be combined "
    "with another load balancing method in upstream \"%V\""
};


/* a qqfail upstream learns its http upstream{} at its first directive */

static void
ngx_http_qqfail_attach(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf)
{
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    qscf->upstream = uscf;
    qscf->name = uscf->host;
    qscf->id = uscf->host;
    qscf->main = ngx_qqfail_conf_get(cf->cycle);
}


static void
ngx_http_qqfail_read(void *upstream, ngx_qqfail_upstream_t *u)
{
    ngx_http_upstream_srv_conf_t  *uscf = upstream;

    u->init_upstream = (ngx_qqfail_init_pt) uscf->peer.init_upstream;
    u->servers = uscf->servers;
    u->backup = uscf->flags & NGX_HTTP_UPSTREAM_BACKUP;
    u->zone = (uscf->shm_zone != NULL);
}


static void
ngx_http_qqfail_set(void *upstream, ngx_qqfail_init_pt init)
{
    ngx_http_upstream_srv_conf_t  *uscf = upstream;

    uscf->peer.init_upstream = (ngx_http_upstream_init_pt) init;
}


static void
ngx_http_qqfail_placeholder(void *server, ngx_addr_t *addr)
{
    ngx_http_upstream_server_t  *us = server;

    us->addrs = addr;
    us->naddrs = 1;
    us->weight = 1;
    us->max_fails = 1;
    us->fail_timeout = 10;
}


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


static char *
ngx_http_qqfail_method(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_qqfail_conf_method(cf, cmd, conf,
                                  ngx_http_conf_get_module_srv_conf(cf,
                                                    ngx_http_qqfail_module));
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
