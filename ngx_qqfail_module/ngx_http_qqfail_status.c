
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


/* Prometheus: what a family is about, and which value it shows */
#define NGX_HTTP_QQFAIL_PROM_PROVIDER       0
#define NGX_HTTP_QQFAIL_PROM_SERVER         1
#define NGX_HTTP_QQFAIL_PROM_SOURCE         2
#define NGX_HTTP_QQFAIL_PROM_NAME           3
#define NGX_HTTP_QQFAIL_PROM_ADDRESS        4

#define NGX_HTTP_QQFAIL_PROM_UP             0
#define NGX_HTTP_QQFAIL_PROM_QUERIES        1
#define NGX_HTTP_QQFAIL_PROM_FAILURES       2
#define NGX_HTTP_QQFAIL_PROM_DISAGREEMENTS  3
#define NGX_HTTP_QQFAIL_PROM_REJECTED       4
#define NGX_HTTP_QQFAIL_PROM_RTT            5
#define NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS   6
#define NGX_HTTP_QQFAIL_PROM_ADDRESSES      7
#define NGX_HTTP_QQFAIL_PROM_ON_ALIAS       8
#define NGX_HTTP_QQFAIL_PROM_FAILOVERS      9
#define NGX_HTTP_QQFAIL_PROM_ACTIVE         10
#define NGX_HTTP_QQFAIL_PROM_FAILS          11
#define NGX_HTTP_QQFAIL_PROM_DROPS          12


/* a copy of one server's shared record, taken under the lock */

typedef struct {
    ngx_http_qqfail_server_t        *server;
    ngx_http_qqfail_server_sh_t      sh;
    ngx_http_qqfail_name_sh_t        names[NGX_HTTP_QQFAIL_MAX_NAMES];
    ngx_uint_t                       naddrs;
    ngx_http_qqfail_slot_sh_t       *slots;
} ngx_http_qqfail_status_server_t;


typedef struct {
    time_t                           now;
    ngx_uint_t                       epoch;
    ngx_pid_t                        leader_pid;
    size_t                           zone_size;
    size_t                           zone_used;
    size_t                           zone_needed;   /* full: the size */
    ngx_uint_t                       zone_full;
    /* the state file's health, 0 and "" while unknown for this path */
    time_t                           state_written;
    u_char                           state_error[NGX_HTTP_QQFAIL_ERRLEN * 2];
    /* in configuration order */
    ngx_http_qqfail_provider_sh_t    providers[NGX_HTTP_QQFAIL_MAX_PROVIDERS];
    /* the upstreams shown (all, or the one ?upstream= names), in order */
    ngx_uint_t                       nupstreams;
    ngx_http_qqfail_srv_conf_t     **upstreams;
    ngx_uint_t                       nservers;
    ngx_http_qqfail_status_server_t *servers;
    /* oldest first */
    ngx_uint_t                       nevents;
    ngx_http_qqfail_event_sh_t       events[NGX_HTTP_QQFAIL_NEVENTS];
} ngx_http_qqfail_snapshot_t;


typedef struct {
    char                            *name;
    char                            *help;
    char                            *type;
    ngx_uint_t                       of;
    ngx_uint_t                       what;
} ngx_http_qqfail_prom_t;


/* output that grows buffer by buffer */

typedef struct {
    ngx_http_request_t              *r;
    ngx_chain_t                     *out;
    ngx_chain_t                    **last;
    ngx_buf_t                       *b;
    ngx_uint_t                       error;
} ngx_http_qqfail_out_t;


static ngx_uint_t ngx_http_qqfail_status_format(ngx_http_request_t *r,
    ngx_uint_t format);
static ngx_int_t ngx_http_qqfail_status_select(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static ngx_int_t ngx_http_qqfail_status_snapshot(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap,
    ngx_uint_t events);
static u_char *ngx_http_qqfail_reserve(ngx_http_qqfail_out_t *o, size_t n);
static void ngx_http_qqfail_printf(ngx_http_qqfail_out_t *o, size_t max,
    const char *fmt, ...);
static void ngx_http_qqfail_escape(ngx_http_qqfail_out_t *o, ngx_uint_t how,
    u_char *s, size_t len);
static ngx_str_t *ngx_http_qqfail_address_state(
    ngx_http_qqfail_server_t *server, ngx_http_qqfail_slot_sh_t *slot,
    time_t now);
static void ngx_http_qqfail_status_json(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_status_prometheus(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_prom_labels(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_status_server_t *ss);
static int64_t ngx_http_qqfail_prom_provider_value(ngx_uint_t what,
    ngx_http_qqfail_provider_sh_t *psh, ngx_uint_t kind);
static int64_t ngx_http_qqfail_prom_server_value(ngx_uint_t what,
    ngx_http_qqfail_status_server_t *ss);
static int64_t ngx_http_qqfail_prom_name_value(ngx_uint_t what,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t n);
static void ngx_http_qqfail_prom_state_file(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_status_html(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_html_time(ngx_http_qqfail_out_t *o, time_t t);


static ngx_str_t  ngx_http_qqfail_state_up = ngx_string("up");
static ngx_str_t  ngx_http_qqfail_state_down = ngx_string("down");
static ngx_str_t  ngx_http_qqfail_state_unavailable =
    ngx_string("unavailable");

static ngx_http_qqfail_prom_t  ngx_http_qqfail_prom_metrics[] = {

    { "qqfail_provider_up", "1 if the DNS provider answers.", "gauge",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_UP },

    { "qqfail_provider_queries_total", "DNS queries sent.", "counter",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_QUERIES },

    { "qqfail_provider_failures_total", "Failed lookups by kind.",
      "counter",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_FAILURES },

    { "qqfail_provider_disagreements_total",
      "Answers that differed from the accepted address set.", "counter",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_DISAGREEMENTS },

    { "qqfail_provider_rejected_total",
      "Answered addresses dropped by qqfail_allow.", "counter",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_REJECTED },

    { "qqfail_provider_drops_total",
      "Answers the kernel dropped (receive buffer full).", "counter",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_DROPS },

    { "qqfail_provider_rtt_seconds", "Smoothed answer time.", "gauge",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_RTT },

    { "qqfail_provider_last_success_timestamp_seconds",
      "Time of the last good answer.", "gauge",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS },

    { "qqfail_server_addresses", "Addresses a server has now.", "gauge",
      NGX_HTTP_QQFAIL_PROM_SERVER, NGX_HTTP_QQFAIL_PROM_ADDRESSES },

    { "qqfail_server_source",
      "Where the addresses come from: 1 for the current source.", "gauge",
      NGX_HTTP_QQFAIL_PROM_SOURCE, 0 },

    { "qqfail_server_active_name",
      "1 for the name that supplies the addresses.", "gauge",
      NGX_HTTP_QQFAIL_PROM_NAME, NGX_HTTP_QQFAIL_PROM_ACTIVE },

    { "qqfail_server_on_alias",
      "1 while an alias, not the first name, supplies the addresses.",
      "gauge",
      NGX_HTTP_QQFAIL_PROM_SERVER, NGX_HTTP_QQFAIL_PROM_ON_ALIAS },

    { "qqfail_name_up", "1 if the last lookup of the name succeeded.",
      "gauge",
      NGX_HTTP_QQFAIL_PROM_NAME, NGX_HTTP_QQFAIL_PROM_UP },

    { "qqfail_name_rejected_total",
      "Addresses of the name dropped by qqfail_allow.", "counter",
      NGX_HTTP_QQFAIL_PROM_NAME, NGX_HTTP_QQFAIL_PROM_REJECTED },

    { "qqfail_server_failovers_total", "Switches between names.", "counter",
      NGX_HTTP_QQFAIL_PROM_SERVER, NGX_HTTP_QQFAIL_PROM_FAILOVERS },

    { "qqfail_server_last_success_timestamp_seconds",
      "Time of the last successful lookup.", "gauge",
      NGX_HTTP_QQFAIL_PROM_SERVER, NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS },

    { "qqfail_address_up", "1 if the address may get requests.", "gauge",
      NGX_HTTP_QQFAIL_PROM_ADDRESS, NGX_HTTP_QQFAIL_PROM_UP },

    { "qqfail_address_fails",
      "Failed requests counted against max_fails.", "gauge",
      NGX_HTTP_QQFAIL_PROM_ADDRESS, NGX_HTTP_QQFAIL_PROM_FAILS },

    { NULL, NULL, NULL, 0, 0 }
};


static ngx_str_t  ngx_http_qqfail_name_states[] = {
    ngx_string("unknown"),
    ngx_string("ok"),
    ngx_string("failed")
};


ngx_int_t
ngx_http_qqfail_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_uint_t                    format, events;
    ngx_chain_t                  *cl;
    ngx_table_elt_t              *h;
    ngx_http_qqfail_out_t         o;
    ngx_http_qqfail_loc_conf_t   *qlcf;
    ngx_http_qqfail_snapshot_t   *snap;
    ngx_http_qqfail_main_conf_t  *qmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "GET, HEAD");

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    qlcf = ngx_http_get_module_loc_conf(r, ngx_http_qqfail_module);

    format = ngx_http_qqfail_status_format(r, qlcf->format);

    if (format == 0) {
        return NGX_HTTP_BAD_REQUEST;
    }

    qmcf = ngx_http_get_module_main_conf(r, ngx_http_qqfail_module);

    snap = ngx_pcalloc(r->pool, sizeof(ngx_http_qqfail_snapshot_t));
    if (snap == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* Prometheus text has no events: no need to copy the ring */

    events = (format != NGX_HTTP_QQFAIL_STATUS_PROMETHEUS);

    /* ?upstream=NAME narrows the page to one upstream */

    rc = ngx_http_qqfail_status_select(r, qmcf, snap);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_qqfail_status_snapshot(r, qmcf, snap, events) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&o, sizeof(ngx_http_qqfail_out_t));
    o.r = r;
    o.last = &o.out;

    switch (format) {

    case NGX_HTTP_QQFAIL_STATUS_PROMETHEUS:
        ngx_http_qqfail_status_prometheus(&o, qmcf, snap);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
        break;

    case NGX_HTTP_QQFAIL_STATUS_HTML:
        ngx_http_qqfail_status_html(&o, qmcf, snap);
        ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
        break;

    default: /* NGX_HTTP_QQFAIL_STATUS_JSON */
        ngx_http_qqfail_status_json(&o, qmcf, snap);
        ngx_str_set(&r->headers_out.content_type, "application/json");
        break;
    }

    if (o.error || o.out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    for (cl = o.out; cl; cl = cl->next) {
        r->headers_out.content_length_n += cl->buf->last - cl->buf->pos;

        if (cl->next == NULL) {
            cl->buf->last_buf = (r == r->main) ? 1 : 0;
            cl->buf->last_in_chain = 1;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, o.out);
}


/*
 * ?format= wins, then an Accept header that names a format, then the
 * directive's argument.  0: an unknown ?format=.
 */

static ngx_uint_t
ngx_http_qqfail_status_format(ngx_http_request_t *r, ngx_uint_t format)
{
    u_char           *last;
    ngx_str_t         value;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "format", 6, &value) == NGX_OK) {

        if (value.len == 4 && ngx_strncmp(value.data, "json", 4) == 0) {
            return NGX_HTTP_QQFAIL_STATUS_JSON;
        }

        if (value.len == 10
            && ngx_strncmp(value.data, "prometheus", 10) == 0)
        {
            return NGX_HTTP_QQFAIL_STATUS_PROMETHEUS;
        }

        if (value.len == 4 && ngx_strncmp(value.data, "html", 4) == 0) {
            return NGX_HTTP_QQFAIL_STATUS_HTML;
        }

        return 0;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != 6
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Accept", 6) != 0)
        {
            continue;
        }

        last = h[i].value.data + h[i].value.len;

        if (ngx_strlcasestrn(h[i].value.data, last,
                             (u_char *) "text/html", 9 - 1))
        {
            return NGX_HTTP_QQFAIL_STATUS_HTML;
        }

        if (ngx_strlcasestrn(h[i].value.data, last,
                             (u_char *) "application/json", 16 - 1))
        {
            return NGX_HTTP_QQFAIL_STATUS_JSON;
        }

        if (ngx_strlcasestrn(h[i].value.data, last,
                             (u_char *) "openmetrics", 11 - 1)
            || ngx_strlcasestrn(h[i].value.data, last,
                                (u_char *) "text/plain", 10 - 1))
        {
            return NGX_HTTP_QQFAIL_STATUS_PROMETHEUS;
        }
    }

    return format;
}


/* every upstream, or the one ?upstream= names (404 if none has the name) */

static ngx_int_t
ngx_http_qqfail_status_select(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    u_char                       *dst, *src;
    ngx_str_t                     value, name;
    ngx_uint_t                    i;
    ngx_http_qqfail_srv_conf_t  **qscfp;

    qscfp = qmcf->upstreams.elts;

    snap->upstreams = qscfp;
    snap->nupstreams = qmcf->upstreams.nelts;

    if (ngx_http_arg(r, (u_char *) "upstream", 8, &value) != NGX_OK) {
        return NGX_OK;
    }

    /* the name may be escaped in the query string */

    name.data = ngx_pnalloc(r->pool, value.len);
    if (name.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dst = name.data;
    src = value.data;
    ngx_unescape_uri(&dst, &src, value.len, 0);
    name.len = dst - name.data;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        if (qscfp[i]->upstream->host.len == name.len
            && ngx_strncmp(qscfp[i]->upstream->host.data, name.data,
                           name.len) == 0)
        {
            snap->upstreams = &qscfp[i];
            snap->nupstreams = 1;
            return NGX_OK;
        }
    }

    return NGX_HTTP_NOT_FOUND;
}


/*
 * One consistent copy of everything shown, taken under the zone lock with
 * memory allocated beforehand; the rendering happens without the lock.
 */

static ngx_int_t
ngx_http_qqfail_status_snapshot(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap,
    ngx_uint_t events)
{
    ngx_uint_t                        i, j, k, n;
    ngx_slab_pool_t                  *shpool;
    ngx_http_qqfail_sh_t             *sh;
    ngx_http_qqfail_server_t         *server;
    ngx_http_qqfail_chunk_sh_t       *chunk;
    ngx_http_qqfail_slot_sh_t        *slots;
    ngx_http_qqfail_provider_t       *pr;
    ngx_http_qqfail_srv_conf_t      **qscfp;
    ngx_http_qqfail_status_server_t  *ss;

    snap->now = ngx_time();

    if (qmcf->sh == NULL) {
        return NGX_OK;
    }

    sh = qmcf->sh;
    shpool = qmcf->shpool;

    n = 0;
    qscfp = snap->upstreams;

    for (i = 0; i < snap->nupstreams; i++) {
        n += qscfp[i]->servers->nelts;
    }

    snap->servers = ngx_pcalloc(r->pool, (n ? n : 1)
                                * sizeof(ngx_http_qqfail_status_server_t));
    if (snap->servers == NULL) {
        return NGX_ERROR;
    }

    /*
     * room for the slots: a publication replaces a server's addresses with
     * at most NGX_HTTP_QQFAIL_MAX_ADDRS, so no more slots are ever in use
     */

    slots = ngx_palloc(r->pool, (n ? n : 1) * NGX_HTTP_QQFAIL_MAX_ADDRS
                                * sizeof(ngx_http_qqfail_slot_sh_t));
    if (slots == NULL) {
        return NGX_ERROR;
    }

    ss = snap->servers;

    for (i = 0; i < snap->nupstreams; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            ss->server = &server[j];
            ss->slots = slots;
            ss->naddrs = NGX_HTTP_QQFAIL_MAX_ADDRS;
            slots += NGX_HTTP_QQFAIL_MAX_ADDRS;
            ss++;
        }
    }

    snap->nservers = n;

    ngx_shmtx_lock(&shpool->mutex);

    snap->epoch = sh->epoch;
    snap->leader_pid = sh->leader_pid;

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        snap->providers[i] = *pr[i].sh;
    }

    /* pages in use, without the pool header and the page descriptors */
    snap->zone_size = qmcf->shm_zone->shm.size;
    snap->zone_used = ((shpool->end - shpool->start) / ngx_pagesize
                       - shpool->pfree) * ngx_pagesize;
    snap->zone_full = sh->full;
    snap->zone_needed = sh->full ? ngx_http_qqfail_zone_suggest(qmcf) * 1024
                                 : 0;

    /* after a reload to another path: nothing known about the new one */

    if (qmcf->state_file_set
        && sh->state_path_hash == qmcf->state_file_hash)
    {
        snap->state_written = sh->state_written;
        ngx_memcpy(snap->state_error, sh->state_error,
                   sizeof(snap->state_error));
        snap->state_error[sizeof(snap->state_error) - 1] = '\0';
    }

    if (events && sh->events) {
        snap->nevents = ngx_min(sh->events->nevents, NGX_HTTP_QQFAIL_NEVENTS);

        for (i = 0; i < snap->nevents; i++) {
            snap->events[i] = sh->events->event[(sh->events->nevents
                                                 - snap->nevents + i)
                                                % NGX_HTTP_QQFAIL_NEVENTS];
        }
    }

    for (i = 0; i < n; i++) {
        ss = &snap->servers[i];
        ss->sh = *ss->server->sh;
        ngx_memcpy(ss->names, ss->sh.names,
                   ss->sh.nnames * sizeof(ngx_http_qqfail_name_sh_t));
        ss->sh.names = ss->names;

        k = 0;

        for (chunk = ss->sh.chunks; chunk; chunk = chunk->next) {
            for (j = 0; j < chunk->nslots && k < ss->naddrs; j++) {
                if (chunk->slot[j].in_use) {
                    ss->slots[k++] = chunk->slot[j];
                }
            }
        }

        ss->naddrs = k;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


static u_char *
ngx_http_qqfail_reserve(ngx_http_qqfail_out_t *o, size_t n)
{
    size_t        size;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (o->error) {
        return NULL;
    }

    if (o->b && (size_t) (o->b->end - o->b->last) >= n) {
        return o->b->last;
    }

    size = ngx_max(n, 16384);

    b = ngx_create_temp_buf(o->r->pool, size);
    cl = ngx_alloc_chain_link(o->r->pool);

    if (b == NULL || cl == NULL) {
        o->error = 1;
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    *o->last = cl;
    o->last = &cl->next;
    o->b = b;

    return b->last;
}


/* max: an upper bound of the output, escaped strings excluded */

static void
ngx_http_qqfail_printf(ngx_http_qqfail_out_t *o, size_t max,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    p = ngx_http_qqfail_reserve(o, max);
    if (p == NULL) {
        return;
    }

    va_start(args, fmt);
    o->b->last = ngx_vslprintf(p, p + max, fmt, args);
    va_end(args);
}


/* valid UTF-8 escaped for the format: ngx_http_qqfail_text_escape() */

static void
ngx_http_qqfail_escape(ngx_http_qqfail_out_t *o, ngx_uint_t how, u_char *s,
    size_t len)
{
    u_char  *p;

    p = ngx_http_qqfail_reserve(o, NGX_HTTP_QQFAIL_ESCAPE_LEN(len) + 1);
    if (p == NULL) {
        return;
    }

    o->b->last = ngx_http_qqfail_text_escape(p, how, s, len);
}


static ngx_str_t *
ngx_http_qqfail_address_state(ngx_http_qqfail_server_t *server,
    ngx_http_qqfail_slot_sh_t *slot, time_t now)
{
    if (server->down) {
        return &ngx_http_qqfail_state_down;
    }

    if (server->max_fails
        && slot->fails >= server->max_fails
        && now - slot->checked <= server->fail_timeout)
    {
        return &ngx_http_qqfail_state_unavailable;
    }

    return &ngx_http_qqfail_state_up;
}


#define ngx_http_qqfail_json_str(o, s, len)                                   \
    ngx_http_qqfail_printf(o, 1, "\"");                                       \
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_JSON, s, len);              \
    ngx_http_qqfail_printf(o, 1, "\"")


static void
ngx_http_qqfail_status_json(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    ngx_uint_t                        i, j, k, e, s, n;
    ngx_str_t                         org;
    ngx_addr_t                       *addr;
    ngx_http_qqfail_name_t           *names;
    ngx_http_qqfail_server_t         *server;
    ngx_http_qqfail_provider_t       *pr;
    ngx_http_qqfail_slot_sh_t        *slot;
    ngx_http_qqfail_event_sh_t       *ev;
    ngx_http_qqfail_srv_conf_t      **qscfp;
    ngx_http_qqfail_provider_sh_t    *psh;
    u_char                            text[NGX_HTTP_QQFAIL_ADDR_STRLEN];
    ngx_http_qqfail_status_server_t  *ss;

    ngx_http_qqfail_printf(o, 512,
                           "{\"version\":\"%s\",\"nginx_version\":\"%s\","
                           "\"time\":%T,"
                           "\"leader\":{\"pid\":%P,\"generation\":%ui},"
                           "\"zone\":{\"size\":%uz,\"used\":%uz,"
                           "\"full\":%s,\"suggested_size\":%uz},"
                           "\"state_file\":",
                           NGX_HTTP_QQFAIL_VERSION, NGINX_VERSION, snap->now,
                           snap->leader_pid, snap->epoch, snap->zone_size,
                           snap->zone_used,
                           snap->zone_full ? "true" : "false",
                           snap->zone_needed);

    if (qmcf->state_file_set) {
        ngx_http_qqfail_printf(o, 16, "{\"path\":");
        ngx_http_qqfail_json_str(o, qmcf->state_file.data,
                                 qmcf->state_file.len);
        ngx_http_qqfail_printf(o, 64, ",\"last_write\":%T,\"last_error\":",
                               snap->state_written);
        ngx_http_qqfail_json_str(o, snap->state_error,
                                 ngx_strlen(snap->state_error));
        ngx_http_qqfail_printf(o, 1, "}");

    } else {
        ngx_http_qqfail_printf(o, 4, "null");
    }

    ngx_http_qqfail_printf(o, 16, ",\"providers\":[");

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        psh = &snap->providers[i];

        ngx_http_qqfail_printf(o, 16, "%s{\"name\":", i ? "," : "");
        ngx_http_qqfail_json_str(o, pr[i].name.data, pr[i].name.len);
        ngx_http_qqfail_printf(o, 16, ",\"servers\":[");

        addr = pr[i].addrs.elts;

        for (j = 0; j < pr[i].addrs.nelts; j++) {
            ngx_http_qqfail_printf(o, NGX_SOCKADDR_STRLEN + 4, "%s\"%V\"",
                                   j ? "," : "", &addr[j].name);
        }

        ngx_http_qqfail_printf(o, 512,
                               "],\"state\":\"%s\",\"queries\":%ui,"
                               "\"failures\":{\"timeout\":%ui,"
                               "\"servfail\":%ui,\"nxdomain\":%ui,"
                               "\"refused\":%ui,\"other\":%ui,"
                               "\"bad_answer\":%ui},"
                               "\"disagreements\":%ui,\"rejected\":%ui,"
                               "\"drops\":%ui,\"rtt_ms\":%M,"
                               "\"last_success\":%T,\"last_failure\":%T,"
                               "\"last_error\":",
                               psh->down ? "down" : "up", psh->queries,
                               psh->failures[NGX_HTTP_QQFAIL_ERR_TIMEOUT],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_SERVFAIL],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_NXDOMAIN],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_REFUSED],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_OTHER],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_BADANSWER],
                               psh->disagreements, psh->rejected,
                               psh->drops, psh->rtt,
                               psh->last_success, psh->last_failure);

        ngx_http_qqfail_json_str(o, psh->last_error,
                                 ngx_strnlen(psh->last_error,
                                             NGX_HTTP_QQFAIL_ERRLEN));
        ngx_http_qqfail_printf(o, 1, "}");
    }

    ngx_http_qqfail_printf(o, 32, "],\"upstreams\":[");

    qscfp = snap->upstreams;
    ss = snap->servers;

    for (i = 0; i < snap->nupstreams; i++) {

        ngx_http_qqfail_printf(o, 16, "%s{\"name\":", i ? "," : "");
        ngx_http_qqfail_json_str(o, qscfp[i]->upstream->host.data,
                                 qscfp[i]->upstream->host.len);
        ngx_http_qqfail_printf(o, 16, ",\"servers\":[");

        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            names = server[j].names.elts;
            n = server[j].names.nelts;
            e = ss[j].sh.active < n ? ss[j].sh.active : 0;
            s = ss[j].sh.source;

            ngx_http_qqfail_printf(o, 16, "%s{\"names\":[", j ? "," : "");

            for (k = 0; k < n; k++) {
                ngx_http_qqfail_printf(o, 1, k ? "," : "");
                ngx_http_qqfail_json_str(o, names[k].text.data,
                                         names[k].text.len);
            }

            ngx_http_qqfail_printf(o, 32, "],\"active_name\":");

            if (s == NGX_HTTP_QQFAIL_SOURCE_NONE) {
                ngx_http_qqfail_printf(o, 4, "null");

            } else {
                ngx_http_qqfail_json_str(o, names[e].text.data,
                                         names[e].text.len);
            }

            ngx_http_qqfail_printf(o, 512,
                                   ",\"source\":\"%V\",\"weight\":%ui,"
                                   "\"backup\":%s,\"down\":%s,"
                                   "\"last_success\":%T,"
                                   "\"next_lookup\":%T,"
                                   "\"stale_since\":%T,\"failovers\":%ui,"
                                   "\"name_status\":[",
                                   &ngx_http_qqfail_sources[s],
                                   server[j].weight,
                                   server[j].backup ? "true" : "false",
                                   server[j].down ? "true" : "false",
                                   ss[j].sh.last_success,
                                   ss[j].sh.next_lookup,
                                   s == NGX_HTTP_QQFAIL_SOURCE_STALE
                                   ? ss[j].sh.stale_since : (time_t) 0,
                                   ss[j].sh.failovers);

            for (k = 0; k < n; k++) {
                ngx_http_qqfail_printf(o, 16, "%s{\"name\":", k ? "," : "");
                ngx_http_qqfail_json_str(o, names[k].host.data,
                                         names[k].host.len);
                ngx_http_qqfail_printf(o, 128, ",\"state\":\"%V\","
                                       "\"error\":",
                                       &ngx_http_qqfail_name_states
                                           [ss[j].sh.names[k].state]);

                if (ss[j].sh.names[k].state == NGX_HTTP_QQFAIL_NAME_FAILED) {
                    ngx_http_qqfail_printf(o, 32, "\"%V\"",
                                           &ngx_http_qqfail_errors
                                               [ss[j].sh.names[k].error]);

                } else {
                    ngx_http_qqfail_printf(o, 4, "null");
                }

                ngx_http_qqfail_printf(o, 64, ",\"rejected\":%uD,"
                                       "\"last_success\":%T}",
                                       ss[j].sh.names[k].rejected,
                                       ss[j].sh.names[k].last_success);
            }

            ngx_http_qqfail_printf(o, 32, "],\"addresses\":[");

            for (k = 0; k < ss[j].naddrs; k++) {
                slot = &ss[j].slots[k];

                ngx_http_qqfail_printf(o, 256,
                                       "%s{\"address\":\"%*s\","
                                       "\"state\":\"%V\",\"fails\":%ui,"
                                       "\"geo\":",
                                       k ? "," : "",
                                       ngx_http_qqfail_slot_text(slot, text),
                                       text,
                                       ngx_http_qqfail_address_state(
                                           &server[j], slot, snap->now),
                                       (ngx_uint_t) slot->fails);

                if (slot->asn == 0 && slot->country[0] == '\0') {
                    ngx_http_qqfail_printf(o, 5, "null}");
                    continue;
                }

                ngx_http_qqfail_printf(o, 128, "{\"country\":");

                if (slot->country[0]) {
                    ngx_http_qqfail_printf(o, 8, "\"%*s\"", (size_t) 2,
                                           slot->country);

                } else {
                    ngx_http_qqfail_printf(o, 4, "null");
                }

                ngx_http_qqfail_printf(o, 32, ",\"continent\":");

                if (slot->continent[0]) {
                    ngx_http_qqfail_printf(o, 8, "\"%*s\"", (size_t) 2,
                                           slot->continent);

                } else {
                    ngx_http_qqfail_printf(o, 4, "null");
                }

                ngx_http_qqfail_printf(o, 64, ",\"asn\":");

                if (slot->asn) {
                    ngx_http_qqfail_printf(o, 16, "%uD", slot->asn);

                } else {
                    ngx_http_qqfail_printf(o, 4, "null");
                }

                ngx_http_qqfail_printf(o, 16, ",\"org\":");
                ngx_http_qqfail_zone_org(qmcf, slot->asn, &org);
                ngx_http_qqfail_json_str(o, org.data, org.len);
                ngx_http_qqfail_printf(o, 2, "}}");
            }

            ngx_http_qqfail_printf(o, 2, "]}");
        }

        ngx_http_qqfail_printf(o, 2, "]}");

        ss += qscfp[i]->servers->nelts;
    }

    ngx_http_qqfail_printf(o, 16, "],\"events\":[");

    /* oldest first */

    for (i = 0; i < snap->nevents; i++) {
        ev = &snap->events[i];

        ngx_http_qqfail_printf(o, 64, "%s{\"time\":%T,\"upstream\":",
                               i ? "," : "", ev->time);

        if (ev->upstream_len) {
            ngx_http_qqfail_json_str(o, ev->upstream, ev->upstream_len);
            ngx_http_qqfail_printf(o, 16, ",\"server\":");
            ngx_http_qqfail_json_str(o, ev->server, ev->server_len);

        } else {
            ngx_http_qqfail_printf(o, 32, "null,\"server\":null");
        }

        ngx_http_qqfail_printf(o, 16, ",\"message\":");
        ngx_http_qqfail_json_str(o, ev->message, ev->message_len);
        ngx_http_qqfail_printf(o, 1, "}");
    }

    ngx_http_qqfail_printf(o, 4, "]}\n");
}


/* the Prometheus text exposition format, version 0.0.4 */

static void
ngx_http_qqfail_prom_labels(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_status_server_t *ss)
{
    ngx_http_qqfail_name_t  *names;

    names = ss->server->names.elts;

    ngx_http_qqfail_printf(o, 16, "upstream=\"");
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM,
                           ss->server->upstream->upstream->host.data,
                           ss->server->upstream->upstream->host.len);
    ngx_http_qqfail_printf(o, 16, "\",server=\"");
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM, names[0].text.data,
                           names[0].text.len);
    ngx_http_qqfail_printf(o, 1, "\"");
}


static void
ngx_http_qqfail_status_prometheus(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    int64_t                           v;
    ngx_uint_t                        i, k;
    ngx_http_qqfail_prom_t           *m;
    ngx_http_qqfail_name_t           *names;
    ngx_http_qqfail_provider_t       *pr;
    ngx_http_qqfail_slot_sh_t        *slot;
    ngx_http_qqfail_provider_sh_t    *psh;
    ngx_http_qqfail_status_server_t  *ss;
    u_char                            text[NGX_HTTP_QQFAIL_ADDR_STRLEN];

    ngx_http_qqfail_printf(o, 1024,
        "# HELP qqfail_info Versions of the module and of nginx.\n"
        "# TYPE qqfail_info gauge\n"
        "qqfail_info{version=\"%s\",nginx_version=\"%s\"} 1\n"
        "# HELP qqfail_leader_pid Process id of the worker that looks "
        "names up.\n"
        "# TYPE qqfail_leader_pid gauge\n"
        "qqfail_leader_pid %P\n"
        "# HELP qqfail_generation Configuration generation (reloads).\n"
        "# TYPE qqfail_generation gauge\n"
        "qqfail_generation %ui\n"
        "# HELP qqfail_zone_size_bytes Size of the shared memory zone.\n"
        "# TYPE qqfail_zone_size_bytes gauge\n"
        "qqfail_zone_size_bytes %uz\n"
        "# HELP qqfail_zone_used_bytes Pages of the zone in use.\n"
        "# TYPE qqfail_zone_used_bytes gauge\n"
        "qqfail_zone_used_bytes %uz\n"
        "# HELP qqfail_zone_full 1 while addresses do not fit in the zone.\n"
        "# TYPE qqfail_zone_full gauge\n"
        "qqfail_zone_full %ui\n",
        NGX_HTTP_QQFAIL_VERSION, NGINX_VERSION, snap->leader_pid,
        snap->epoch, snap->zone_size, snap->zone_used, snap->zone_full);

    ngx_http_qqfail_prom_state_file(o, qmcf, snap);

    pr = qmcf->providers.elts;

    /* one family after the other: each family's samples stay together */

    for (m = ngx_http_qqfail_prom_metrics; m->name; m++) {

        ngx_http_qqfail_printf(o, 512, "# HELP %s %s\n# TYPE %s %s\n",
                               m->name, m->help, m->name, m->type);

        switch (m->of) {

        case NGX_HTTP_QQFAIL_PROM_PROVIDER:

            for (i = 0; i < qmcf->providers.nelts; i++) {
                psh = &snap->providers[i];

                for (k = 0; k < (m->what == NGX_HTTP_QQFAIL_PROM_FAILURES
                                 ? NGX_HTTP_QQFAIL_NERRS : 1); k++)
                {
                    ngx_http_qqfail_printf(o, 64, "%s{provider=\"", m->name);
                    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM,
                                           pr[i].name.data, pr[i].name.len);

                    if (m->what == NGX_HTTP_QQFAIL_PROM_FAILURES) {
                        ngx_http_qqfail_printf(o, 32, "\",kind=\"%V",
                                               &ngx_http_qqfail_errors[k]);
                    }

                    if (m->what == NGX_HTTP_QQFAIL_PROM_RTT) {
                        ngx_http_qqfail_printf(o, 64, "\"} %M.%03M\n",
                                               psh->rtt / 1000,
                                               psh->rtt % 1000);
                        continue;
                    }

                    v = ngx_http_qqfail_prom_provider_value(m->what, psh, k);
                    ngx_http_qqfail_printf(o, 32, "\"} %L\n", v);
                }
            }

            break;

        case NGX_HTTP_QQFAIL_PROM_SERVER:

            for (i = 0; i < snap->nservers; i++) {
                ss = &snap->servers[i];

                ngx_http_qqfail_printf(o, 64, "%s{", m->name);
                ngx_http_qqfail_prom_labels(o, ss);
                ngx_http_qqfail_printf(o, 32, "} %L\n",
                                       ngx_http_qqfail_prom_server_value(
                                           m->what, ss));
            }

            break;

        case NGX_HTTP_QQFAIL_PROM_SOURCE:

            for (i = 0; i < snap->nservers; i++) {
                ss = &snap->servers[i];

                for (k = 0; k <= NGX_HTTP_QQFAIL_SOURCE_LITERAL; k++) {
                    ngx_http_qqfail_printf(o, 64, "%s{", m->name);
                    ngx_http_qqfail_prom_labels(o, ss);
                    ngx_http_qqfail_printf(o, 64, ",source=\"%V\"} %d\n",
                                           &ngx_http_qqfail_sources[k],
                                           ss->sh.source == k ? 1 : 0);
                }
            }

            break;

        case NGX_HTTP_QQFAIL_PROM_NAME:

            for (i = 0; i < snap->nservers; i++) {
                ss = &snap->servers[i];
                names = ss->server->names.elts;

                for (k = 0; k < ss->server->names.nelts; k++) {
                    ngx_http_qqfail_printf(o, 64, "%s{", m->name);
                    ngx_http_qqfail_prom_labels(o, ss);
                    ngx_http_qqfail_printf(o, 16, ",name=\"");
                    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM,
                                           names[k].text.data,
                                           names[k].text.len);
                    ngx_http_qqfail_printf(o, 32, "\"} %L\n",
                                           ngx_http_qqfail_prom_name_value(
                                               m->what, ss, k));
                }
            }

            break;

        default: /* NGX_HTTP_QQFAIL_PROM_ADDRESS */

            for (i = 0; i < snap->nservers; i++) {
                ss = &snap->servers[i];

                for (k = 0; k < ss->naddrs; k++) {
                    slot = &ss->slots[k];

                    ngx_http_qqfail_printf(o, 64, "%s{", m->name);
                    ngx_http_qqfail_prom_labels(o, ss);
                    ngx_http_qqfail_printf(o, 128, ",address=\"%*s\"} %ui\n",
                                           ngx_http_qqfail_slot_text(slot,
                                                                     text),
                                           text,
                                           m->what == NGX_HTTP_QQFAIL_PROM_FAILS
                                           ? slot->fails
                                           : (ngx_uint_t)
                                             (ngx_http_qqfail_address_state(
                                                 ss->server, slot, snap->now)
                                              == &ngx_http_qqfail_state_up));
                }
            }

            break;
        }
    }
}


/*
 * No state file, no samples.  The error text is a label of its own
 * family, present only while writes fail, so that the series of the gauge
 * an alert fires on stays the same.
 */

static void
ngx_http_qqfail_prom_state_file(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    if (!qmcf->state_file_set) {
        return;
    }

    ngx_http_qqfail_printf(o, 256,
        "# HELP qqfail_state_file_ok 0 if the last write of the state file "
        "failed.\n"
        "# TYPE qqfail_state_file_ok gauge\n"
        "qqfail_state_file_ok{path=\"");
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM, qmcf->state_file.data,
                           qmcf->state_file.len);
    ngx_http_qqfail_printf(o, 256,
        "\"} %d\n"
        "# HELP qqfail_state_file_last_write_timestamp_seconds Time of the "
        "last successful write of the state file (0: none yet).\n"
        "# TYPE qqfail_state_file_last_write_timestamp_seconds gauge\n"
        "qqfail_state_file_last_write_timestamp_seconds{path=\"",
        snap->state_error[0] ? 0 : 1);
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM, qmcf->state_file.data,
                           qmcf->state_file.len);
    ngx_http_qqfail_printf(o, 32, "\"} %T\n", snap->state_written);

    if (snap->state_error[0] == '\0') {
        return;
    }

    ngx_http_qqfail_printf(o, 256,
        "# HELP qqfail_state_file_error_info Why the last write of the "
        "state file failed.\n"
        "# TYPE qqfail_state_file_error_info gauge\n"
        "qqfail_state_file_error_info{path=\"");
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM, qmcf->state_file.data,
                           qmcf->state_file.len);
    ngx_http_qqfail_printf(o, 16, "\",error=\"");
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_PROM, snap->state_error,
                           ngx_strlen(snap->state_error));
    ngx_http_qqfail_printf(o, 8, "\"} 1\n");
}


static int64_t
ngx_http_qqfail_prom_provider_value(ngx_uint_t what,
    ngx_http_qqfail_provider_sh_t *psh, ngx_uint_t kind)
{
    switch (what) {

    case NGX_HTTP_QQFAIL_PROM_UP:
        return psh->down ? 0 : 1;

    case NGX_HTTP_QQFAIL_PROM_QUERIES:
        return psh->queries;

    case NGX_HTTP_QQFAIL_PROM_FAILURES:
        return psh->failures[kind];

    case NGX_HTTP_QQFAIL_PROM_DISAGREEMENTS:
        return psh->disagreements;

    case NGX_HTTP_QQFAIL_PROM_REJECTED:
        return psh->rejected;

    case NGX_HTTP_QQFAIL_PROM_DROPS:
        return psh->drops;

    default: /* NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS */
        return psh->last_success;
    }
}


static int64_t
ngx_http_qqfail_prom_server_value(ngx_uint_t what,
    ngx_http_qqfail_status_server_t *ss)
{
    switch (what) {

    case NGX_HTTP_QQFAIL_PROM_ADDRESSES:
        return ss->naddrs;

    case NGX_HTTP_QQFAIL_PROM_ON_ALIAS:
        return ss->sh.source != NGX_HTTP_QQFAIL_SOURCE_NONE
               && ss->sh.active != 0;

    case NGX_HTTP_QQFAIL_PROM_FAILOVERS:
        return ss->sh.failovers;

    default: /* NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS */
        return ss->sh.last_success;
    }
}


static int64_t
ngx_http_qqfail_prom_name_value(ngx_uint_t what,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t n)
{
    switch (what) {

    case NGX_HTTP_QQFAIL_PROM_ACTIVE:
        return ss->sh.source != NGX_HTTP_QQFAIL_SOURCE_NONE
               && ss->sh.active == n;

    case NGX_HTTP_QQFAIL_PROM_UP:
        return ss->sh.names[n].state == NGX_HTTP_QQFAIL_NAME_OK;

    default: /* NGX_HTTP_QQFAIL_PROM_REJECTED */
        return ss->sh.names[n].rejected;
    }
}


/* a page that needs no script and no other file */

static void
ngx_http_qqfail_html_time(ngx_http_qqfail_out_t *o, time_t t)
{
    ngx_tm_t  tm;

    if (t == 0) {
        ngx_http_qqfail_printf(o, 8, "never");
        return;
    }

    ngx_gmtime(t, &tm);

    ngx_http_qqfail_printf(o, 32, "%4d-%02d-%02d %02d:%02d:%02d",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                           tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
}


#define ngx_http_qqfail_html_str(o, s, len)                                   \
    ngx_http_qqfail_escape(o, NGX_HTTP_QQFAIL_ESC_HTML, s, len)


static void
ngx_http_qqfail_status_html(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    ngx_uint_t                        i, j, k, e, s, n;
    ngx_str_t                         org, *state;
    ngx_addr_t                       *addr;
    ngx_http_qqfail_name_t           *names;
    ngx_http_qqfail_server_t         *server;
    ngx_http_qqfail_provider_t       *pr;
    ngx_http_qqfail_slot_sh_t        *slot;
    ngx_http_qqfail_event_sh_t       *ev;
    ngx_http_qqfail_srv_conf_t      **qscfp;
    ngx_http_qqfail_provider_sh_t    *psh;
    u_char                            text[NGX_HTTP_QQFAIL_ADDR_STRLEN];
    ngx_http_qqfail_status_server_t  *ss;

    ngx_http_qqfail_printf(o, 2048,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"5\">"
        "<title>qqfail status</title><style>"
        "body{font-family:sans-serif;margin:1em 2em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left;"
        "vertical-align:top}"
        "th{background:#eee}"
        ".up,.live,.ok,.literal{background:#d4f4d4}"
        ".down,.failed,.none,.unavailable{background:#f8d0d0}"
        ".stale,.state_file{background:#fbe3b0}"
        ".alias{background:#fff3b0}"
        "small{color:#666}"
        "</style></head><body>\n"
        "<h1>qqfail status</h1>\n<p>Module %s on nginx %s. Generated ",
        NGX_HTTP_QQFAIL_VERSION, NGINX_VERSION);

    ngx_http_qqfail_html_time(o, snap->now);

    ngx_http_qqfail_printf(o, 256, " UTC; refreshes every 5 s. Lookups by "
                           "worker %P (generation %ui). Shared zone: %uz of "
                           "%uz bytes in use.</p>\n",
                           snap->leader_pid, snap->epoch, snap->zone_used,
                           snap->zone_size);

    if (snap->zone_full) {
        ngx_http_qqfail_printf(o, 256, "<p class=\"down\">The shared zone is "
                               "full: some addresses are not used. Raise "
                               "\"qqfail_zone\" to at least %uzk.</p>\n",
                               snap->zone_needed / 1024);
    }

    if (qmcf->state_file_set) {
        ngx_http_qqfail_printf(o, 256,
            "<h2>State file</h2>\n<table><tr><th>Path</th>"
            "<th>Last write</th><th>Last error</th></tr>\n<tr><td>");
        ngx_http_qqfail_html_str(o, qmcf->state_file.data,
                                 qmcf->state_file.len);
        ngx_http_qqfail_printf(o, 64, "</td><td class=\"%s\">",
                               snap->state_error[0] ? "failed" : "ok");
        ngx_http_qqfail_html_time(o, snap->state_written);
        ngx_http_qqfail_printf(o, 64, "</td><td%s>",
                               snap->state_error[0] ? " class=\"failed\"" : "");
        ngx_http_qqfail_html_str(o, snap->state_error,
                                 ngx_strlen(snap->state_error));
        ngx_http_qqfail_printf(o, 32, "</td></tr>\n</table>\n");
    }

    /* providers */

    ngx_http_qqfail_printf(o, 512,
        "<h2>DNS providers</h2>\n<table><tr><th>Provider</th>"
        "<th>Servers</th><th>State</th><th>Queries</th><th>Timeout</th>"
        "<th>SERVFAIL</th><th>NXDOMAIN</th><th>REFUSED</th><th>Other</th>"
        "<th>Bad answer</th>"
        "<th>Disagreements</th><th>Dropped</th><th>RTT</th>"
        "<th>Last success</th>"
        "<th>Last error</th></tr>\n");

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        psh = &snap->providers[i];

        ngx_http_qqfail_printf(o, 16, "<tr><td>");
        ngx_http_qqfail_html_str(o, pr[i].name.data, pr[i].name.len);
        ngx_http_qqfail_printf(o, 16, "</td><td>");

        addr = pr[i].addrs.elts;

        for (j = 0; j < pr[i].addrs.nelts; j++) {
            ngx_http_qqfail_printf(o, NGX_SOCKADDR_STRLEN + 8, "%s%V",
                                   j ? "<br>" : "", &addr[j].name);
        }

        if (pr[i].system) {
            ngx_http_qqfail_printf(o, 32, "/etc/resolv.conf");
        }

        ngx_http_qqfail_printf(o, 512,
                               "</td><td class=\"%s\">%s</td><td>%ui</td>"
                               "<td>%ui</td><td>%ui</td><td>%ui</td>"
                               "<td>%ui</td><td>%ui</td><td>%ui</td>"
                               "<td>%ui</td><td>%ui</td><td>%M ms</td><td>",
                               psh->down ? "down" : "up",
                               psh->down ? "down" : "up", psh->queries,
                               psh->failures[NGX_HTTP_QQFAIL_ERR_TIMEOUT],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_SERVFAIL],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_NXDOMAIN],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_REFUSED],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_OTHER],
                               psh->failures[NGX_HTTP_QQFAIL_ERR_BADANSWER],
                               psh->disagreements, psh->drops, psh->rtt);

        ngx_http_qqfail_html_time(o, psh->last_success);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_http_qqfail_html_str(o, psh->last_error,
                                 ngx_strnlen(psh->last_error,
                                             NGX_HTTP_QQFAIL_ERRLEN));
        ngx_http_qqfail_printf(o, 16, "</td></tr>\n");
    }

    ngx_http_qqfail_printf(o, 16, "</table>\n");

    /* upstreams */

    qscfp = snap->upstreams;
    ss = snap->servers;

    for (i = 0; i < snap->nupstreams; i++) {

        ngx_http_qqfail_printf(o, 32, "<h2>Upstream ");
        ngx_http_qqfail_html_str(o, qscfp[i]->upstream->host.data,
                                 qscfp[i]->upstream->host.len);
        ngx_http_qqfail_printf(o, 512,
            "</h2>\n<table><tr><th>Server (names in order)</th>"
            "<th>Active name</th><th>Source</th><th>Failovers</th>"
            "<th>Last success</th><th>Addresses</th></tr>\n");

        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            names = server[j].names.elts;
            n = server[j].names.nelts;
            e = ss[j].sh.active < n ? ss[j].sh.active : 0;
            s = ss[j].sh.source;

            ngx_http_qqfail_printf(o, 16, "<tr><td>");

            for (k = 0; k < n; k++) {
                state = &ngx_http_qqfail_name_states[ss[j].sh.names[k].state];

                ngx_http_qqfail_printf(o, 64, "%s<span class=\"%V\">",
                                       k ? "<br>" : "", state);
                ngx_http_qqfail_html_str(o, names[k].text.data,
                                         names[k].text.len);
                ngx_http_qqfail_printf(o, 64, "</span> <small>%V</small>",
                                       state);
            }

            if (server[j].backup || server[j].down) {
                ngx_http_qqfail_printf(o, 64, "<br><small>%s%s</small>",
                                       server[j].backup ? "backup " : "",
                                       server[j].down ? "down" : "");
            }

            if (s == NGX_HTTP_QQFAIL_SOURCE_NONE) {
                ngx_http_qqfail_printf(o, 64,
                                       "</td><td class=\"none\">none</td>");

            } else {
                ngx_http_qqfail_printf(o, 32, "</td><td class=\"%s\">",
                                       e ? "alias" : "ok");
                ngx_http_qqfail_html_str(o, names[e].text.data,
                                         names[e].text.len);
                ngx_http_qqfail_printf(o, 16, "</td>");
            }

            ngx_http_qqfail_printf(o, 128, "<td class=\"%V\">%V</td>"
                                   "<td>%ui</td><td>",
                                   &ngx_http_qqfail_sources[s],
                                   &ngx_http_qqfail_sources[s],
                                   ss[j].sh.failovers);

            ngx_http_qqfail_html_time(o, ss[j].sh.last_success);
            ngx_http_qqfail_printf(o, 16, "</td><td>");

            for (k = 0; k < ss[j].naddrs; k++) {
                slot = &ss[j].slots[k];
                state = ngx_http_qqfail_address_state(&server[j], slot,
                                                      snap->now);

                ngx_http_qqfail_printf(o, 256, "%s<span class=\"%V\">%*s</span>"
                                       " <small>%V, %ui fails",
                                       k ? "<br>" : "", state,
                                       ngx_http_qqfail_slot_text(slot, text),
                                       text, state, (ngx_uint_t) slot->fails);

                if (slot->country[0]) {
                    ngx_http_qqfail_printf(o, 16, ", %*s", (size_t) 2,
                                           slot->country);
                }

                if (slot->asn) {
                    ngx_http_qqfail_printf(o, 32, ", AS%uD ", slot->asn);
                    ngx_http_qqfail_zone_org(qmcf, slot->asn, &org);
                    ngx_http_qqfail_html_str(o, org.data, org.len);
                }

                ngx_http_qqfail_printf(o, 16, "</small>");
            }

            if (ss[j].naddrs == 0) {
                ngx_http_qqfail_printf(o, 32, "<span class=\"none\">"
                                       "none</span>");
            }

            ngx_http_qqfail_printf(o, 16, "</td></tr>\n");
        }

        ngx_http_qqfail_printf(o, 16, "</table>\n");

        ss += qscfp[i]->servers->nelts;
    }

    /* events, newest first */

    ngx_http_qqfail_printf(o, 256,
        "<h2>Recent events</h2>\n<table><tr><th>Time (UTC)</th>"
        "<th>Upstream</th><th>Server</th><th>Event</th></tr>\n");

    for (i = snap->nevents; i > 0; i--) {
        ev = &snap->events[i - 1];

        ngx_http_qqfail_printf(o, 16, "<tr><td>");
        ngx_http_qqfail_html_time(o, ev->time);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_http_qqfail_html_str(o, ev->upstream, ev->upstream_len);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_http_qqfail_html_str(o, ev->server, ev->server_len);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_http_qqfail_html_str(o, ev->message, ev->message_len);
        ngx_http_qqfail_printf(o, 16, "</td></tr>\n");
    }

    if (snap->nevents == 0) {
        ngx_http_qqfail_printf(o, 64, "<tr><td colspan=\"4\">none</td>"
                               "</tr>\n");
    }

    ngx_http_qqfail_printf(o, 32, "</table>\n</body></html>\n");
}
