
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_http.h"


static ngx_int_t ngx_http_qqfail_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_qqfail_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_qqfail_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_qqfail_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_qqfail_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_qqfail_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_qqfail_check_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *uscf);


static ngx_command_t  ngx_http_qqfail_commands[] = {

    { ngx_string("qqfail_provider"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_qqfail_conf_provider,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_qqfail_main_conf_t, zone_size),
      &ngx_qqfail_zone_slot },

    { ngx_string("qqfail_state_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_qqfail_main_conf_t, state_file),
      &ngx_qqfail_state_file_post },

    { ngx_string("qqfail_geoip2"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_qqfail_conf_geoip2,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_server"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_qqfail_conf_server,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_refresh"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, refresh),
      &ngx_qqfail_refresh_slot },

    { ngx_string("qqfail_timeout"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, timeout),
      &ngx_qqfail_timeout_slot },

    { ngx_string("qqfail_max_stale"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_max_stale,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_quorum"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, quorum),
      &ngx_qqfail_quorum_slot },

    { ngx_string("qqfail_allow"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_qqfail_conf_allow,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_ipv6"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, ipv6),
      &ngx_qqfail_ipv6_slot },

    { ngx_string("qqfail_dnssec"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, dnssec),
      &ngx_qqfail_dnssec_slot },

    { ngx_string("qqfail_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_qqfail_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_qqfail_module_ctx = {
    ngx_http_qqfail_preconfiguration,      /* preconfiguration */
    ngx_http_qqfail_postconfiguration,     /* postconfiguration */

    ngx_http_qqfail_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_qqfail_create_srv_conf,       /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_qqfail_create_loc_conf,       /* create location configuration */
    ngx_http_qqfail_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_qqfail_module = {
    NGX_MODULE_V1,
    &ngx_http_qqfail_module_ctx,           /* module context */
    ngx_http_qqfail_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_qqfail_vars[] = {

    { ngx_string("qqfail_name"), NULL, ngx_http_qqfail_variable_peer, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("qqfail_source"), NULL, ngx_http_qqfail_variable_peer, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_qqfail_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    if (ngx_http_qqfail_methods_wrap(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    for (v = ngx_http_qqfail_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * The http{} block's main configuration is the core module's, shared with
 * stream{}: the directives of http{} fill it, and the core completes it
 * once the whole configuration is read (ngx_qqfail_module.c).
 */

static void *
ngx_http_qqfail_create_main_conf(ngx_conf_t *cf)
{
    return ngx_qqfail_conf_get(cf->cycle);
}


static void *
ngx_http_qqfail_create_srv_conf(ngx_conf_t *cf)
{
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = ngx_pcalloc(cf->pool, sizeof(ngx_qqfail_srv_conf_t));
    if (qscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     qscf->servers = NULL;
     *     qscf->name = { 0, NULL };
     *     qscf->upstream = NULL;
     *     qscf->allow = NULL;
     *     qscf->first = { NULL, 0 };
     *     qscf->directive = { NULL, 0 };
     *     qscf->initialized = 0;
     */

    qscf->front = &ngx_http_qqfail_front;
    qscf->refresh = NGX_CONF_UNSET_MSEC;
    qscf->timeout = NGX_CONF_UNSET_MSEC;
    qscf->max_stale = NGX_CONF_UNSET;
    qscf->quorum = NGX_CONF_UNSET_UINT;
    qscf->ipv6 = NGX_CONF_UNSET;
    qscf->dnssec = NGX_CONF_UNSET;

    return qscf;
}


static void *
ngx_http_qqfail_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_qqfail_loc_conf_t  *qlcf;

    qlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_qqfail_loc_conf_t));
    if (qlcf == NULL) {
        return NULL;
    }

    qlcf->format = NGX_CONF_UNSET_UINT;

    return qlcf;
}


static char *
ngx_http_qqfail_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_qqfail_loc_conf_t  *prev = parent;
    ngx_http_qqfail_loc_conf_t  *conf = child;

    ngx_conf_merge_uint_value(conf->format, prev->format,
                              NGX_QQFAIL_STATUS_JSON);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_qqfail_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    /* the http{} block is parsed: nginx's method directives are its own */

    ngx_http_qqfail_methods_unwrap();

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);

    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        /* implicit upstreams of proxy_pass have no srv_conf */

        if (uscfp[i]->srv_conf == NULL) {
            continue;
        }

        if (ngx_http_qqfail_check_upstream(cf, uscfp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_qqfail_check_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *uscf)
{
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = uscf->srv_conf[ngx_http_qqfail_module.ctx_index];

    if (qscf->servers == NULL) {
        if (qscf->directive.file) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "qqfail: upstream \"%V\" has qqfail directives "
                          "but no \"qqfail_server\" in %s:%ui",
                          &uscf->host, qscf->directive.file,
                          qscf->directive.line);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (!qscf->initialized) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "qqfail: a balancing method (\"hash\", "
                      "\"ip_hash\", \"least_conn\", \"random\") must "
                      "come before \"keepalive\" in upstream \"%V\" "
                      "with \"qqfail_server\" in %s:%ui",
                      &uscf->host, qscf->first.file, qscf->first.line);
        return NGX_ERROR;
    }

    return NGX_OK;
}
