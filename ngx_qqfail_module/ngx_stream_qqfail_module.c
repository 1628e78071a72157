
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_balancer.h"


/*
 * The stream front end: "qqfail_server" and the upstream-level directives
 * in stream { upstream {} }, the main-level ones in stream {}, nginx's
 * stream balancing methods, and $qqfail_name, $qqfail_source.  Built as
 * its own file, ngx_stream_qqfail_module.so, which uses the core of
 * ngx_http_qqfail_module.so (loaded before it): one configuration, one
 * zone, one set of lookups for http and stream.
 */


static ngx_int_t ngx_stream_qqfail_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_stream_qqfail_postconfiguration(ngx_conf_t *cf);
static void *ngx_stream_qqfail_create_main_conf(ngx_conf_t *cf);
static void *ngx_stream_qqfail_create_srv_conf(ngx_conf_t *cf);
static void ngx_stream_qqfail_attach(ngx_conf_t *cf,
    ngx_qqfail_srv_conf_t *qscf);
static void ngx_stream_qqfail_read(void *upstream, ngx_qqfail_upstream_t *u);
static void ngx_stream_qqfail_set(void *upstream, ngx_qqfail_init_pt init);
static void ngx_stream_qqfail_placeholder(void *server, ngx_addr_t *addr);
static char *ngx_stream_qqfail_method(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_stream_qqfail_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us);
static ngx_int_t ngx_stream_qqfail_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us);
static ngx_int_t ngx_stream_qqfail_variable_peer(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);


static ngx_command_t  ngx_stream_qqfail_commands[] = {

    { ngx_string("qqfail_provider"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_2MORE,
      ngx_qqfail_conf_provider,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_qqfail_main_conf_t, zone_size),
      &ngx_qqfail_zone_slot },

    { ngx_string("qqfail_state_file"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_qqfail_main_conf_t, state_file),
      &ngx_qqfail_state_file_post },

    { ngx_string("qqfail_geoip2"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_qqfail_conf_geoip2,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_server"),
      NGX_STREAM_UPS_CONF|NGX_CONF_1MORE,
      ngx_qqfail_conf_server,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_refresh"),
      NGX_STREAM_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, refresh),
      &ngx_qqfail_refresh_slot },

    { ngx_string("qqfail_timeout"),
      NGX_STREAM_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, timeout),
      &ngx_qqfail_timeout_slot },

    { ngx_string("qqfail_max_stale"),
      NGX_STREAM_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_max_stale,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_quorum"),
      NGX_STREAM_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, quorum),
      &ngx_qqfail_quorum_slot },

    { ngx_string("qqfail_allow"),
      NGX_STREAM_UPS_CONF|NGX_CONF_1MORE,
      ngx_qqfail_conf_allow,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_ipv6"),
      NGX_STREAM_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, ipv6),
      &ngx_qqfail_ipv6_slot },

    { ngx_string("qqfail_dnssec"),
      NGX_STREAM_UPS_CONF|NGX_CONF_TAKE1,
      ngx_qqfail_conf_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, dnssec),
      &ngx_qqfail_dnssec_slot },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_qqfail_module_ctx = {
    ngx_stream_qqfail_preconfiguration,    /* preconfiguration */
    ngx_stream_qqfail_postconfiguration,   /* postconfiguration */

    ngx_stream_qqfail_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_qqfail_create_srv_conf,     /* create server configuration */
    NULL                                   /* merge server configuration */
};


ngx_module_t  ngx_stream_qqfail_module = {
    NGX_MODULE_V1,
    &ngx_stream_qqfail_module_ctx,         /* module context */
    ngx_stream_qqfail_commands,            /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_stream_variable_t  ngx_stream_qqfail_vars[] = {

    { ngx_string("qqfail_name"), NULL, ngx_stream_qqfail_variable_peer, 0,
      NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("qqfail_source"), NULL, ngx_stream_qqfail_variable_peer, 1,
      NGX_STREAM_VAR_NOCACHEABLE, 0 },

      ngx_stream_null_variable
};


/* nginx's balancing methods in a stream upstream (ngx_qqfail_methods_wrap) */

static ngx_qqfail_method_t  ngx_stream_qqfail_methods[] = {
    { "ngx_stream_upstream_hash_module", ngx_string("hash"), NULL, NULL },
    { "ngx_stream_upstream_least_conn_module", ngx_string("least_conn"),
      NULL, NULL },
    { "ngx_stream_upstream_random_module", ngx_string("random"),
      NULL, NULL },
    { NULL, ngx_null_string, NULL, NULL }
};


/* a stream upstream{}, to the core (ngx_qqfail_front_t) */

static ngx_qqfail_front_t  ngx_stream_qqfail_front = {
    ngx_stream_qqfail_attach,
    ngx_stream_qqfail_read,
    ngx_stream_qqfail_set,
    ngx_stream_qqfail_placeholder,
    ngx_stream_set_complex_value_slot,
    (ngx_qqfail_init_pt) ngx_stream_qqfail_init_upstream,
    ngx_stream_qqfail_methods,
    "\"qqfail_server\" cannot be combined with another load balancing "
    "method in upstream \"%V\""
};


static ngx_int_t
ngx_stream_qqfail_preconfiguration(ngx_conf_t *cf)
{
    ngx_stream_variable_t  *var, *v;

    if (ngx_qqfail_methods_wrap(cf, ngx_stream_qqfail_methods,
                                ngx_stream_qqfail_method)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (v = ngx_stream_qqfail_vars; v->name.len; v++) {
        var = ngx_stream_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_qqfail_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                        i;
    ngx_qqfail_srv_conf_t            *qscf;
    ngx_stream_upstream_srv_conf_t  **uscfp;
    ngx_stream_upstream_main_conf_t  *umcf;

    /* the stream{} block is parsed: nginx's method directives are its own */

    ngx_qqfail_methods_unwrap(ngx_stream_qqfail_methods);

    umcf = ngx_stream_conf_get_module_main_conf(cf,
                                                ngx_stream_upstream_module);

    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        /* implicit upstreams of proxy_pass have no srv_conf */

        if (uscfp[i]->srv_conf == NULL) {
            continue;
        }

        qscf = uscfp[i]->srv_conf[ngx_stream_qqfail_module.ctx_index];

        if (qscf->servers == NULL) {
            if (qscf->directive.file) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "qqfail: upstream \"%V\" has qqfail "
                              "directives but no \"qqfail_server\" in %s:%ui",
                              &uscfp[i]->host, qscf->directive.file,
                              qscf->directive.line);
                return NGX_ERROR;
            }

            continue;
        }

        if (!qscf->initialized) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "qqfail: \"qqfail_server\" cannot be combined "
                          "with another load balancing method in upstream "
                          "\"%V\" in %s:%ui",
                          &uscfp[i]->host, qscf->first.file,
                          qscf->first.line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the stream{} block's main configuration is the core module's */

static void *
ngx_stream_qqfail_create_main_conf(ngx_conf_t *cf)
{
    return ngx_qqfail_conf_get(cf->cycle);
}


static void *
ngx_stream_qqfail_create_srv_conf(ngx_conf_t *cf)
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
     *     qscf->upstream = NULL;
     *     qscf->allow = NULL;
     */

    qscf->front = &ngx_stream_qqfail_front;
    qscf->stream = 1;
    qscf->refresh = NGX_CONF_UNSET_MSEC;
    qscf->timeout = NGX_CONF_UNSET_MSEC;
    qscf->max_stale = NGX_CONF_UNSET;
    qscf->quorum = NGX_CONF_UNSET_UINT;
    qscf->ipv6 = NGX_CONF_UNSET;
    qscf->dnssec = NGX_CONF_UNSET;

    return qscf;
}


/* a qqfail upstream learns its stream upstream{} at its first directive */

static void
ngx_stream_qqfail_attach(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf)
{
    ngx_stream_upstream_srv_conf_t  *uscf;

    uscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_upstream_module);

    qscf->upstream = uscf;
    qscf->name = uscf->host;
    qscf->main = ngx_qqfail_conf_get(cf->cycle);

    /* apart from an http upstream of the same name; NULL: see the server */

    qscf->id.len = sizeof("stream:") - 1 + uscf->host.len;
    qscf->id.data = ngx_pnalloc(cf->pool, qscf->id.len);

    if (qscf->id.data) {
        ngx_memcpy(ngx_cpymem(qscf->id.data, "stream:", 7),
                   uscf->host.data, uscf->host.len);
    }
}


static void
ngx_stream_qqfail_read(void *upstream, ngx_qqfail_upstream_t *u)
{
    ngx_stream_upstream_srv_conf_t  *uscf = upstream;

    u->init_upstream = (ngx_qqfail_init_pt) uscf->peer.init_upstream;
    u->servers = uscf->servers;
    u->backup = uscf->flags & NGX_STREAM_UPSTREAM_BACKUP;

#if (NGX_STREAM_UPSTREAM_ZONE)
    u->zone = (uscf->shm_zone != NULL);
#else
    u->zone = 0;
#endif
}


static void
ngx_stream_qqfail_set(void *upstream, ngx_qqfail_init_pt init)
{
    ngx_stream_upstream_srv_conf_t  *uscf = upstream;

    uscf->peer.init_upstream = (ngx_stream_upstream_init_pt) init;
}


/* the placeholder "server" of a stream upstream has a name, too */

static void
ngx_stream_qqfail_placeholder(void *server, ngx_addr_t *addr)
{
    ngx_stream_upstream_server_t  *us = server;

    us->name = addr->name;
    us->addrs = addr;
    us->naddrs = 1;
    us->weight = 1;
    us->max_fails = 1;
    us->fail_timeout = 10;
}


static char *
ngx_stream_qqfail_method(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_qqfail_conf_method(cf, cmd, conf,
                                  ngx_stream_conf_get_module_srv_conf(cf,
                                                  ngx_stream_qqfail_module));
}


static ngx_int_t
ngx_stream_qqfail_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us)
{
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = ngx_stream_conf_upstream_srv_conf(us, ngx_stream_qqfail_module);

    if (ngx_qqfail_balancer_init(cf, qscf) != NGX_OK) {
        return NGX_ERROR;
    }

    us->peer.init = ngx_stream_qqfail_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_qqfail_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us)
{
    ngx_str_t                key;
    ngx_qqfail_srv_conf_t   *qscf;
    ngx_qqfail_peer_data_t  *pd;

    qscf = ngx_stream_conf_upstream_srv_conf(us, ngx_stream_qqfail_module);

    pd = ngx_qqfail_balancer_create(qscf, s->connection->pool);
    if (pd == NULL) {
        return NGX_ERROR;
    }

    if (qscf->method == NGX_QQFAIL_METHOD_HASH
        || qscf->method == NGX_QQFAIL_METHOD_CHASH)
    {
        if (ngx_stream_complex_value(s, qscf->key, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_qqfail_balancer_key(pd, &key);
    }

    ngx_stream_set_ctx(s, pd, ngx_stream_qqfail_module);

    s->upstream->peer.get = ngx_qqfail_get_peer;
    s->upstream->peer.free = ngx_qqfail_free_peer;
    s->upstream->peer.data = pd;
    s->upstream->peer.tries = ngx_qqfail_balancer_tries(pd);

#if (NGX_STREAM_SSL || NGX_COMPAT)
    s->upstream->peer.set_session = ngx_qqfail_set_session;
    s->upstream->peer.save_session = ngx_qqfail_save_session;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_stream_qqfail_variable_peer(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  *name;

    name = ngx_qqfail_balancer_peer(ngx_stream_get_module_ctx(s,
                                                ngx_stream_qqfail_module),
                                    data);

    if (name == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = name->data;
    v->len = name->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
