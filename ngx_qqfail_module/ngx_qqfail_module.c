
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#if defined(__GLIBC__)
#include <malloc.h>
#define NGX_HAVE_MALLOC_TRIM  1
#endif

#include "ngx_qqfail.h"


/*
 * The core module: the one configuration every front end shares (the
 * providers, the zone, the state file, the GeoIP2 databases and every
 * qqfail upstream of http{} and, later, stream{}), made when the module
 * is loaded and completed once the whole configuration is read, so that
 * it does not depend on an http{} block; and the process hooks: the
 * state file and the start-up pass in the master, the lookups in the
 * workers.  A front end's main configuration is this one (its
 * create_main_conf returns it), so its directives fill it.
 */


static void *ngx_qqfail_create_conf(ngx_cycle_t *cycle);
static char *ngx_qqfail_init_conf(ngx_cycle_t *cycle, void *conf);
static ngx_int_t ngx_qqfail_check_upstreams(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf);
static ngx_int_t ngx_qqfail_single_reload(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf);
static ngx_int_t ngx_qqfail_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_qqfail_init_process(ngx_cycle_t *cycle);
static void ngx_qqfail_exit_process(ngx_cycle_t *cycle);


static ngx_core_module_t  ngx_qqfail_module_ctx = {
    ngx_string("qqfail"),
    ngx_qqfail_create_conf,
    ngx_qqfail_init_conf
};


ngx_module_t  ngx_qqfail_module = {
    NGX_MODULE_V1,
    &ngx_qqfail_module_ctx,                /* module context */
    NULL,                                  /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_qqfail_init_module,                /* init module */
    ngx_qqfail_init_process,               /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_qqfail_exit_process,               /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * The configuration of a cycle that has the zone, NULL otherwise: found
 * by the zone, since a dynamic module gets a new index at every load and
 * its index may not be the one it had in an older cycle.
 */

ngx_qqfail_main_conf_t *
ngx_qqfail_cycle_conf(ngx_cycle_t *cycle)
{
    ngx_uint_t               i;
    ngx_shm_zone_t          *zone;
    ngx_list_part_t         *part;
    ngx_qqfail_main_conf_t  *qmcf;

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == &ngx_qqfail_module) {
            qmcf = zone[i].data;
            return qmcf->sh ? qmcf : NULL;
        }
    }
}


static void *
ngx_qqfail_create_conf(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_pcalloc(cycle->pool, sizeof(ngx_qqfail_main_conf_t));
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

    if (ngx_array_init(&qmcf->providers, cycle->pool, 4,
                       sizeof(ngx_qqfail_provider_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&qmcf->upstreams, cycle->pool, 4,
                       sizeof(ngx_qqfail_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    qmcf->zone_size = NGX_CONF_UNSET_SIZE;
    qmcf->state_file_set = NGX_CONF_UNSET;

    return qmcf;
}


/*
 * The whole configuration is read: every front end has registered its
 * upstreams.  The checks that need all of it, the default provider, and
 * the zone, sized for the upstreams unless "qqfail_zone" says otherwise
 * (a record with its first address, room for more addresses and for a
 * reload's new records, never below the documented default).
 */

static char *
ngx_qqfail_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_qqfail_main_conf_t  *qmcf = conf;

    ngx_uint_t               i, n;
    ngx_conf_t               cf;
    ngx_qqfail_srv_conf_t  **qscfp;

    if (qmcf->state_file_set == NGX_CONF_UNSET) {
        qmcf->state_file_set = 0;
    }

    /* what the helpers below use of a configuration: errors carry lines */

    ngx_memzero(&cf, sizeof(ngx_conf_t));

    cf.cycle = cycle;
    cf.pool = cycle->pool;
    cf.temp_pool = cycle->pool;
    cf.log = cycle->log;

    if (ngx_qqfail_single_reload(&cf, qmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (qmcf->upstreams.nelts == 0 && !qmcf->status_used) {
        return NGX_CONF_OK;
    }

    if (qmcf->providers.nelts == 0) {
        if (ngx_qqfail_conf_system_provider(&cf, qmcf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_qqfail_check_upstreams(&cf, qmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

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

    if (ngx_qqfail_zone_check(&cf, qmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_qqfail_zone_add(&cf, qmcf, &ngx_qqfail_module) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* what a qqfail upstream asks of the providers and the databases */

static ngx_int_t
ngx_qqfail_check_upstreams(ngx_conf_t *cf, ngx_qqfail_main_conf_t *qmcf)
{
    ngx_uint_t               i, j;
    ngx_qqfail_rule_t       *rule;
    ngx_qqfail_srv_conf_t   *qscf, **qscfp;

    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        qscf = qscfp[i];

        if (qscf->quorum > qmcf->providers.nelts) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "qqfail: \"qqfail_quorum\" %ui exceeds the %ui "
                          "configured provider(s) in upstream \"%V\" "
                          "in %s:%ui",
                          qscf->quorum, qmcf->providers.nelts, &qscf->name,
                          qscf->quorum_where.file, qscf->quorum_where.line);
            return NGX_ERROR;
        }

        if (qscf->allow == NULL) {
            continue;
        }

        rule = qscf->allow->elts;

        for (j = 0; j < qscf->allow->nelts; j++) {

            if (rule[j].type == NGX_QQFAIL_RULE_ASN
                && qmcf->geo_asn == NULL)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "qqfail: \"qqfail_allow\" rule \"asn=%uD\" "
                              "needs an ASN database in \"qqfail_geoip2\" "
                              "in %s:%ui", rule[j].asn, rule[j].where.file,
                              rule[j].where.line);
                return NGX_ERROR;
            }

            if (rule[j].type == NGX_QQFAIL_RULE_COUNTRY
                && qmcf->geo_country == NULL)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "qqfail: \"qqfail_allow\" rule "
                              "\"country=%*s\" needs a Country or City "
                              "database in \"qqfail_geoip2\" in %s:%ui",
                              (size_t) 2, rule[j].country,
                              rule[j].where.file, rule[j].where.line);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
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
ngx_qqfail_single_reload(ngx_conf_t *cf, ngx_qqfail_main_conf_t *qmcf)
{
    ngx_qqfail_main_conf_t  *old;

    if (ngx_process != NGX_PROCESS_SINGLE
        || ngx_is_init_cycle(cf->cycle->old_cycle))
    {
        return NGX_OK;
    }

    old = ngx_qqfail_cycle_conf(cf->cycle->old_cycle);

    if (qmcf->upstreams.nelts == 0
        && (old == NULL || old->upstreams.nelts == 0))
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "qqfail: with \"master_process off\" nginx cannot "
                  "reload, it would accept no connection afterwards; "
                  "the running configuration stays, restart nginx to "
                  "apply this one");

    return NGX_ERROR;
}


/*
 * In the master, once the configuration is complete: the state file's
 * directory is checked, a new generation starts, and a short synchronous
 * pass gives a fresh start its addresses.  DNS trouble never makes this
 * fail.
 */

static ngx_int_t
ngx_qqfail_init_module(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_qqfail_cycle_conf(cycle);

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
ngx_qqfail_init_process(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        /* cache manager and loader never look names up */
        return NGX_OK;
    }

    qmcf = ngx_qqfail_cycle_conf(cycle);

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
ngx_qqfail_exit_process(ngx_cycle_t *cycle)
{
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = ngx_qqfail_cycle_conf(cycle);

    if (qmcf == NULL || qmcf->upstreams.nelts == 0) {
        return;
    }

    ngx_qqfail_resolver_exit_process(cycle);

    ngx_qqfail_zone_register(qmcf, 0);
}
