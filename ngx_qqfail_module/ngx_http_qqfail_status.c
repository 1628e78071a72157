
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


ngx_int_t
ngx_http_qqfail_status_handler(ngx_http_request_t *r)
{
    size_t                        len;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    /* the complete status document arrives with the status milestone */

    len = sizeof("{\"version\":\"" NGX_HTTP_QQFAIL_VERSION "\","
                 "\"nginx_version\":\"" NGINX_VERSION "\","
                 "\"time\":}\n") - 1
          + NGX_TIME_T_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
                          "{\"version\":\"" NGX_HTTP_QQFAIL_VERSION "\","
                          "\"nginx_version\":\"" NGINX_VERSION "\","
                          "\"time\":%T}\n", ngx_time());
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
