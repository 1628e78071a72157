
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


/* a copy of one server's shared record, taken under the lock */

typedef struct {
    ngx_http_qqfail_server_t        *server;
    ngx_http_qqfail_server_sh_t      sh;
    ngx_uint_t                       naddrs;
    ngx_http_qqfail_slot_sh_t       *slots;
} ngx_http_qqfail_status_server_t;


typedef struct {
    time_t                           now;
    ngx_uint_t                       epoch;
    ngx_pid_t                        leader_pid;
    size_t                           zone_size;
    size_t                           zone_used;
    ngx_uint_t                       nproviders;
    ngx_http_qqfail_provider_sh_t    providers[NGX_HTTP_QQFAIL_MAX_PROVIDERS];
    ngx_uint_t                       nservers;
    ngx_http_qqfail_status_server_t *servers;
} ngx_http_qqfail_snapshot_t;


static ngx_int_t ngx_http_qqfail_status_snapshot(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static ngx_chain_t *ngx_http_qqfail_status_json(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap);
static u_char *ngx_http_qqfail_json_str(u_char *p, u_char *s, size_t len);
static ngx_chain_t *ngx_http_qqfail_status_buf(ngx_http_request_t *r,
    ngx_chain_t ***last, size_t size);


ngx_int_t
ngx_http_qqfail_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_chain_t                  *out, *cl;
    ngx_http_qqfail_snapshot_t   *snap;
    ngx_http_qqfail_main_conf_t  *qmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    qmcf = ngx_http_get_module_main_conf(r, ngx_http_qqfail_module);

    snap = ngx_pcalloc(r->pool, sizeof(ngx_http_qqfail_snapshot_t));
    if (snap == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_qqfail_status_snapshot(r, qmcf, snap) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = ngx_http_qqfail_status_json(r, qmcf, snap);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;

    for (cl = out; cl; cl = cl->next) {
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

    return ngx_http_output_filter(r, out);
}


static ngx_int_t
ngx_http_qqfail_status_snapshot(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    ngx_uint_t                        i, j, k, n;
    ngx_http_qqfail_sh_t             *sh;
    ngx_http_qqfail_server_t         *server;
    ngx_http_qqfail_chunk_sh_t       *chunk;
    ngx_http_qqfail_srv_conf_t      **qscfp;
    ngx_http_qqfail_status_server_t  *ss;

    snap->now = ngx_time();

    if (qmcf->sh == NULL) {
        return NGX_OK;
    }

    sh = qmcf->sh;

    n = 0;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        n += qscfp[i]->servers->nelts;
    }

    snap->servers = ngx_pcalloc(r->pool,
                              (n ? n : 1) * sizeof(ngx_http_qqfail_status_server_t));
    if (snap->servers == NULL) {
        return NGX_ERROR;
    }

    /* allocate the slot copies before taking the lock */

    ss = snap->servers;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            ss->server = &server[j];

            k = 0;
            for (chunk = server[j].sh->chunks; chunk; chunk = chunk->next) {
                k += NGX_HTTP_QQFAIL_SLOTS;
            }

            ss->slots = ngx_palloc(r->pool, (k + NGX_HTTP_QQFAIL_MAX_ADDRS)
                                       * sizeof(ngx_http_qqfail_slot_sh_t));
            if (ss->slots == NULL) {
                return NGX_ERROR;
            }

            ss->naddrs = k + NGX_HTTP_QQFAIL_MAX_ADDRS;
            ss++;
        }
    }

    snap->nservers = n;

    ngx_shmtx_lock(&qmcf->shpool->mutex);

    snap->epoch = sh->epoch;
    snap->leader_pid = sh->leader_pid;

    /* pages in use, without the pool header and page descriptors */
    snap->zone_size = qmcf->shm_zone->shm.size;
    snap->zone_used = ((qmcf->shpool->end - qmcf->shpool->start) / ngx_pagesize
                       - qmcf->shpool->pfree) * ngx_pagesize;
    snap->nproviders = sh->nproviders;
    ngx_memcpy(snap->providers, sh->providers, sizeof(snap->providers));

    for (i = 0; i < n; i++) {
        ss = &snap->servers[i];
        ss->sh = *ss->server->sh;

        k = 0;

        for (chunk = ss->sh.chunks; chunk; chunk = chunk->next) {
            for (j = 0; j < NGX_HTTP_QQFAIL_SLOTS && k < ss->naddrs; j++) {
                if (chunk->slot[j].in_use) {
                    ss->slots[k++] = chunk->slot[j];
                }
            }
        }

        ss->naddrs = k;
    }

    ngx_shmtx_unlock(&qmcf->shpool->mutex);

    return NGX_OK;
}


static ngx_chain_t *
ngx_http_qqfail_status_buf(ngx_http_request_t *r, ngx_chain_t ***last,
    size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    **last = cl;
    *last = &cl->next;

    return cl;
}


static u_char *
ngx_http_qqfail_json_str(u_char *p, u_char *s, size_t len)
{
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, s, len);
    *p++ = '"';

    return p;
}


#define ngx_http_qqfail_json_len(len)  (2 + 6 * (len))


static ngx_chain_t *
ngx_http_qqfail_status_json(ngx_http_request_t *r,
    ngx_http_qqfail_main_conf_t *qmcf, ngx_http_qqfail_snapshot_t *snap)
{
    u_char                           *p;
    size_t                            size;
    ngx_str_t                        *state;
    ngx_uint_t                        i, j, k, e, s, failed;
    ngx_buf_t                        *b;
    ngx_chain_t                      *out, **last, *cl;
    ngx_addr_t                       *addr;
    ngx_http_qqfail_name_t           *names;
    ngx_http_qqfail_server_t         *server;
    ngx_http_qqfail_provider_t       *pr;
    ngx_http_qqfail_slot_sh_t        *slot;
    ngx_http_qqfail_srv_conf_t      **qscfp;
    ngx_http_qqfail_provider_sh_t    *psh;
    ngx_http_qqfail_status_server_t  *ss;

    static ngx_str_t  up = ngx_string("up");
    static ngx_str_t  down = ngx_string("down");
    static ngx_str_t  unavailable = ngx_string("unavailable");

    out = NULL;
    last = &out;

    /* header and providers */

    size = sizeof("{\"version\":\"\",\"nginx_version\":\"\",\"time\":,"
                  "\"leader\":{\"pid\":,\"generation\":},"
                  "\"zone\":{\"size\":,\"used\":},\"providers\":[")
           + sizeof(NGX_HTTP_QQFAIL_VERSION) + sizeof(NGINX_VERSION)
           + 5 * NGX_INT64_LEN;

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        size += 512 + ngx_http_qqfail_json_len(pr[i].name.len)
                + NGX_HTTP_QQFAIL_ERRLEN * 6 + 10 * NGX_INT64_LEN
                + pr[i].addrs.nelts * (NGX_HTTP_QQFAIL_ADDR_STRLEN + 4);
    }

    cl = ngx_http_qqfail_status_buf(r, &last, size);
    if (cl == NULL) {
        return NULL;
    }

    b = cl->buf;
    p = b->last;

    p = ngx_sprintf(p, "{\"version\":\"%s\",\"nginx_version\":\"%s\","
                    "\"time\":%T,\"leader\":{\"pid\":%P,\"generation\":%ui},"
                    "\"zone\":{\"size\":%uz,\"used\":%uz},"
                    "\"providers\":[",
                    NGX_HTTP_QQFAIL_VERSION, NGINX_VERSION, snap->now,
                    snap->leader_pid, snap->epoch, snap->zone_size,
                    snap->zone_used);

    for (i = 0; i < qmcf->providers.nelts && i < snap->nproviders; i++) {
        psh = &snap->providers[i];

        p = ngx_sprintf(p, "%s{\"name\":", i ? "," : "");
        p = ngx_http_qqfail_json_str(p, pr[i].name.data, pr[i].name.len);
        p = ngx_sprintf(p, ",\"servers\":[");

        addr = pr[i].addrs.elts;

        for (j = 0; j < pr[i].addrs.nelts; j++) {
            p = ngx_sprintf(p, "%s\"%V\"", j ? "," : "", &addr[j].name);
        }

        p = ngx_sprintf(p, "],\"state\":\"%s\",\"queries\":%ui,"
                        "\"failures\":{\"timeout\":%ui,\"servfail\":%ui,"
                        "\"nxdomain\":%ui,\"refused\":%ui,\"other\":%ui},"
                        "\"disagreements\":%ui,\"rtt_ms\":%M,"
                        "\"last_success\":%T,\"last_failure\":%T,"
                        "\"last_error\":",
                        psh->down ? "down" : "up", psh->queries,
                        psh->failures[NGX_HTTP_QQFAIL_ERR_TIMEOUT],
                        psh->failures[NGX_HTTP_QQFAIL_ERR_SERVFAIL],
                        psh->failures[NGX_HTTP_QQFAIL_ERR_NXDOMAIN],
                        psh->failures[NGX_HTTP_QQFAIL_ERR_REFUSED],
                        psh->failures[NGX_HTTP_QQFAIL_ERR_OTHER],
                        psh->disagreements, psh->rtt, psh->last_success,
                        psh->last_failure);

        p = ngx_http_qqfail_json_str(p, psh->last_error,
                                     ngx_strnlen(psh->last_error,
                                                 NGX_HTTP_QQFAIL_ERRLEN));
        *p++ = '}';
    }

    p = ngx_sprintf(p, "],\"upstreams\":[");
    b->last = p;

    /* one buffer per upstream */

    qscfp = qmcf->upstreams.elts;
    ss = snap->servers;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {

        size = 64 + ngx_http_qqfail_json_len(qscfp[i]->upstream->host.len);

        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            names = server[j].names.elts;

            size += 512 + 8 * NGX_INT64_LEN;

            for (k = 0; k < server[j].names.nelts; k++) {
                size += 2 * ngx_http_qqfail_json_len(names[k].text.len)
                        + 128 + ngx_http_qqfail_json_len(names[k].host.len);
            }

            size += ss[j].naddrs * (256 + NGX_HTTP_QQFAIL_ADDR_STRLEN
                                    + 3 * NGX_INT64_LEN);
        }

        cl = ngx_http_qqfail_status_buf(r, &last, size);
        if (cl == NULL) {
            return NULL;
        }

        b = cl->buf;
        p = b->last;

        p = ngx_sprintf(p, "%s{\"name\":", i ? "," : "");
        p = ngx_http_qqfail_json_str(p, qscfp[i]->upstream->host.data,
                                     qscfp[i]->upstream->host.len);
        p = ngx_sprintf(p, ",\"servers\":[");

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            names = server[j].names.elts;
            e = ss[j].sh.active < server[j].names.nelts ? ss[j].sh.active : 0;
            s = ss[j].sh.source;

            p = ngx_sprintf(p, "%s{\"names\":[", j ? "," : "");

            for (k = 0; k < server[j].names.nelts; k++) {
                if (k) {
                    *p++ = ',';
                }

                p = ngx_http_qqfail_json_str(p, names[k].text.data,
                                             names[k].text.len);
            }

            p = ngx_sprintf(p, "],\"active_name\":");

            if (s == NGX_HTTP_QQFAIL_SOURCE_NONE) {
                p = ngx_cpymem(p, "null", 4);

            } else {
                p = ngx_http_qqfail_json_str(p, names[e].text.data,
                                             names[e].text.len);
            }

            p = ngx_sprintf(p, ",\"source\":\"%V\",\"weight\":%ui,"
                            "\"backup\":%s,\"down\":%s,"
                            "\"last_success\":%T,\"next_lookup\":%T,"
                            "\"stale_since\":%T,\"failovers\":%ui,"
                            "\"name_status\":[",
                            &ngx_http_qqfail_sources[s], server[j].weight,
                            server[j].backup ? "true" : "false",
                            server[j].down ? "true" : "false",
                            ss[j].sh.last_success, ss[j].sh.next_lookup,
                            s == NGX_HTTP_QQFAIL_SOURCE_STALE
                            ? ss[j].sh.stale_since : (time_t) 0,
                            ss[j].sh.failovers);

            for (k = 0; k < server[j].names.nelts; k++) {
                state = &ngx_http_qqfail_errors[ss[j].sh.names[k].error];

                p = ngx_sprintf(p, "%s{\"name\":", k ? "," : "");
                p = ngx_http_qqfail_json_str(p, names[k].host.data,
                                             names[k].host.len);
                p = ngx_sprintf(p, ",\"state\":\"%s\",\"error\":",
                                ss[j].sh.names[k].state
                                == NGX_HTTP_QQFAIL_NAME_OK ? "ok"
                                : ss[j].sh.names[k].state
                                  == NGX_HTTP_QQFAIL_NAME_FAILED ? "failed"
                                : "unknown");

                if (ss[j].sh.names[k].state == NGX_HTTP_QQFAIL_NAME_FAILED) {
                    p = ngx_sprintf(p, "\"%V\"", state);

                } else {
                    p = ngx_cpymem(p, "null", 4);
                }

                p = ngx_sprintf(p, ",\"last_success\":%T}",
                                ss[j].sh.names[k].last_success);
            }

            p = ngx_sprintf(p, "],\"addresses\":[");

            for (k = 0; k < ss[j].naddrs; k++) {
                slot = &ss[j].slots[k];

                failed = server[j].max_fails
                         && slot->fails >= server[j].max_fails
                         && snap->now - slot->checked
                            <= server[j].fail_timeout;

                state = server[j].down ? &down
                        : failed ? &unavailable : &up;

                p = ngx_sprintf(p, "%s{\"address\":\"%*s\",\"state\":\"%V\","
                                "\"fails\":%ui,\"geo\":null}",
                                k ? "," : "", (size_t) slot->text_len,
                                slot->text, state, slot->fails);
            }

            p = ngx_sprintf(p, "]}");
        }

        p = ngx_sprintf(p, "]}");
        b->last = p;

        ss += qscfp[i]->servers->nelts;
    }

    cl = ngx_http_qqfail_status_buf(r, &last, sizeof("],\"events\":[]}\n"));
    if (cl == NULL) {
        return NULL;
    }

    cl->buf->last = ngx_cpymem(cl->buf->last, "],\"events\":[]}\n",
                               sizeof("],\"events\":[]}\n") - 1);

    return out;
}
