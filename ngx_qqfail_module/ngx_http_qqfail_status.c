/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_http.h"


/*
 * The page is rendered in steps: a step reads at most
 * NGX_HTTP_QQFAIL_STATUS_WORK servers, in lock holds of at most
 * NGX_HTTP_QQFAIL_STATUS_BATCH servers, and ends once
 * NGX_HTTP_QQFAIL_STATUS_BUDGET bytes are ready; they are sent, and the
 * next step runs after the other events of the worker (or once the client
 * took what was sent), so that a page of thousands of servers never keeps
 * the worker from proxying for more than one step.
 */

#define NGX_HTTP_QQFAIL_STATUS_BUDGET       32768
#define NGX_HTTP_QQFAIL_STATUS_WORK         256
#define NGX_HTTP_QQFAIL_STATUS_BATCH        64
#define NGX_HTTP_QQFAIL_STATUS_SLOTS        (4 * NGX_QQFAIL_MAX_ADDRS)

#define NGX_HTTP_QQFAIL_PHASE_HEAD          0
#define NGX_HTTP_QQFAIL_PHASE_SERVERS       1
#define NGX_HTTP_QQFAIL_PHASE_FAMILIES      2
#define NGX_HTTP_QQFAIL_PHASE_TAIL          3
#define NGX_HTTP_QQFAIL_PHASE_DONE          4

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
#define NGX_HTTP_QQFAIL_PROM_CONNS          13
#define NGX_HTTP_QQFAIL_PROM_VALIDATES      14
#define NGX_HTTP_QQFAIL_PROM_WEIGHT         15
#define NGX_HTTP_QQFAIL_PROM_BACKUP         16
#define NGX_HTTP_QQFAIL_PROM_INDEPENDENT    17


/* a copy of one server's shared record, taken under the lock */

typedef struct {
    ngx_qqfail_server_t             *server;
    ngx_qqfail_server_sh_t           sh;
    ngx_qqfail_check_sh_t            check;      /* checked 0: none */
    ngx_qqfail_name_sh_t             names[NGX_QQFAIL_MAX_NAMES];
    ngx_uint_t                       naddrs;
    ngx_qqfail_slot_sh_t            *slots;
} ngx_http_qqfail_status_server_t;


/* what Prometheus shows of a server: kept until every family is out */

typedef struct {
    ngx_uint_t                       state;
    ngx_uint_t                       rejected;
} ngx_http_qqfail_prom_name_t;


typedef struct {
    ngx_uint_t                       fails;
    ngx_uint_t                       up;
    ngx_uint_t                       conns;
    ngx_uint_t                       weight;
    ngx_uint_t                       backup;
    size_t                           text_len;
    u_char                           text[NGX_QQFAIL_ADDR_STRLEN];
} ngx_http_qqfail_prom_addr_t;


typedef struct {
    ngx_qqfail_server_t             *server;
    time_t                           last_success;
    ngx_uint_t                       source;
    ngx_uint_t                       active;
    ngx_uint_t                       failovers;
    ngx_int_t                        independent;    /* -1: unknown */
    ngx_uint_t                       naddrs;
    ngx_http_qqfail_prom_name_t     *names;
    ngx_http_qqfail_prom_addr_t     *addrs;
} ngx_http_qqfail_prom_server_t;


/* ?view=summary: one upstream in counts */

typedef struct {
    ngx_uint_t                       sources[NGX_QQFAIL_SOURCE_LITERAL
                                             + 1];
    ngx_uint_t                       on_alias;
    ngx_uint_t                       addresses;
} ngx_http_qqfail_status_count_t;


/* the parts of the page that are not per server: one lock hold */

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
    u_char                           state_error[NGX_QQFAIL_ERRLEN * 2];
    /* in configuration order */
    ngx_qqfail_provider_sh_t         providers[NGX_QQFAIL_MAX_PROVIDERS];
    /* the upstreams shown (all, or the one ?upstream= names), in order */
    ngx_uint_t                       nupstreams;
    ngx_qqfail_srv_conf_t          **upstreams;
    ngx_uint_t                       nservers;
    /* events ever recorded; the last ones, oldest first */
    ngx_uint_t                       events_total;
    ngx_uint_t                       nevents;
    ngx_qqfail_event_sh_t            events[NGX_QQFAIL_NEVENTS];
} ngx_http_qqfail_snapshot_t;


typedef struct {
    char                            *name;
    char                            *help;
    char                            *type;
    ngx_uint_t                       of;
    ngx_uint_t                       what;
} ngx_http_qqfail_prom_t;


/* output that grows buffer by buffer; sent buffers are reused */

typedef struct {
    ngx_http_request_t              *r;
    ngx_chain_t                     *out;
    ngx_chain_t                    **last;
    ngx_buf_t                       *b;
    ngx_chain_t                     *free;
    ngx_chain_t                     *busy;
    size_t                           size;       /* in out */
    ngx_uint_t                       error;
} ngx_http_qqfail_out_t;


typedef struct ngx_http_qqfail_status_ctx_s  ngx_http_qqfail_status_ctx_t;

/*
 * A format: "start" (the head), then per upstream shown "open", "server"
 * for each server and "close" (the full view: NULL ones are skipped), then
 * "tail" until it ends the page.  The summary view counts the servers
 * instead of rendering them.
 */

typedef struct {
    void  (*start)(ngx_http_qqfail_status_ctx_t *ctx);
    void  (*open)(ngx_http_qqfail_status_ctx_t *ctx,
                  ngx_qqfail_srv_conf_t *qscf);
    void  (*server)(ngx_http_qqfail_status_ctx_t *ctx,
                    ngx_http_qqfail_status_server_t *ss, ngx_uint_t index);
    void  (*close)(ngx_http_qqfail_status_ctx_t *ctx);
    void  (*tail)(ngx_http_qqfail_status_ctx_t *ctx);
} ngx_http_qqfail_render_t;

struct ngx_http_qqfail_status_ctx_s {
    ngx_qqfail_main_conf_t          *qmcf;
    ngx_http_qqfail_render_t        *render;
    ngx_http_qqfail_out_t            o;
    ngx_uint_t                       phase;
    /* the cursor: an upstream of snap.upstreams, one of its servers */
    ngx_uint_t                       upstream;
    ngx_uint_t                       server;
    ngx_uint_t                       work;       /* servers read, this step */
    ngx_uint_t                       nbatch;
    ngx_http_qqfail_status_server_t  batch[NGX_HTTP_QQFAIL_STATUS_BATCH];
    ngx_qqfail_slot_sh_t            *slots;      /* STATUS_SLOTS */
    /* Prometheus: the family and the server it is at */
    ngx_http_qqfail_prom_t          *family;
    ngx_uint_t                       item;
    ngx_uint_t                       nprom;
    ngx_http_qqfail_prom_server_t   *prom;
    /* ?view=summary: one per upstream shown */
    ngx_http_qqfail_status_count_t  *counts;
    ngx_http_qqfail_snapshot_t       snap;
    unsigned                         header_sent:1;
    unsigned                         opened:1;
};


static ngx_uint_t ngx_http_qqfail_status_format(ngx_http_request_t *r,
    ngx_uint_t format);
static ngx_int_t ngx_http_qqfail_status_view(ngx_http_request_t *r,
    ngx_uint_t *summary);
static ngx_int_t ngx_http_qqfail_status_select(ngx_http_request_t *r,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_status_globals(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_uint_t events);
static void ngx_http_qqfail_status_cleanup(void *data);
static ngx_http_qqfail_status_ctx_t *ngx_http_qqfail_status_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_qqfail_status_step(ngx_http_request_t *r,
    ngx_http_qqfail_status_ctx_t *ctx, ngx_uint_t all);
static ngx_int_t ngx_http_qqfail_status_wait(ngx_http_request_t *r);
static void ngx_http_qqfail_status_write(ngx_http_request_t *r);
static void ngx_http_qqfail_status_batch(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_status_count(ngx_http_qqfail_status_ctx_t *ctx);
static u_char *ngx_http_qqfail_reserve(ngx_http_qqfail_out_t *o, size_t n);
static void ngx_http_qqfail_printf(ngx_http_qqfail_out_t *o, size_t max,
    const char *fmt, ...);
static void ngx_http_qqfail_escape(ngx_http_qqfail_out_t *o, ngx_uint_t how,
    u_char *s, size_t len);
static ngx_str_t *ngx_http_qqfail_address_state(
    ngx_qqfail_server_t *server, ngx_qqfail_slot_sh_t *slot,
    time_t now);
static void ngx_http_qqfail_status_render(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_json_head(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_json_start(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_json_open(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_qqfail_srv_conf_t *qscf);
static ngx_int_t ngx_http_qqfail_independent(
    ngx_http_qqfail_status_server_t *ss);
static void ngx_http_qqfail_json_independence(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_status_server_t *ss);
static void ngx_http_qqfail_html_independence(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_status_server_t *ss);
static void ngx_http_qqfail_json_server(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t index);
static void ngx_http_qqfail_json_close(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_json_events(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_json_counts(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_prom_head(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_prom_start(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_prom_summary_start(
    ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_prom_providers(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap,
    ngx_http_qqfail_prom_t *m);
static void ngx_http_qqfail_prom_keep(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t index);
static void ngx_http_qqfail_prom_families(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_prom_server(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_prom_t *m, ngx_http_qqfail_prom_server_t *ps);
static void ngx_http_qqfail_prom_counts(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_prom_labels(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_prom_server_t *ps);
static int64_t ngx_http_qqfail_prom_provider_value(ngx_uint_t what,
    ngx_qqfail_provider_sh_t *psh, ngx_uint_t kind);
static int64_t ngx_http_qqfail_prom_server_value(ngx_uint_t what,
    ngx_http_qqfail_prom_server_t *ps);
static int64_t ngx_http_qqfail_prom_name_value(ngx_uint_t what,
    ngx_http_qqfail_prom_server_t *ps, ngx_uint_t n);
static void ngx_http_qqfail_prom_state_file(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_html_head(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static void ngx_http_qqfail_html_start(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_html_open(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_qqfail_srv_conf_t *qscf);
static void ngx_http_qqfail_html_server(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t index);
static void ngx_http_qqfail_html_close(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_html_events(ngx_http_qqfail_status_ctx_t *ctx);
static void ngx_http_qqfail_html_counts(ngx_http_qqfail_status_ctx_t *ctx);
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

    { "qqfail_provider_validates",
      "qqfail_dnssec: 1 if the provider marked an answer validated, 0 if "
      "it answered and never did; no sample before its first answer.",
      "gauge",
      NGX_HTTP_QQFAIL_PROM_PROVIDER, NGX_HTTP_QQFAIL_PROM_VALIDATES },

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

    { "qqfail_server_independent",
      "1 if the independence check found the server's names independent, "
      "0 if not; no sample before the check or without aliases.", "gauge",
      NGX_HTTP_QQFAIL_PROM_SERVER, NGX_HTTP_QQFAIL_PROM_INDEPENDENT },

    { "qqfail_server_last_success_timestamp_seconds",
      "Time of the last successful lookup.", "gauge",
      NGX_HTTP_QQFAIL_PROM_SERVER, NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS },

    { "qqfail_address_up", "1 if the address may get requests.", "gauge",
      NGX_HTTP_QQFAIL_PROM_ADDRESS, NGX_HTTP_QQFAIL_PROM_UP },

    { "qqfail_address_fails",
      "Failed requests counted against max_fails.", "gauge",
      NGX_HTTP_QQFAIL_PROM_ADDRESS, NGX_HTTP_QQFAIL_PROM_FAILS },

    { "qqfail_address_active",
      "Connections open to the address, by all workers.", "gauge",
      NGX_HTTP_QQFAIL_PROM_ADDRESS, NGX_HTTP_QQFAIL_PROM_CONNS },

    { "qqfail_address_weight",
      "The address's weight: the server's, or its SRV record's.", "gauge",
      NGX_HTTP_QQFAIL_PROM_ADDRESS, NGX_HTTP_QQFAIL_PROM_WEIGHT },

    { "qqfail_address_backup",
      "1 if the address is a backup: its server's, or its SRV record's "
      "priority.", "gauge",
      NGX_HTTP_QQFAIL_PROM_ADDRESS, NGX_HTTP_QQFAIL_PROM_BACKUP },

    { NULL, NULL, NULL, 0, 0 }
};


static ngx_str_t  ngx_http_qqfail_name_states[] = {
    ngx_string("unknown"),
    ngx_string("ok"),
    ngx_string("failed")
};


/* by view (full, summary) and format (json, prometheus, html) */

static ngx_http_qqfail_render_t  ngx_http_qqfail_renders[2][3] = {

    { { ngx_http_qqfail_json_start, ngx_http_qqfail_json_open,
        ngx_http_qqfail_json_server, ngx_http_qqfail_json_close,
        ngx_http_qqfail_json_events },

      { ngx_http_qqfail_prom_start, NULL,
        ngx_http_qqfail_prom_keep, NULL,
        ngx_http_qqfail_prom_families },

      { ngx_http_qqfail_html_start, ngx_http_qqfail_html_open,
        ngx_http_qqfail_html_server, ngx_http_qqfail_html_close,
        ngx_http_qqfail_html_events } },

    { { ngx_http_qqfail_json_start, NULL, NULL, NULL,
        ngx_http_qqfail_json_counts },

      { ngx_http_qqfail_prom_summary_start, NULL, NULL, NULL,
        ngx_http_qqfail_prom_counts },

      { ngx_http_qqfail_html_start, NULL, NULL, NULL,
        ngx_http_qqfail_html_counts } }
};


ngx_int_t
ngx_http_qqfail_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_uint_t                     format, summary, events;
    ngx_table_elt_t               *h;
    ngx_pool_cleanup_t            *cln;
    ngx_http_qqfail_loc_conf_t    *qlcf;
    ngx_qqfail_main_conf_t        *qmcf;
    ngx_http_qqfail_status_ctx_t  *ctx;

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

    rc = ngx_http_qqfail_status_view(r, &summary);

    if (rc != NGX_OK) {
        return rc;
    }

    qmcf = ngx_http_get_module_main_conf(r, ngx_http_qqfail_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_qqfail_status_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->qmcf = qmcf;
    ctx->o.r = r;
    ctx->o.last = &ctx->o.out;

    /* ?upstream=NAME narrows the page to one upstream */

    rc = ngx_http_qqfail_status_select(r, qmcf, &ctx->snap);

    if (rc != NGX_OK) {
        return rc;
    }

    /* Prometheus text and the summary have no events: no need to copy */

    events = (format != NGX_QQFAIL_STATUS_PROMETHEUS && !summary);

    ngx_http_qqfail_status_globals(ctx, events);

    if (summary) {
        ctx->counts = ngx_pcalloc(r->pool, ctx->snap.nupstreams
                                  * sizeof(ngx_http_qqfail_status_count_t));
        if (ctx->counts == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        ctx->slots = ngx_palloc(r->pool, NGX_HTTP_QQFAIL_STATUS_SLOTS
                                         * sizeof(ngx_qqfail_slot_sh_t));
        if (ctx->slots == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->render = &ngx_http_qqfail_renders[summary][format - 1];

    switch (format) {

    case NGX_QQFAIL_STATUS_PROMETHEUS:
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

        if (summary) {
            break;
        }

        ctx->prom = ngx_palloc(r->pool,
                               (ctx->snap.nservers ? ctx->snap.nservers : 1)
                               * sizeof(ngx_http_qqfail_prom_server_t));
        if (ctx->prom == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        break;

    case NGX_QQFAIL_STATUS_HTML:
        ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
        break;

    default: /* NGX_QQFAIL_STATUS_JSON */
        ngx_str_set(&r->headers_out.content_type, "application/json");
        break;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_qqfail_status_cleanup;
    cln->data = ctx;

    if (r != r->main) {
        /* a subrequest (SSI): in one go, as its output is postponed */
        return ngx_http_qqfail_status_step(r, ctx, 1);
    }

    rc = ngx_http_qqfail_status_step(r, ctx, 0);

    if (ctx->phase == NGX_HTTP_QQFAIL_PHASE_DONE) {
        return rc;
    }

    if (ngx_http_qqfail_status_wait(r) != NGX_OK) {
        return NGX_ERROR;
    }

    r->main->count++;
    r->write_event_handler = ngx_http_qqfail_status_write;

    return NGX_DONE;
}


/* ?view=full (the default) or ?view=summary; anything else: 400 */

static ngx_int_t
ngx_http_qqfail_status_view(ngx_http_request_t *r, ngx_uint_t *summary)
{
    ngx_str_t  value;

    *summary = 0;

    if (ngx_http_arg(r, (u_char *) "view", 4, &value) != NGX_OK) {
        return NGX_OK;
    }

    if (value.len == 4 && ngx_strncmp(value.data, "full", 4) == 0) {
        return NGX_OK;
    }

    if (value.len == 7 && ngx_strncmp(value.data, "summary", 7) == 0) {
        *summary = 1;
        return NGX_OK;
    }

    return NGX_HTTP_BAD_REQUEST;
}


/*
 * The pool cleanup carries the context, for the write handler (the
 * module's request context belongs to the balancer's $qqfail_ variables).
 */

static void
ngx_http_qqfail_status_cleanup(void *data)
{
    ngx_http_qqfail_status_ctx_t  *ctx = data;

    ctx->o.r = NULL;
}


static ngx_http_qqfail_status_ctx_t *
ngx_http_qqfail_status_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_qqfail_status_cleanup) {
            return cln->data;
        }
    }

    return NULL;
}


/*
 * One step: renders until the byte budget or the work bound is reached
 * ("all": to the end), then sends what is ready.  The response has a
 * Content-Length when the first send is the whole page, and is chunked
 * otherwise.  The phase is NGX_HTTP_QQFAIL_PHASE_DONE when the request is
 * to be finalized with the value returned.
 */

static ngx_int_t
ngx_http_qqfail_status_step(ngx_http_request_t *r,
    ngx_http_qqfail_status_ctx_t *ctx, ngx_uint_t all)
{
    ngx_int_t               rc;
    ngx_uint_t              done;
    ngx_chain_t            *cl;
    ngx_table_elt_t        *h;
    ngx_http_qqfail_out_t  *o;

    o = &ctx->o;
    ctx->work = 0;

    while (ctx->phase != NGX_HTTP_QQFAIL_PHASE_DONE
           && (all || (o->size < NGX_HTTP_QQFAIL_STATUS_BUDGET
                       && ctx->work < NGX_HTTP_QQFAIL_STATUS_WORK)))
    {
        ngx_http_qqfail_status_render(ctx);
    }

    done = (ctx->phase == NGX_HTTP_QQFAIL_PHASE_DONE);

    if (done && o->out == NULL) {
        (void) ngx_http_qqfail_reserve(o, 1);
    }

    if (o->error) {
        ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
        return ctx->header_sent ? NGX_ERROR : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!done && o->size < NGX_HTTP_QQFAIL_STATUS_BUDGET) {
        return NGX_AGAIN;
    }

    if (!ctx->header_sent) {
        ctx->header_sent = 1;

        r->headers_out.status = NGX_HTTP_OK;
        r->headers_out.content_length_n = done ? (off_t) o->size : -1;

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Cache-Control");
        ngx_str_set(&h->value, "no-store");

        rc = ngx_http_send_header(r);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
            return rc;
        }
    }

    for (cl = o->out; cl->next; cl = cl->next) { /* void */ }

    /* the write filter holds small output back unless told */
    cl->buf->flush = 1;

    if (done) {
        cl->buf->last_buf = (r == r->main) ? 1 : 0;
        cl->buf->last_in_chain = 1;
    }

    rc = ngx_http_output_filter(r, o->out);

    ngx_chain_update_chains(r->pool, &o->free, &o->busy, &o->out,
                            (ngx_buf_tag_t) &ngx_http_qqfail_module);

    o->last = &o->out;
    o->b = NULL;
    o->size = 0;

    if (rc == NGX_ERROR) {
        ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
    }

    return rc;
}


/*
 * Until the next step: the client takes what was sent (a slow client
 * holds at most one step's output), or the worker serves the events
 * ready now and comes back (ngx_posted_next_events).
 */

static ngx_int_t
ngx_http_qqfail_status_wait(ngx_http_request_t *r)
{
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;

    if (r->buffered || c->buffered || wev->delayed) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        return ngx_handle_write_event(wev, clcf->send_lowat);
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    ngx_post_event(wev, &ngx_posted_next_events);

    return NGX_OK;
}


static void
ngx_http_qqfail_status_write(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_chain_t                   *none;
    ngx_event_t                   *wev;
    ngx_connection_t              *c;
    ngx_http_qqfail_status_ctx_t  *ctx;

    c = r->connection;
    wev = c->write;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    ctx = ngx_http_qqfail_status_ctx(r);

    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (wev->delayed) {
        if (ngx_http_qqfail_status_wait(r) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (r->buffered || c->buffered) {
        rc = ngx_http_output_filter(r, NULL);

        /* what was sent: its buffers are free again */

        none = NULL;
        ngx_chain_update_chains(r->pool, &ctx->o.free, &ctx->o.busy, &none,
                                (ngx_buf_tag_t) &ngx_http_qqfail_module);

        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        if (r->buffered || c->buffered) {
            if (ngx_http_qqfail_status_wait(r) != NGX_OK) {
                ngx_http_finalize_request(r, NGX_ERROR);
            }

            return;
        }
    }

    rc = ngx_http_qqfail_status_step(r, ctx, 0);

    if (ctx->phase == NGX_HTTP_QQFAIL_PHASE_DONE) {

        /* called by the kernel's event while posted: no step after this */

        if (wev->posted) {
            ngx_delete_posted_event(wev);
        }

        r->write_event_handler = ngx_http_request_empty_handler;
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (ngx_http_qqfail_status_wait(r) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
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
            return NGX_QQFAIL_STATUS_JSON;
        }

        if (value.len == 10
            && ngx_strncmp(value.data, "prometheus", 10) == 0)
        {
            return NGX_QQFAIL_STATUS_PROMETHEUS;
        }

        if (value.len == 4 && ngx_strncmp(value.data, "html", 4) == 0) {
            return NGX_QQFAIL_STATUS_HTML;
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
            return NGX_QQFAIL_STATUS_HTML;
        }

        if (ngx_strlcasestrn(h[i].value.data, last,
                             (u_char *) "application/json", 16 - 1))
        {
            return NGX_QQFAIL_STATUS_JSON;
        }

        if (ngx_strlcasestrn(h[i].value.data, last,
                             (u_char *) "openmetrics", 11 - 1)
            || ngx_strlcasestrn(h[i].value.data, last,
                                (u_char *) "text/plain", 10 - 1))
        {
            return NGX_QQFAIL_STATUS_PROMETHEUS;
        }
    }

    return format;
}


/* every upstream, or the one ?upstream= names (404 if none has the name) */

static ngx_int_t
ngx_http_qqfail_status_select(ngx_http_request_t *r,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    u_char                  *dst, *src;
    ngx_str_t                value, name;
    ngx_uint_t               i;
    ngx_qqfail_srv_conf_t  **qscfp;

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
        if (qscfp[i]->name.len == name.len
            && ngx_strncmp(qscfp[i]->name.data, name.data,
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
 * What is not per server, in one lock hold: the leader, the providers,
 * the zone, the state file and the events agree with each other, as of
 * the start of the response.
 */

static void
ngx_http_qqfail_status_globals(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_uint_t events)
{
    ngx_uint_t                   i, n;
    ngx_slab_pool_t             *shpool;
    ngx_qqfail_sh_t             *sh;
    ngx_qqfail_provider_t       *pr;
    ngx_http_qqfail_snapshot_t  *snap;
    ngx_qqfail_main_conf_t      *qmcf;

    qmcf = ctx->qmcf;
    snap = &ctx->snap;

    snap->now = ngx_time();

    n = 0;

    for (i = 0; i < snap->nupstreams; i++) {
        n += snap->upstreams[i]->servers->nelts;
    }

    snap->nservers = n;

    if (qmcf->sh == NULL) {
        return;
    }

    sh = qmcf->sh;
    shpool = qmcf->shpool;

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
    snap->zone_needed = sh->full ? ngx_qqfail_zone_suggest(qmcf) * 1024
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

    if (sh->events) {
        snap->events_total = sh->events->nevents;
    }

    if (events && sh->events) {
        snap->nevents = ngx_min(sh->events->nevents, NGX_QQFAIL_NEVENTS);

        for (i = 0; i < snap->nevents; i++) {
            snap->events[i] = sh->events->event[(sh->events->nevents
                                                 - snap->nevents + i)
                                                % NGX_QQFAIL_NEVENTS];
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* one piece of the page, in the order of the format's parts */

static void
ngx_http_qqfail_status_render(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_qqfail_render_t  *rn;
    ngx_qqfail_srv_conf_t     *qscf;

    rn = ctx->render;

    switch (ctx->phase) {

    case NGX_HTTP_QQFAIL_PHASE_HEAD:
        rn->start(ctx);
        ctx->phase = NGX_HTTP_QQFAIL_PHASE_SERVERS;
        return;

    case NGX_HTTP_QQFAIL_PHASE_SERVERS:

        if (ctx->counts) {
            ngx_http_qqfail_status_count(ctx);
            return;
        }

        if (ctx->upstream == ctx->snap.nupstreams) {
            ctx->phase = NGX_HTTP_QQFAIL_PHASE_TAIL;
            return;
        }

        qscf = ctx->snap.upstreams[ctx->upstream];

        if (!ctx->opened) {
            if (rn->open) {
                rn->open(ctx, qscf);
            }

            ctx->opened = 1;
        }

        if (ctx->server < qscf->servers->nelts) {
            ngx_http_qqfail_status_batch(ctx);

            for (i = 0; i < ctx->nbatch; i++) {
                rn->server(ctx, &ctx->batch[i], ctx->server + i);
            }

            ctx->server += ctx->nbatch;
        }

        if (ctx->server == qscf->servers->nelts) {
            if (rn->close) {
                rn->close(ctx);
            }

            ctx->upstream++;
            ctx->server = 0;
            ctx->opened = 0;
        }

        return;

    default: /* NGX_HTTP_QQFAIL_PHASE_TAIL: until the page ends */
        rn->tail(ctx);
        return;
    }
}


/*
 * The servers of the cursor's upstream from the cursor on, as many as the
 * batch holds, in one lock hold: the fields of one server agree with each
 * other; servers of different batches may be copied at different moments,
 * so the page is not one snapshot of every server.
 */

static void
ngx_http_qqfail_status_batch(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                        i, k, n, used;
    ngx_slab_pool_t                  *shpool;
    ngx_qqfail_slots_t                it;
    ngx_qqfail_server_t              *server;
    ngx_qqfail_slot_sh_t             *slot;
    ngx_qqfail_srv_conf_t            *qscf;
    ngx_http_qqfail_status_server_t  *ss;

    qscf = ctx->snap.upstreams[ctx->upstream];
    server = qscf->servers->elts;

    n = ngx_min(qscf->servers->nelts - ctx->server,
                NGX_HTTP_QQFAIL_STATUS_BATCH);

    if (ctx->qmcf->sh == NULL) {
        for (i = 0; i < n; i++) {
            ss = &ctx->batch[i];
            ss->server = &server[ctx->server + i];
            ngx_memzero(&ss->sh, sizeof(ngx_qqfail_server_sh_t));
            ss->check.checked = 0;
            ss->naddrs = 0;
            ss->slots = ctx->slots;
        }

        ctx->nbatch = n;
        ctx->work += n;
        return;
    }

    shpool = ctx->qmcf->shpool;
    used = 0;

    ngx_shmtx_lock(&shpool->mutex);

    /*
     * room for the slots: a publication replaces a server's addresses with
     * at most NGX_QQFAIL_MAX_ADDRS, so no more slots are ever in use
     */

    for (i = 0;
         i < n && used + NGX_QQFAIL_MAX_ADDRS
                  <= NGX_HTTP_QQFAIL_STATUS_SLOTS;
         i++)
    {
        ss = &ctx->batch[i];
        ss->server = &server[ctx->server + i];
        ss->sh = *ss->server->sh;

        if (ss->sh.check) {
            ss->check = *ss->sh.check;

        } else {
            ss->check.checked = 0;
        }
        ngx_memcpy(ss->names, ss->sh.names,
                   ss->sh.nnames * sizeof(ngx_qqfail_name_sh_t));
        ss->sh.names = ss->names;
        ss->slots = &ctx->slots[used];

        k = 0;

        for (slot = ngx_qqfail_slot_first(&ss->sh, &it);
             slot && k < NGX_QQFAIL_MAX_ADDRS;
             slot = ngx_qqfail_slot_next(&it))
        {
            if (slot->in_use) {
                ss->slots[k++] = *slot;
            }
        }

        ss->naddrs = k;
        used += k;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ctx->nbatch = i;
    ctx->work += i;
}


/* ?view=summary: counts from the cursor on, up to the work of a step */

static void
ngx_http_qqfail_status_count(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                       n;
    ngx_slab_pool_t                 *shpool;
    ngx_qqfail_server_t             *server;
    ngx_qqfail_srv_conf_t           *qscf;
    ngx_qqfail_server_sh_t          *ssh;
    ngx_http_qqfail_status_count_t  *count;

    shpool = ctx->qmcf->shpool;

    if (ctx->qmcf->sh == NULL) {
        ctx->upstream = ctx->snap.nupstreams;
        ctx->phase = NGX_HTTP_QQFAIL_PHASE_TAIL;
        return;
    }

    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    while (ctx->upstream < ctx->snap.nupstreams
           && n < NGX_HTTP_QQFAIL_STATUS_WORK)
    {
        qscf = ctx->snap.upstreams[ctx->upstream];
        server = qscf->servers->elts;
        count = &ctx->counts[ctx->upstream];

        for ( /* void */ ;
             ctx->server < qscf->servers->nelts
             && n < NGX_HTTP_QQFAIL_STATUS_WORK;
             ctx->server++, n++)
        {
            ssh = server[ctx->server].sh;

            if (ssh->source <= NGX_QQFAIL_SOURCE_LITERAL) {
                count->sources[ssh->source]++;
            }

            if (ssh->source != NGX_QQFAIL_SOURCE_NONE
                && ssh->active != 0)
            {
                count->on_alias++;
            }

            count->addresses += ssh->naddrs;
        }

        if (ctx->server == qscf->servers->nelts) {
            ctx->upstream++;
            ctx->server = 0;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ctx->work += n ? n : 1;

    if (ctx->upstream == ctx->snap.nupstreams) {
        ctx->upstream = 0;
        ctx->phase = NGX_HTTP_QQFAIL_PHASE_TAIL;
    }
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

    cl = ngx_chain_get_free_buf(o->r->pool, &o->free);
    if (cl == NULL) {
        o->error = 1;
        return NULL;
    }

    b = cl->buf;

    if (b->start == NULL || (size_t) (b->end - b->start) < n) {
        size = ngx_max(n, 16384);

        b->start = ngx_palloc(o->r->pool, size);
        if (b->start == NULL) {
            o->error = 1;
            return NULL;
        }

        b->end = b->start + size;
        b->temporary = 1;
        b->tag = (ngx_buf_tag_t) &ngx_http_qqfail_module;
    }

    b->pos = b->start;
    b->last = b->start;
    b->flush = 0;
    b->last_buf = 0;
    b->last_in_chain = 0;

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
    u_char  *p, *last;
    va_list  args;

    p = ngx_http_qqfail_reserve(o, max);
    if (p == NULL) {
        return;
    }

    va_start(args, fmt);
    last = ngx_vslprintf(p, p + max, fmt, args);
    va_end(args);

    o->size += last - p;
    o->b->last = last;
}


/* valid UTF-8 escaped for the format: ngx_qqfail_text_escape() */

static void
ngx_http_qqfail_escape(ngx_http_qqfail_out_t *o, ngx_uint_t how, u_char *s,
    size_t len)
{
    u_char  *p, *last;

    p = ngx_http_qqfail_reserve(o, NGX_QQFAIL_ESCAPE_LEN(len) + 1);
    if (p == NULL) {
        return;
    }

    last = ngx_qqfail_text_escape(p, how, s, len);

    o->size += last - p;
    o->b->last = last;
}


static ngx_str_t *
ngx_http_qqfail_address_state(ngx_qqfail_server_t *server,
    ngx_qqfail_slot_sh_t *slot, time_t now)
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


/* an address's weight and backup: its SRV record's, else the server's */

#define ngx_http_qqfail_slot_weight(server, slot)                             \
    ((slot)->srv ? (ngx_uint_t) ngx_qqfail_srv_weight((slot)->srv)            \
                 : (server)->weight)

#define ngx_http_qqfail_slot_backup(server, slot)                             \
    ((server)->backup || ((slot)->srv & NGX_QQFAIL_SRV_BACKUP) ? 1 : 0)


#define ngx_qqfail_json_str(o, s, len)                                        \
    ngx_http_qqfail_printf(o, 1, "\"");                                       \
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_JSON, s, len);                   \
    ngx_http_qqfail_printf(o, 1, "\"")


/* from the top to the last provider, the same in both views */

static void
ngx_http_qqfail_json_head(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    ngx_uint_t                 i, j;
    ngx_addr_t                *addr;
    ngx_qqfail_provider_t     *pr;
    ngx_qqfail_provider_sh_t  *psh;

    ngx_http_qqfail_printf(o, 512,
                           "{\"version\":\"%s\",\"nginx_version\":\"%s\","
                           "\"time\":%T,"
                           "\"leader\":{\"pid\":%P,\"generation\":%ui},"
                           "\"zone\":{\"size\":%uz,\"used\":%uz,"
                           "\"full\":%s,\"suggested_size\":%uz},"
                           "\"state_file\":",
                           NGX_QQFAIL_VERSION, NGINX_VERSION, snap->now,
                           snap->leader_pid, snap->epoch, snap->zone_size,
                           snap->zone_used,
                           snap->zone_full ? "true" : "false",
                           snap->zone_needed);

    if (qmcf->state_file_set) {
        ngx_http_qqfail_printf(o, 16, "{\"path\":");
        ngx_qqfail_json_str(o, qmcf->state_file.data,
                            qmcf->state_file.len);
        ngx_http_qqfail_printf(o, 64, ",\"last_write\":%T,\"last_error\":",
                               snap->state_written);
        ngx_qqfail_json_str(o, snap->state_error,
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
        ngx_qqfail_json_str(o, pr[i].name.data, pr[i].name.len);
        ngx_http_qqfail_printf(o, 16, ",\"servers\":[");

        addr = pr[i].addrs.elts;

        for (j = 0; j < pr[i].addrs.nelts; j++) {
            ngx_http_qqfail_printf(o, NGX_SOCKADDR_STRLEN + 4, "%s\"%V\"",
                                   j ? "," : "", &addr[j].name);
        }

        ngx_http_qqfail_printf(o, 640,
                               "],\"state\":\"%s\",\"queries\":%ui,"
                               "\"failures\":{\"timeout\":%ui,"
                               "\"servfail\":%ui,\"nxdomain\":%ui,"
                               "\"refused\":%ui,\"other\":%ui,"
                               "\"bad_answer\":%ui,\"unvalidated\":%ui},"
                               "\"validates\":%s,"
                               "\"disagreements\":%ui,\"rejected\":%ui,"
                               "\"drops\":%ui,\"rtt_ms\":%M,"
                               "\"last_success\":%T,\"last_failure\":%T,"
                               "\"last_error\":",
                               psh->down ? "down" : "up", psh->queries,
                               psh->failures[NGX_QQFAIL_ERR_TIMEOUT],
                               psh->failures[NGX_QQFAIL_ERR_SERVFAIL],
                               psh->failures[NGX_QQFAIL_ERR_NXDOMAIN],
                               psh->failures[NGX_QQFAIL_ERR_REFUSED],
                               psh->failures[NGX_QQFAIL_ERR_OTHER],
                               psh->failures[NGX_QQFAIL_ERR_BADANSWER],
                               psh->failures[NGX_QQFAIL_ERR_UNVALIDATED],
                               psh->validated ? "true"
                               : psh->unvalidated ? "false" : "null",
                               psh->disagreements, psh->rejected,
                               psh->drops, psh->rtt,
                               psh->last_success, psh->last_failure);

        ngx_qqfail_json_str(o, psh->last_error,
                            ngx_strnlen(psh->last_error,
                                        NGX_QQFAIL_ERRLEN));
        ngx_http_qqfail_printf(o, 1, "}");
    }
}


/*
 * The independence check's verdict on a server: 1, 0, or -1 before its
 * first check and for a server without two names to check; a note on the
 * TLD operator alone leaves the names independent
 */

static ngx_int_t
ngx_http_qqfail_independent(ngx_http_qqfail_status_server_t *ss)
{
    ngx_uint_t              k;
    ngx_qqfail_check_sh_t  *c;

    c = &ss->check;

    if (c->checked == 0 || ngx_qqfail_check_named(ss->server) < 2) {
        return -1;
    }

    if (c->more) {
        return 0;
    }

    for (k = 0; k < c->nfindings && k < NGX_QQFAIL_FINDINGS; k++) {
        if (c->finding[k].kind != NGX_QQFAIL_FINDING_TLD_OPERATOR) {
            return 0;
        }
    }

    return 1;
}


static void
ngx_http_qqfail_json_independence(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_status_server_t *ss)
{
    ngx_int_t                 v;
    ngx_uint_t                k, i, first;
    ngx_qqfail_name_t        *names;
    ngx_qqfail_check_sh_t    *c;
    ngx_qqfail_finding_sh_t  *f;

    if (ngx_qqfail_check_named(ss->server) < 2) {
        ngx_http_qqfail_printf(o, 4, "null");
        return;
    }

    c = &ss->check;
    v = ngx_http_qqfail_independent(ss);
    names = ss->server->names.elts;

    ngx_http_qqfail_printf(o, 128, "{\"independent\":%s,\"checked\":%T,"
                           "\"more\":%ui,\"findings\":[",
                           v < 0 ? "null" : v ? "true" : "false",
                           c->checked, (ngx_uint_t) c->more);

    for (k = 0; k < c->nfindings && k < NGX_QQFAIL_FINDINGS; k++) {
        f = &c->finding[k];

        ngx_http_qqfail_printf(o, 64, "%s{\"kind\":\"%V\",\"names\":[",
                               k ? "," : "", ngx_qqfail_check_kind(f->kind));

        first = 1;

        for (i = 0; i < ss->server->names.nelts && i < 8; i++) {
            if (f->names & (1 << i)) {
                ngx_http_qqfail_printf(o, 1, first ? "" : ",");
                ngx_qqfail_json_str(o, names[i].host.data,
                                    names[i].host.len);
                first = 0;
            }
        }

        ngx_http_qqfail_printf(o, 16, "],\"detail\":");
        ngx_qqfail_json_str(o, f->detail,
                            ngx_min(f->len, NGX_QQFAIL_FINDING_LEN));
        ngx_http_qqfail_printf(o, 1, "}");
    }

    ngx_http_qqfail_printf(o, 2, "]}");
}


static void
ngx_http_qqfail_html_independence(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_status_server_t *ss)
{
    ngx_int_t                 v;
    ngx_uint_t                k;
    ngx_qqfail_check_sh_t    *c;
    ngx_qqfail_finding_sh_t  *f;

    if (ngx_qqfail_check_named(ss->server) < 2) {
        ngx_http_qqfail_printf(o, 32, "<td class=\"none\">no aliases</td>");
        return;
    }

    c = &ss->check;
    v = ngx_http_qqfail_independent(ss);

    if (v < 0) {
        ngx_http_qqfail_printf(o, 32, "<td class=\"none\">not checked</td>");
        return;
    }

    ngx_http_qqfail_printf(o, 64, "<td class=\"%s\">%s",
                           v ? "ok" : "failed",
                           v ? "independent" : "not independent");

    for (k = 0; k < c->nfindings && k < NGX_QQFAIL_FINDINGS; k++) {
        f = &c->finding[k];

        ngx_http_qqfail_printf(o, 64, "<br><small>%V: ",
                               ngx_qqfail_check_kind(f->kind));
        ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_HTML, f->detail,
                               ngx_min(f->len, NGX_QQFAIL_FINDING_LEN));
        ngx_http_qqfail_printf(o, 16, "</small>");
    }

    if (c->more) {
        ngx_http_qqfail_printf(o, 64, "<br><small>%ui more</small>",
                               (ngx_uint_t) c->more);
    }

    ngx_http_qqfail_printf(o, 8, "</td>");
}


static void
ngx_http_qqfail_json_server(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t index)
{
    time_t                  now;
    ngx_str_t               org;
    ngx_uint_t              k, e, s, n;
    ngx_http_qqfail_out_t  *o;
    ngx_qqfail_name_t      *names;
    ngx_qqfail_server_t    *server;
    ngx_qqfail_slot_sh_t   *slot;
    u_char                  text[NGX_QQFAIL_ADDR_STRLEN];

    o = &ctx->o;
    now = ctx->snap.now;
    server = ss->server;
    names = server->names.elts;
    n = server->names.nelts;
    e = ss->sh.active < n ? ss->sh.active : 0;
    s = ss->sh.source;

    ngx_http_qqfail_printf(o, 16, "%s{\"names\":[", index ? "," : "");

    for (k = 0; k < n; k++) {
        ngx_http_qqfail_printf(o, 1, k ? "," : "");
        ngx_qqfail_json_str(o, names[k].text.data, names[k].text.len);
    }

    ngx_http_qqfail_printf(o, 32, "],\"active_name\":");

    if (s == NGX_QQFAIL_SOURCE_NONE) {
        ngx_http_qqfail_printf(o, 4, "null");

    } else {
        ngx_qqfail_json_str(o, names[e].text.data, names[e].text.len);
    }

    ngx_http_qqfail_printf(o, 16, ",\"service\":");

    if (server->service.len) {
        ngx_qqfail_json_str(o, server->service.data, server->service.len);

    } else {
        ngx_http_qqfail_printf(o, 4, "null");
    }

    ngx_http_qqfail_printf(o, 512,
                           ",\"source\":\"%V\",\"weight\":%ui,"
                           "\"backup\":%s,\"down\":%s,"
                           "\"last_success\":%T,"
                           "\"next_lookup\":%T,"
                           "\"stale_since\":%T,\"failovers\":%ui,"
                           "\"independence\":",
                           &ngx_qqfail_sources[s],
                           server->weight,
                           server->backup ? "true" : "false",
                           server->down ? "true" : "false",
                           ss->sh.last_success,
                           ss->sh.next_lookup,
                           s == NGX_QQFAIL_SOURCE_STALE
                           ? ss->sh.stale_since : (time_t) 0,
                           ss->sh.failovers);

    ngx_http_qqfail_json_independence(o, ss);

    ngx_http_qqfail_printf(o, 32, ",\"name_status\":[");

    for (k = 0; k < n; k++) {
        ngx_http_qqfail_printf(o, 16, "%s{\"name\":", k ? "," : "");
        ngx_qqfail_json_str(o, names[k].host.data, names[k].host.len);
        ngx_http_qqfail_printf(o, 128, ",\"state\":\"%V\",\"error\":",
                               &ngx_http_qqfail_name_states
                                   [ss->sh.names[k].state]);

        if (ss->sh.names[k].state == NGX_QQFAIL_NAME_FAILED) {
            ngx_http_qqfail_printf(o, 32, "\"%V\"",
                                   &ngx_qqfail_errors
                                       [ss->sh.names[k].error]);

        } else {
            ngx_http_qqfail_printf(o, 4, "null");
        }

        ngx_http_qqfail_printf(o, 64, ",\"rejected\":%uD,"
                               "\"last_success\":%T}",
                               ss->sh.names[k].rejected,
                               ss->sh.names[k].last_success);
    }

    ngx_http_qqfail_printf(o, 32, "],\"addresses\":[");

    for (k = 0; k < ss->naddrs; k++) {
        slot = &ss->slots[k];

        ngx_http_qqfail_printf(o, 256,
                               "%s{\"address\":\"%*s\","
                               "\"state\":\"%V\",\"fails\":%ui,"
                               "\"active\":%ui,\"weight\":%ui,"
                               "\"backup\":%s,\"geo\":",
                               k ? "," : "",
                               ngx_qqfail_slot_text(slot, text), text,
                               ngx_http_qqfail_address_state(server, slot,
                                                             now),
                               (ngx_uint_t) slot->fails,
                               ngx_qqfail_slot_conns(slot, slot->id),
                               ngx_http_qqfail_slot_weight(server, slot),
                               ngx_http_qqfail_slot_backup(server, slot)
                               ? "true" : "false");

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
        ngx_qqfail_zone_org(ctx->qmcf, slot->asn, &org);
        ngx_qqfail_json_str(o, org.data, org.len);
        ngx_http_qqfail_printf(o, 2, "}}");
    }

    ngx_http_qqfail_printf(o, 2, "]}");
}


static void
ngx_http_qqfail_json_start(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_http_qqfail_json_head(&ctx->o, ctx->qmcf, &ctx->snap);
    ngx_http_qqfail_printf(&ctx->o, 32, "],\"upstreams\":[");
}


static void
ngx_http_qqfail_json_open(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_qqfail_srv_conf_t *qscf)
{
    ngx_http_qqfail_printf(&ctx->o, 16, "%s{\"name\":",
                           ctx->upstream ? "," : "");
    ngx_qqfail_json_str(&ctx->o, qscf->name.data,
                        qscf->name.len);
    ngx_http_qqfail_printf(&ctx->o, 96,
                           ",\"context\":\"%s\",\"method\":\"%V\","
                           "\"servers\":[",
                           qscf->stream ? "stream" : "http",
                           &ngx_qqfail_methods[qscf->method]);
}


static void
ngx_http_qqfail_json_close(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_http_qqfail_printf(&ctx->o, 2, "]}");
}


static void
ngx_http_qqfail_json_events(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                   i;
    ngx_http_qqfail_out_t       *o;
    ngx_qqfail_event_sh_t       *ev;
    ngx_http_qqfail_snapshot_t  *snap;

    o = &ctx->o;
    snap = &ctx->snap;

    ngx_http_qqfail_printf(o, 16, "],\"events\":[");

    /* oldest first */

    for (i = 0; i < snap->nevents; i++) {
        ev = &snap->events[i];

        ngx_http_qqfail_printf(o, 64, "%s{\"time\":%T,\"upstream\":",
                               i ? "," : "", ev->time);

        if (ev->upstream_len) {
            ngx_qqfail_json_str(o, ev->upstream, ev->upstream_len);
            ngx_http_qqfail_printf(o, 16, ",\"server\":");
            ngx_qqfail_json_str(o, ev->server, ev->server_len);

        } else {
            ngx_http_qqfail_printf(o, 32, "null,\"server\":null");
        }

        ngx_http_qqfail_printf(o, 16, ",\"message\":");
        ngx_qqfail_json_str(o, ev->message, ev->message_len);
        ngx_http_qqfail_printf(o, 1, "}");
    }

    ngx_http_qqfail_printf(o, 4, "]}\n");

    ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
}


/*
 * ?view=summary: the head of the full page, then each upstream in counts
 * ("servers" is a number here), and the number of events recorded.
 */

static void
ngx_http_qqfail_json_counts(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                       i, k;
    ngx_http_qqfail_out_t           *o;
    ngx_qqfail_srv_conf_t           *qscf;
    ngx_http_qqfail_snapshot_t      *snap;
    ngx_http_qqfail_status_count_t  *count;

    o = &ctx->o;
    snap = &ctx->snap;

    for (i = 0; i < snap->nupstreams; i++) {
        qscf = snap->upstreams[i];
        count = &ctx->counts[i];

        ngx_http_qqfail_printf(o, 16, "%s{\"name\":", i ? "," : "");
        ngx_qqfail_json_str(o, qscf->name.data,
                            qscf->name.len);
        ngx_http_qqfail_printf(o, 64, ",\"context\":\"%s\",\"servers\":%ui,"
                               "\"sources\":{",
                               qscf->stream ? "stream" : "http",
                               qscf->servers->nelts);

        for (k = 0; k <= NGX_QQFAIL_SOURCE_LITERAL; k++) {
            ngx_http_qqfail_printf(o, 64, "%s\"%V\":%ui", k ? "," : "",
                                   &ngx_qqfail_sources[k],
                                   count->sources[k]);
        }

        ngx_http_qqfail_printf(o, 64, "},\"on_alias\":%ui,\"addresses\":%ui}",
                               count->on_alias, count->addresses);
    }

    ngx_http_qqfail_printf(o, 64, "],\"events_total\":%ui}\n",
                           snap->events_total);

    ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
}


/* the Prometheus text exposition format, version 0.0.4 */

static void
ngx_http_qqfail_prom_labels(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_prom_server_t *ps)
{
    ngx_qqfail_name_t  *names;

    names = ps->server->names.elts;

    ngx_http_qqfail_printf(o, 16, "upstream=\"");
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM,
                           ps->server->upstream->name.data,
                           ps->server->upstream->name.len);
    ngx_http_qqfail_printf(o, 16, "\",server=\"");
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM, names[0].text.data,
                           names[0].text.len);
    ngx_http_qqfail_printf(o, 1, "\"");

    /* a stream upstream's series apart from an http one of the same name */

    if (ps->server->upstream->stream) {
        ngx_http_qqfail_printf(o, 24, ",context=\"stream\"");
    }
}


/* the versions, the leader, the zone and the state file */

static void
ngx_http_qqfail_prom_head(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
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
        NGX_QQFAIL_VERSION, NGINX_VERSION, snap->leader_pid,
        snap->epoch, snap->zone_size, snap->zone_used, snap->zone_full);

    ngx_http_qqfail_prom_state_file(o, qmcf, snap);
}


/* the samples of one provider family */

static void
ngx_http_qqfail_prom_providers(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap,
    ngx_http_qqfail_prom_t *m)
{
    int64_t                    v;
    ngx_uint_t                 i, k;
    ngx_qqfail_provider_t     *pr;
    ngx_qqfail_provider_sh_t  *psh;

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        psh = &snap->providers[i];

        if (m->what == NGX_HTTP_QQFAIL_PROM_VALIDATES
            && psh->validated == 0 && psh->unvalidated == 0)
        {
            continue;
        }

        for (k = 0; k < (m->what == NGX_HTTP_QQFAIL_PROM_FAILURES
                         ? NGX_QQFAIL_NERRS : 1); k++)
        {
            ngx_http_qqfail_printf(o, 64, "%s{provider=\"", m->name);
            ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM,
                                   pr[i].name.data, pr[i].name.len);

            if (m->what == NGX_HTTP_QQFAIL_PROM_FAILURES) {
                ngx_http_qqfail_printf(o, 32, "\",kind=\"%V",
                                       &ngx_qqfail_errors[k]);
            }

            if (m->what == NGX_HTTP_QQFAIL_PROM_RTT) {
                ngx_http_qqfail_printf(o, 64, "\"} %M.%03M\n",
                                       psh->rtt / 1000, psh->rtt % 1000);
                continue;
            }

            v = ngx_http_qqfail_prom_provider_value(m->what, psh, k);
            ngx_http_qqfail_printf(o, 32, "\"} %L\n", v);
        }
    }
}


/*
 * Samples of one family stay together, so every server is copied before
 * the first server family: what Prometheus shows of a server comes from
 * one lock hold.  The copy keeps only what the families show.
 */

static void
ngx_http_qqfail_prom_keep(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t index)
{
    u_char                         *p;
    ngx_uint_t                      k, n;
    ngx_http_qqfail_prom_server_t  *ps;

    n = ss->server->names.nelts;

    p = ngx_palloc(ctx->o.r->pool,
                   n * sizeof(ngx_http_qqfail_prom_name_t)
                   + ss->naddrs * sizeof(ngx_http_qqfail_prom_addr_t));
    if (p == NULL) {
        ctx->o.error = 1;
        ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
        return;
    }

    ps = &ctx->prom[ctx->nprom++];

    ps->server = ss->server;
    ps->last_success = ss->sh.last_success;
    ps->source = ss->sh.source;
    ps->active = ss->sh.active;
    ps->failovers = ss->sh.failovers;
    ps->independent = ngx_http_qqfail_independent(ss);
    ps->naddrs = ss->naddrs;
    ps->names = (ngx_http_qqfail_prom_name_t *) p;
    ps->addrs = (ngx_http_qqfail_prom_addr_t *)
                    (p + n * sizeof(ngx_http_qqfail_prom_name_t));

    for (k = 0; k < n; k++) {
        ps->names[k].state = ss->sh.names[k].state;
        ps->names[k].rejected = ss->sh.names[k].rejected;
    }

    for (k = 0; k < ss->naddrs; k++) {
        ps->addrs[k].fails = ss->slots[k].fails;
        ps->addrs[k].conns = ngx_qqfail_slot_conns(&ss->slots[k],
                                                   ss->slots[k].id);
        ps->addrs[k].up = (ngx_http_qqfail_address_state(ss->server,
                                                         &ss->slots[k],
                                                         ctx->snap.now)
                           == &ngx_http_qqfail_state_up);
        ps->addrs[k].text_len = ngx_qqfail_slot_text(&ss->slots[k],
                                                     ps->addrs[k].text);
        ps->addrs[k].weight = ngx_http_qqfail_slot_weight(ss->server,
                                                          &ss->slots[k]);
        ps->addrs[k].backup = ngx_http_qqfail_slot_backup(ss->server,
                                                          &ss->slots[k]);
    }
}


/* the samples of one server in a server family */

static void
ngx_http_qqfail_prom_server(ngx_http_qqfail_out_t *o,
    ngx_http_qqfail_prom_t *m, ngx_http_qqfail_prom_server_t *ps)
{
    ngx_uint_t                    k, value;
    ngx_qqfail_name_t            *names;
    ngx_http_qqfail_prom_addr_t  *addr;

    switch (m->of) {

    case NGX_HTTP_QQFAIL_PROM_SERVER:

        if (m->what == NGX_HTTP_QQFAIL_PROM_INDEPENDENT
            && ps->independent < 0)
        {
            break;
        }

        ngx_http_qqfail_printf(o, 64, "%s{", m->name);
        ngx_http_qqfail_prom_labels(o, ps);
        ngx_http_qqfail_printf(o, 32, "} %L\n",
                               ngx_http_qqfail_prom_server_value(m->what, ps));
        break;

    case NGX_HTTP_QQFAIL_PROM_SOURCE:

        for (k = 0; k <= NGX_QQFAIL_SOURCE_LITERAL; k++) {
            ngx_http_qqfail_printf(o, 64, "%s{", m->name);
            ngx_http_qqfail_prom_labels(o, ps);
            ngx_http_qqfail_printf(o, 64, ",source=\"%V\"} %d\n",
                                   &ngx_qqfail_sources[k],
                                   ps->source == k ? 1 : 0);
        }

        break;

    case NGX_HTTP_QQFAIL_PROM_NAME:
        names = ps->server->names.elts;

        for (k = 0; k < ps->server->names.nelts; k++) {
            ngx_http_qqfail_printf(o, 64, "%s{", m->name);
            ngx_http_qqfail_prom_labels(o, ps);
            ngx_http_qqfail_printf(o, 16, ",name=\"");
            ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM,
                                   names[k].text.data, names[k].text.len);
            ngx_http_qqfail_printf(o, 32, "\"} %L\n",
                                   ngx_http_qqfail_prom_name_value(m->what,
                                                                   ps, k));
        }

        break;

    default: /* NGX_HTTP_QQFAIL_PROM_ADDRESS */

        for (k = 0; k < ps->naddrs; k++) {
            addr = &ps->addrs[k];

            ngx_http_qqfail_printf(o, 64, "%s{", m->name);
            ngx_http_qqfail_prom_labels(o, ps);
            switch (m->what) {

            case NGX_HTTP_QQFAIL_PROM_FAILS:
                value = addr->fails;
                break;

            case NGX_HTTP_QQFAIL_PROM_CONNS:
                value = addr->conns;
                break;

            case NGX_HTTP_QQFAIL_PROM_WEIGHT:
                value = addr->weight;
                break;

            case NGX_HTTP_QQFAIL_PROM_BACKUP:
                value = addr->backup;
                break;

            default:
                value = addr->up;
            }

            ngx_http_qqfail_printf(o, 128, ",address=\"%*s\"} %ui\n",
                                   addr->text_len, addr->text, value);
        }

        break;
    }
}


static void
ngx_http_qqfail_prom_start(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_http_qqfail_prom_head(&ctx->o, ctx->qmcf, &ctx->snap);
}


static void
ngx_http_qqfail_prom_families(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_http_qqfail_prom_t      *m;
    ngx_http_qqfail_out_t       *o;
    ngx_http_qqfail_snapshot_t  *snap;

    o = &ctx->o;
    snap = &ctx->snap;

    /* one family after the other: each family's samples stay together */

    if (ctx->family == NULL) {
        ctx->family = ngx_http_qqfail_prom_metrics;
    }

    m = ctx->family;

    if (m->name == NULL) {
        ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
        return;
    }

    if (!ctx->opened) {
        ngx_http_qqfail_printf(o, 512, "# HELP %s %s\n# TYPE %s %s\n",
                               m->name, m->help, m->name, m->type);
        ctx->opened = 1;
    }

    if (m->of == NGX_HTTP_QQFAIL_PROM_PROVIDER) {
        ngx_http_qqfail_prom_providers(o, ctx->qmcf, snap, m);
        ctx->item = ctx->nprom;
    }

    while (ctx->item < ctx->nprom) {
        ngx_http_qqfail_prom_server(o, m, &ctx->prom[ctx->item++]);

        if (o->size >= NGX_HTTP_QQFAIL_STATUS_BUDGET) {
            break;
        }
    }

    if (ctx->item == ctx->nprom) {
        ctx->family++;
        ctx->item = 0;
        ctx->opened = 0;
    }
}


/*
 * ?view=summary: the head and the provider families of the full page,
 * then per upstream families of counts, and the number of events.
 */

static void
ngx_http_qqfail_prom_summary_start(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_http_qqfail_prom_t      *m;
    ngx_http_qqfail_out_t       *o;
    ngx_http_qqfail_snapshot_t  *snap;

    o = &ctx->o;
    snap = &ctx->snap;

    ngx_http_qqfail_prom_head(o, ctx->qmcf, snap);

    for (m = ngx_http_qqfail_prom_metrics; m->name; m++) {
        if (m->of != NGX_HTTP_QQFAIL_PROM_PROVIDER) {
            continue;
        }

        ngx_http_qqfail_printf(o, 512, "# HELP %s %s\n# TYPE %s %s\n",
                               m->name, m->help, m->name, m->type);
        ngx_http_qqfail_prom_providers(o, ctx->qmcf, snap, m);
    }
}


static void
ngx_http_qqfail_prom_counts(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                       i, j, k;
    ngx_http_qqfail_out_t           *o;
    ngx_qqfail_srv_conf_t           *qscf;
    ngx_http_qqfail_snapshot_t      *snap;
    ngx_http_qqfail_status_count_t  *count;

    static char  *families[] = {
        "qqfail_upstream_servers", "qqfail_server lines of the upstream.",
        "qqfail_upstream_sources",
            "Servers of the upstream by the source of their addresses.",
        "qqfail_upstream_on_alias",
            "Servers of the upstream that an alias supplies.",
        "qqfail_upstream_addresses", "Addresses the upstream has now."
    };

    o = &ctx->o;
    snap = &ctx->snap;

    for (k = 0; k < 4; k++) {
        ngx_http_qqfail_printf(o, 256, "# HELP %s %s\n# TYPE %s gauge\n",
                               families[2 * k], families[2 * k + 1],
                               families[2 * k]);

        for (i = 0; i < snap->nupstreams; i++) {
            qscf = snap->upstreams[i];
            count = &ctx->counts[i];

            for (j = 0;
                 j <= (k == 1 ? NGX_QQFAIL_SOURCE_LITERAL : 0);
                 j++)
            {
                ngx_http_qqfail_printf(o, 64, "%s{upstream=\"",
                                       families[2 * k]);
                ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM,
                                       qscf->name.data,
                                       qscf->name.len);

                if (qscf->stream) {
                    ngx_http_qqfail_printf(o, 24, "\",context=\"stream");
                }

                if (k == 1) {
                    ngx_http_qqfail_printf(o, 64,
                                           "\",source=\"%V\"} %ui\n",
                                           &ngx_qqfail_sources[j],
                                           count->sources[j]);
                    continue;
                }

                ngx_http_qqfail_printf(o, 32, "\"} %ui\n",
                                       k == 0 ? qscf->servers->nelts
                                       : k == 2 ? count->on_alias
                                       : count->addresses);
            }
        }
    }

    ngx_http_qqfail_printf(o, 256,
                           "# HELP qqfail_events_total State changes "
                           "recorded (the full page lists the last %d).\n"
                           "# TYPE qqfail_events_total counter\n"
                           "qqfail_events_total %ui\n",
                           NGX_QQFAIL_NEVENTS, snap->events_total);

    ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
}


/*
 * No state file, no samples.  The error text is a label of its own
 * family, present only while writes fail, so that the series of the gauge
 * an alert fires on stays the same.
 */

static void
ngx_http_qqfail_prom_state_file(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    if (!qmcf->state_file_set) {
        return;
    }

    ngx_http_qqfail_printf(o, 256,
        "# HELP qqfail_state_file_ok 0 if the last write of the state file "
        "failed.\n"
        "# TYPE qqfail_state_file_ok gauge\n"
        "qqfail_state_file_ok{path=\"");
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM, qmcf->state_file.data,
                           qmcf->state_file.len);
    ngx_http_qqfail_printf(o, 256,
        "\"} %d\n"
        "# HELP qqfail_state_file_last_write_timestamp_seconds Time of the "
        "last successful write of the state file (0: none yet).\n"
        "# TYPE qqfail_state_file_last_write_timestamp_seconds gauge\n"
        "qqfail_state_file_last_write_timestamp_seconds{path=\"",
        snap->state_error[0] ? 0 : 1);
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM, qmcf->state_file.data,
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
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM, qmcf->state_file.data,
                           qmcf->state_file.len);
    ngx_http_qqfail_printf(o, 16, "\",error=\"");
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_PROM, snap->state_error,
                           ngx_strlen(snap->state_error));
    ngx_http_qqfail_printf(o, 8, "\"} 1\n");
}


static int64_t
ngx_http_qqfail_prom_provider_value(ngx_uint_t what,
    ngx_qqfail_provider_sh_t *psh, ngx_uint_t kind)
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

    case NGX_HTTP_QQFAIL_PROM_VALIDATES:
        return psh->validated ? 1 : 0;

    default: /* NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS */
        return psh->last_success;
    }
}


static int64_t
ngx_http_qqfail_prom_server_value(ngx_uint_t what,
    ngx_http_qqfail_prom_server_t *ps)
{
    switch (what) {

    case NGX_HTTP_QQFAIL_PROM_ADDRESSES:
        return ps->naddrs;

    case NGX_HTTP_QQFAIL_PROM_ON_ALIAS:
        return ps->source != NGX_QQFAIL_SOURCE_NONE && ps->active != 0;

    case NGX_HTTP_QQFAIL_PROM_FAILOVERS:
        return ps->failovers;

    case NGX_HTTP_QQFAIL_PROM_INDEPENDENT:
        return ps->independent;

    default: /* NGX_HTTP_QQFAIL_PROM_LAST_SUCCESS */
        return ps->last_success;
    }
}


static int64_t
ngx_http_qqfail_prom_name_value(ngx_uint_t what,
    ngx_http_qqfail_prom_server_t *ps, ngx_uint_t n)
{
    switch (what) {

    case NGX_HTTP_QQFAIL_PROM_ACTIVE:
        return ps->source != NGX_QQFAIL_SOURCE_NONE && ps->active == n;

    case NGX_HTTP_QQFAIL_PROM_UP:
        return ps->names[n].state == NGX_QQFAIL_NAME_OK;

    default: /* NGX_HTTP_QQFAIL_PROM_REJECTED */
        return ps->names[n].rejected;
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


#define ngx_qqfail_html_str(o, s, len)                                        \
    ngx_http_qqfail_escape(o, NGX_QQFAIL_ESC_HTML, s, len)


/* from the top to the providers' table, the same in both views */

static void
ngx_http_qqfail_html_head(ngx_http_qqfail_out_t *o,
    ngx_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    ngx_uint_t                 i, j;
    ngx_addr_t                *addr;
    ngx_qqfail_provider_t     *pr;
    ngx_qqfail_provider_sh_t  *psh;

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
        NGX_QQFAIL_VERSION, NGINX_VERSION);

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
        ngx_qqfail_html_str(o, qmcf->state_file.data,
                            qmcf->state_file.len);
        ngx_http_qqfail_printf(o, 64, "</td><td class=\"%s\">",
                               snap->state_error[0] ? "failed" : "ok");
        ngx_http_qqfail_html_time(o, snap->state_written);
        ngx_http_qqfail_printf(o, 64, "</td><td%s>",
                               snap->state_error[0] ? " class=\"failed\"" : "");
        ngx_qqfail_html_str(o, snap->state_error,
                            ngx_strlen(snap->state_error));
        ngx_http_qqfail_printf(o, 32, "</td></tr>\n</table>\n");
    }

    /* providers */

    ngx_http_qqfail_printf(o, 512,
        "<h2>DNS providers</h2>\n<table><tr><th>Provider</th>"
        "<th>Servers</th><th>State</th><th>Queries</th><th>Timeout</th>"
        "<th>SERVFAIL</th><th>NXDOMAIN</th><th>REFUSED</th><th>Other</th>"
        "<th>Bad answer</th><th>Unvalidated</th><th>DNSSEC</th>"
        "<th>Disagreements</th><th>Dropped</th><th>RTT</th>"
        "<th>Last success</th>"
        "<th>Last error</th></tr>\n");

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        psh = &snap->providers[i];

        ngx_http_qqfail_printf(o, 16, "<tr><td>");
        ngx_qqfail_html_str(o, pr[i].name.data, pr[i].name.len);
        ngx_http_qqfail_printf(o, 16, "</td><td>");

        addr = pr[i].addrs.elts;

        for (j = 0; j < pr[i].addrs.nelts; j++) {
            ngx_http_qqfail_printf(o, NGX_SOCKADDR_STRLEN + 8, "%s%V",
                                   j ? "<br>" : "", &addr[j].name);
        }

        if (pr[i].system) {
            ngx_http_qqfail_printf(o, 32, "/etc/resolv.conf");
        }

        ngx_http_qqfail_printf(o, 640,
                               "</td><td class=\"%s\">%s</td><td>%ui</td>"
                               "<td>%ui</td><td>%ui</td><td>%ui</td>"
                               "<td>%ui</td><td>%ui</td><td>%ui</td>"
                               "<td>%ui</td><td%s>%s</td>"
                               "<td>%ui</td><td>%ui</td><td>%M ms</td><td>",
                               psh->down ? "down" : "up",
                               psh->down ? "down" : "up", psh->queries,
                               psh->failures[NGX_QQFAIL_ERR_TIMEOUT],
                               psh->failures[NGX_QQFAIL_ERR_SERVFAIL],
                               psh->failures[NGX_QQFAIL_ERR_NXDOMAIN],
                               psh->failures[NGX_QQFAIL_ERR_REFUSED],
                               psh->failures[NGX_QQFAIL_ERR_OTHER],
                               psh->failures[NGX_QQFAIL_ERR_BADANSWER],
                               psh->failures[NGX_QQFAIL_ERR_UNVALIDATED],
                               !psh->validated && psh->unvalidated
                               ? " class=\"failed\"" : "",
                               psh->validated ? "validates"
                               : psh->unvalidated ? "never validated" : "-",
                               psh->disagreements, psh->drops, psh->rtt);

        ngx_http_qqfail_html_time(o, psh->last_success);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_qqfail_html_str(o, psh->last_error,
                            ngx_strnlen(psh->last_error,
                                        NGX_QQFAIL_ERRLEN));
        ngx_http_qqfail_printf(o, 16, "</td></tr>\n");
    }

    ngx_http_qqfail_printf(o, 16, "</table>\n");
}


static void
ngx_http_qqfail_html_server(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_http_qqfail_status_server_t *ss, ngx_uint_t index)
{
    time_t                  now;
    ngx_str_t               org, *state;
    ngx_uint_t              k, e, s, n;
    ngx_http_qqfail_out_t  *o;
    ngx_qqfail_name_t      *names;
    ngx_qqfail_server_t    *server;
    ngx_qqfail_slot_sh_t   *slot;
    u_char                  text[NGX_QQFAIL_ADDR_STRLEN];

    o = &ctx->o;
    now = ctx->snap.now;
    server = ss->server;
    names = server->names.elts;
    n = server->names.nelts;
    e = ss->sh.active < n ? ss->sh.active : 0;
    s = ss->sh.source;

    ngx_http_qqfail_printf(o, 16, "<tr><td>");

    for (k = 0; k < n; k++) {
        state = &ngx_http_qqfail_name_states[ss->sh.names[k].state];

        ngx_http_qqfail_printf(o, 64, "%s<span class=\"%V\">",
                               k ? "<br>" : "", state);
        ngx_qqfail_html_str(o, names[k].text.data, names[k].text.len);
        ngx_http_qqfail_printf(o, 64, "</span> <small>%V</small>", state);
    }

    if (server->backup || server->down) {
        ngx_http_qqfail_printf(o, 64, "<br><small>%s%s</small>",
                               server->backup ? "backup " : "",
                               server->down ? "down" : "");
    }

    if (s == NGX_QQFAIL_SOURCE_NONE) {
        ngx_http_qqfail_printf(o, 64, "</td><td class=\"none\">none</td>");

    } else {
        ngx_http_qqfail_printf(o, 32, "</td><td class=\"%s\">",
                               e ? "alias" : "ok");
        ngx_qqfail_html_str(o, names[e].text.data, names[e].text.len);
        ngx_http_qqfail_printf(o, 16, "</td>");
    }

    ngx_http_qqfail_printf(o, 128, "<td class=\"%V\">%V</td>"
                           "<td>%ui</td><td>",
                           &ngx_qqfail_sources[s],
                           &ngx_qqfail_sources[s],
                           ss->sh.failovers);

    ngx_http_qqfail_html_time(o, ss->sh.last_success);
    ngx_http_qqfail_printf(o, 16, "</td><td>");

    for (k = 0; k < ss->naddrs; k++) {
        slot = &ss->slots[k];
        state = ngx_http_qqfail_address_state(server, slot, now);

        ngx_http_qqfail_printf(o, 256, "%s<span class=\"%V\">%*s</span>"
                               " <small>%V, %ui fails, %ui active",
                               k ? "<br>" : "", state,
                               ngx_qqfail_slot_text(slot, text), text,
                               state, (ngx_uint_t) slot->fails,
                               ngx_qqfail_slot_conns(slot, slot->id));

        /* from an SRV record: its weight, and backup for a later priority */

        if (slot->srv) {
            ngx_http_qqfail_printf(o, 48, ", weight %ui%s",
                                   ngx_http_qqfail_slot_weight(server, slot),
                                   (slot->srv & NGX_QQFAIL_SRV_BACKUP)
                                   ? ", backup" : "");
        }

        if (slot->country[0]) {
            ngx_http_qqfail_printf(o, 16, ", %*s", (size_t) 2,
                                   slot->country);
        }

        if (slot->asn) {
            ngx_http_qqfail_printf(o, 32, ", AS%uD ", slot->asn);
            ngx_qqfail_zone_org(ctx->qmcf, slot->asn, &org);
            ngx_qqfail_html_str(o, org.data, org.len);
        }

        ngx_http_qqfail_printf(o, 16, "</small>");
    }

    if (ss->naddrs == 0) {
        ngx_http_qqfail_printf(o, 32, "<span class=\"none\">none</span>");
    }

    ngx_http_qqfail_printf(o, 16, "</td>");

    ngx_http_qqfail_html_independence(o, ss);

    ngx_http_qqfail_printf(o, 16, "</tr>\n");
}


/* events, newest first, and the end of the page */

static void
ngx_http_qqfail_html_events(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                   i;
    ngx_http_qqfail_out_t       *o;
    ngx_qqfail_event_sh_t       *ev;
    ngx_http_qqfail_snapshot_t  *snap;

    o = &ctx->o;
    snap = &ctx->snap;

    ngx_http_qqfail_printf(o, 256,
        "<h2>Recent events</h2>\n<table><tr><th>Time (UTC)</th>"
        "<th>Upstream</th><th>Server</th><th>Event</th></tr>\n");

    for (i = snap->nevents; i > 0; i--) {
        ev = &snap->events[i - 1];

        ngx_http_qqfail_printf(o, 16, "<tr><td>");
        ngx_http_qqfail_html_time(o, ev->time);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_qqfail_html_str(o, ev->upstream, ev->upstream_len);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_qqfail_html_str(o, ev->server, ev->server_len);
        ngx_http_qqfail_printf(o, 16, "</td><td>");
        ngx_qqfail_html_str(o, ev->message, ev->message_len);
        ngx_http_qqfail_printf(o, 16, "</td></tr>\n");
    }

    if (snap->nevents == 0) {
        ngx_http_qqfail_printf(o, 64, "<tr><td colspan=\"4\">none</td>"
                               "</tr>\n");
    }

    ngx_http_qqfail_printf(o, 32, "</table>\n</body></html>\n");

    ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
}


static void
ngx_http_qqfail_html_start(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_http_qqfail_html_head(&ctx->o, ctx->qmcf, &ctx->snap);
}


static void
ngx_http_qqfail_html_open(ngx_http_qqfail_status_ctx_t *ctx,
    ngx_qqfail_srv_conf_t *qscf)
{
    ngx_http_qqfail_printf(&ctx->o, 32, "<h2>Upstream ");
    ngx_qqfail_html_str(&ctx->o, qscf->name.data,
                        qscf->name.len);
    ngx_http_qqfail_printf(&ctx->o, 64, " <small>%s%V</small>",
                           qscf->stream ? "stream, " : "",
                           &ngx_qqfail_methods[qscf->method]);
    ngx_http_qqfail_printf(&ctx->o, 512,
        "</h2>\n<table><tr><th>Server (names in order)</th>"
        "<th>Active name</th><th>Source</th><th>Failovers</th>"
        "<th>Last success</th><th>Addresses</th><th>Independence</th>"
        "</tr>\n");
}


static void
ngx_http_qqfail_html_close(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_http_qqfail_printf(&ctx->o, 16, "</table>\n");
}


/* ?view=summary: the head of the full page, one table of counts */

static void
ngx_http_qqfail_html_counts(ngx_http_qqfail_status_ctx_t *ctx)
{
    ngx_uint_t                       i;
    ngx_http_qqfail_out_t           *o;
    ngx_qqfail_srv_conf_t           *qscf;
    ngx_http_qqfail_snapshot_t      *snap;
    ngx_http_qqfail_status_count_t  *count;

    o = &ctx->o;
    snap = &ctx->snap;

    ngx_http_qqfail_printf(o, 512,
        "<h2>Upstreams</h2>\n<table><tr><th>Upstream</th><th>Servers</th>"
        "<th>live</th><th>literal</th><th>stale</th><th>state_file</th>"
        "<th>none</th><th>On alias</th><th>Addresses</th></tr>\n");

    for (i = 0; i < snap->nupstreams; i++) {
        qscf = snap->upstreams[i];
        count = &ctx->counts[i];

        ngx_http_qqfail_printf(o, 16, "<tr><td>");
        ngx_qqfail_html_str(o, qscf->name.data,
                            qscf->name.len);
        ngx_http_qqfail_printf(o, 512,
            "</td><td>%ui</td><td>%ui</td><td>%ui</td>"
            "<td%s>%ui</td><td%s>%ui</td><td%s>%ui</td>"
            "<td%s>%ui</td><td>%ui</td></tr>\n",
            qscf->servers->nelts,
            count->sources[NGX_QQFAIL_SOURCE_LIVE],
            count->sources[NGX_QQFAIL_SOURCE_LITERAL],
            count->sources[NGX_QQFAIL_SOURCE_STALE]
            ? " class=\"stale\"" : "",
            count->sources[NGX_QQFAIL_SOURCE_STALE],
            count->sources[NGX_QQFAIL_SOURCE_STATE]
            ? " class=\"state_file\"" : "",
            count->sources[NGX_QQFAIL_SOURCE_STATE],
            count->sources[NGX_QQFAIL_SOURCE_NONE]
            ? " class=\"none\"" : "",
            count->sources[NGX_QQFAIL_SOURCE_NONE],
            count->on_alias ? " class=\"alias\"" : "", count->on_alias,
            count->addresses);
    }

    ngx_http_qqfail_printf(o, 256,
                           "</table>\n<p>%ui events recorded; the full page "
                           "lists the last %d.</p>\n</body></html>\n",
                           snap->events_total, NGX_QQFAIL_NEVENTS);

    ctx->phase = NGX_HTTP_QQFAIL_PHASE_DONE;
}
