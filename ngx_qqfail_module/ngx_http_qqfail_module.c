
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if defined(__GLIBC__)
#include <malloc.h>
#define NGX_HAVE_MALLOC_TRIM  1
#endif

#include "ngx_http_qqfail_http.h"


static ngx_int_t ngx_http_qqfail_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_qqfail_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_qqfail_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_qqfail_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_qqfail_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_qqfail_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_qqfail_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_qqfail_single_reload(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf);
static ngx_int_t ngx_http_qqfail_check_upstream(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_upstream_srv_conf_t *uscf);
static ngx_qqfail_main_conf_t *ngx_http_qqfail_cycle_conf(
    ngx_cycle_t *cycle);
static ngx_int_t ngx_http_qqfail_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_qqfail_init_process(ngx_cycle_t *cycle);
static void ngx_http_qqfail_exit_process(ngx_cycle_t *cycle);


#define NGX_HTTP_QQFAIL_TIME_INVALID                                          \
    "invalid \"%V\" value \"%V\", a time from %uims to %uims is expected"


static ngx_http_qqfail_slot_t  ngx_http_qqfail_zone_slot = {
    ngx_http_qqfail_zone_post, ngx_conf_set_size_slot,
    NGX_QQFAIL_MIN_ZONE_SIZE, 0,
    "invalid \"%V\" size \"%V\""
};

static ngx_conf_post_t  ngx_http_qqfail_state_file_p = {
    ngx_http_qqfail_state_file_post
};

static ngx_http_qqfail_slot_t  ngx_http_qqfail_refresh_slot = {
    ngx_http_qqfail_upstream_post, ngx_conf_set_msec_slot,
    1000, 7 * 24 * 3600 * 1000, NGX_HTTP_QQFAIL_TIME_INVALID
};

static ngx_http_qqfail_slot_t  ngx_http_qqfail_timeout_slot = {
    ngx_http_qqfail_upstream_post, ngx_conf_set_msec_slot,
    10, 60000, NGX_HTTP_QQFAIL_TIME_INVALID
};

static ngx_http_qqfail_slot_t  ngx_http_qqfail_quorum_slot = {
    ngx_http_qqfail_upstream_post, ngx_conf_set_num_slot,
    1, NGX_QQFAIL_MAX_PROVIDERS,
    "invalid \"%V\" value \"%V\", a number from %ui to %ui is expected"
};

/* nginx's message for a bad flag names the value */

static ngx_http_qqfail_slot_t  ngx_http_qqfail_ipv6_slot = {
    ngx_http_qqfail_upstream_post, ngx_conf_set_flag_slot, 0, 0, NULL
};


static ngx_command_t  ngx_http_qqfail_commands[] = {

    { ngx_string("qqfail_provider"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_qqfail_provider,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_qqfail_conf_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_qqfail_main_conf_t, zone_size),
      &ngx_http_qqfail_zone_slot },

    { ngx_string("qqfail_state_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_qqfail_main_conf_t, state_file),
      &ngx_http_qqfail_state_file_p },

    { ngx_string("qqfail_geoip2"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_qqfail_geoip2,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_server"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_qqfail_server,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_refresh"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_http_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, refresh),
      &ngx_http_qqfail_refresh_slot },

    { ngx_string("qqfail_timeout"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_http_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, timeout),
      &ngx_http_qqfail_timeout_slot },

    { ngx_string("qqfail_max_stale"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_http_qqfail_max_stale,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_quorum"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_http_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, quorum),
      &ngx_http_qqfail_quorum_slot },

    { ngx_string("qqfail_allow"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_qqfail_allow,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("qqfail_ipv6"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_http_qqfail_conf_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_qqfail_srv_conf_t, ipv6),
      &ngx_http_qqfail_ipv6_slot },

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
    ngx_http_qqfail_init_main_conf,        /* init main configuration */

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
    ngx_http_qqfail_init_module,           /* init module */
    ngx_http_qqfail_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_qqfail_exit_process,          /* exit process */
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


static ngx_qqfail_main_conf_t *
ngx_http_qqfail_cycle_conf(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    /* NULL without an http{} block */

    qmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_qqfail_module);

    if (qmcf == NULL || qmcf->sh == NULL) {
        return NULL;
    }

    return qmcf;
}


/*
 * In the master, once the configuration is complete: the state file's
 * directory is checked, a new generation starts, and a short synchronous
 * pass gives a fresh start its addresses.  DNS trouble never makes this
 * fail.
 */

static ngx_int_t
ngx_http_qqfail_init_module(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_cycle_conf(cycle);

    if (qmcf == NULL) {
        return NGX_OK;
    }

    /*
     * the worker user is known only now, after the core module's
     * init_conf; "nginx -t" too creates and checks the directory, as it
     * does for nginx's own paths
     */

    ngx_qqfail_state_check(cycle, qmcf);

    /* for the loop check: this generation's sockets, the host's addresses */

    (void) ngx_qqfail_local_addrs(cycle, qmcf);

    if (ngx_test_config) {
        /* "nginx -t" reads the state file too, and says what is wrong */
        return ngx_qqfail_state_load(qmcf, cycle->log);
    }

    /*
     * from now on workers of older generations publish nothing: the
     * addresses kept pass this configuration's rules, and stay so
     */

    ngx_qqfail_zone_generation(qmcf);

    if (qmcf->upstreams.nelts == 0) {
        return NGX_OK;
    }

#if (NGX_HAVE_MALLOC_TRIM)
    /*
     * a fixed threshold: large blocks (a status page's snapshot at
     * 10,000 servers, the state file's buffer) are mapped and unmapped
     * each time, instead of glibc raising the threshold after the first
     * one and keeping the next ones in the heap for good
     */
    (void) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif

    (void) ngx_qqfail_state_load(qmcf, cycle->log);

    ngx_qqfail_zone_refilter(qmcf, 0, cycle->log);

    if (ngx_qqfail_ares_init(cycle->log) == NGX_OK) {
        (void) ngx_qqfail_resolver_sync(cycle, qmcf);
    }

    /* what the new rules refused and the pass did not replace goes */

    ngx_qqfail_zone_refilter(qmcf, 1, cycle->log);

#if (NGX_HAVE_MALLOC_TRIM)
    /*
     * the start-up pass and the state file freed what they used, but the
     * heap keeps it in the master, and every worker inherits it
     */
    (void) malloc_trim(0);
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_qqfail_init_process(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        /* cache manager and loader never look names up */
        return NGX_OK;
    }

    qmcf = ngx_http_qqfail_cycle_conf(cycle);

    if (qmcf == NULL || qmcf->upstreams.nelts == 0) {
        return NGX_OK;
    }

    /* records this generation uses are not freed while this process runs */

    qmcf->epoch = qmcf->sh->epoch;
    ngx_qqfail_zone_register(qmcf, qmcf->epoch);

    if (ngx_qqfail_ares_init(cycle->log) != NGX_OK) {
        return NGX_OK;
    }

    return ngx_qqfail_resolver_init_process(cycle, qmcf);
}


static void
ngx_http_qqfail_exit_process(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_http_qqfail_cycle_conf(cycle);

    if (qmcf == NULL || qmcf->upstreams.nelts == 0) {
        return;
    }

    ngx_qqfail_resolver_exit_process(cycle);

    ngx_qqfail_zone_register(qmcf, 0);
}


static void *
ngx_http_qqfail_create_main_conf(ngx_conf_t *cf)
{
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_pcalloc(cf->pool, sizeof(ngx_qqfail_main_conf_t));
    if (qmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     qmcf->shm_zone = NULL;
     *     qmcf->state_file = { 0, NULL };
     *     qmcf->geo_country = NULL;
     *     qmcf->geo_asn = NULL;
     *     qmcf->status_used = 0;
     */

    if (ngx_array_init(&qmcf->providers, cf->pool, 4,
                       sizeof(ngx_qqfail_provider_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&qmcf->upstreams, cf->pool, 4,
                       sizeof(ngx_qqfail_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    qmcf->zone_size = NGX_CONF_UNSET_SIZE;
    qmcf->state_file_set = NGX_CONF_UNSET;

    return qmcf;
}


static char *
ngx_http_qqfail_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_qqfail_main_conf_t  *qmcf = conf;

    ngx_uint_t               i, n;
    ngx_qqfail_srv_conf_t  **qscfp;

    /*
     * the upstreams are parsed by now: without "qqfail_zone", the zone is
     * sized for them (a record with its first address, room for more
     * addresses and for a reload's new records), never below the
     * documented default
     */

    n = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        n += qscfp[i]->servers->nelts;
    }

    qmcf->nservers = n;

    if (qmcf->zone_size == NGX_CONF_UNSET_SIZE) {
        qmcf->zone_size = ngx_max(NGX_QQFAIL_DEFAULT_ZONE_SIZE,
                                  ngx_align(256 * 1024
                                            + n * NGX_QQFAIL_SERVER_ROOM,
                                            1024 * 1024));
    }

    if (ngx_qqfail_zone_check(cf, qmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (qmcf->state_file_set == NGX_CONF_UNSET) {
        qmcf->state_file_set = 0;
    }

    return NGX_CONF_OK;
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

    qscf->refresh = NGX_CONF_UNSET_MSEC;
    qscf->timeout = NGX_CONF_UNSET_MSEC;
    qscf->max_stale = NGX_CONF_UNSET;
    qscf->quorum = NGX_CONF_UNSET_UINT;
    qscf->ipv6 = NGX_CONF_UNSET;

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
    ngx_qqfail_main_conf_t         *qmcf;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    /* the http{} block is parsed: nginx's method directives are its own */

    ngx_http_qqfail_methods_unwrap(NULL);

    qmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_qqfail_module);
    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);

    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        /* implicit upstreams of proxy_pass have no srv_conf */

        if (uscfp[i]->srv_conf == NULL) {
            continue;
        }

        if (ngx_http_qqfail_check_upstream(cf, qmcf, uscfp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_qqfail_single_reload(cf, qmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (qmcf->upstreams.nelts == 0 && !qmcf->status_used) {
        return NGX_OK;
    }

    if (qmcf->providers.nelts == 0) {
        if (ngx_http_qqfail_conf_system_provider(cf, qmcf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_qqfail_zone_add(cf, qmcf, &ngx_http_qqfail_module);
}


/*
 * "master_process off": nginx 1.22 reloads the one process in place, but
 * only a new worker sets up the connections of a new cycle (the event
 * module's init_process): after such a reload every accept, every
 * upstream connection and every DNS socket fails, and a further reload
 * may crash in the old cycles' cleanup.  A process that looks names up,
 * or would with the new configuration, keeps its running configuration
 * instead, as after a configuration error.
 */

static ngx_int_t
ngx_http_qqfail_single_reload(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf)
{
    ngx_qqfail_main_conf_t  *old;

    if (ngx_process != NGX_PROCESS_SINGLE
        || ngx_is_init_cycle(cf->cycle->old_cycle))
    {
        return NGX_OK;
    }

    old = ngx_http_qqfail_cycle_conf(cf->cycle->old_cycle);

    if (qmcf->upstreams.nelts == 0
        && (old == NULL || old->upstreams.nelts == 0))
    {
        return NGX_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "qqfail: with \"master_process off\" nginx cannot "
                       "reload, it would accept no connection afterwards; "
                       "the running configuration stays, restart nginx to "
                       "apply this one");

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_qqfail_check_upstream(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_upstream_srv_conf_t *uscf)
{
    ngx_uint_t              i, nproviders;
    ngx_qqfail_rule_t      *rule;
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

    nproviders = qmcf->providers.nelts ? qmcf->providers.nelts : 1;

    if (qscf->quorum > nproviders) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "qqfail: \"qqfail_quorum\" %ui exceeds the %ui "
                      "configured provider(s) in upstream \"%V\" in %s:%ui",
                      qscf->quorum, nproviders, &uscf->host,
                      qscf->quorum_where.file, qscf->quorum_where.line);
        return NGX_ERROR;
    }

    if (qscf->allow == NULL) {
        return NGX_OK;
    }

    rule = qscf->allow->elts;

    for (i = 0; i < qscf->allow->nelts; i++) {

        if (rule[i].type == NGX_QQFAIL_RULE_ASN
            && qmcf->geo_asn == NULL)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "qqfail: \"qqfail_allow\" rule \"asn=%uD\" needs "
                          "an ASN database in \"qqfail_geoip2\" in %s:%ui",
                          rule[i].asn, rule[i].where.file,
                          rule[i].where.line);
            return NGX_ERROR;
        }

        if (rule[i].type == NGX_QQFAIL_RULE_COUNTRY
            && qmcf->geo_country == NULL)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "qqfail: \"qqfail_allow\" rule \"country=%*s\" "
                          "needs a Country or City database in "
                          "\"qqfail_geoip2\" in %s:%ui",
                          (size_t) 2, rule[i].country, rule[i].where.file,
                          rule[i].where.line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
