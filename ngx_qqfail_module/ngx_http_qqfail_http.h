
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#ifndef _NGX_HTTP_QQFAIL_HTTP_H_INCLUDED_
#define _NGX_HTTP_QQFAIL_HTTP_H_INCLUDED_


/*
 * The http front end: the module and its directives, the balancer, the
 * variables and the status handler.  Everything else (providers,
 * lookups, failover, zone, state file, address filter) is the core,
 * ngx_qqfail.h, which knows no http type.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_qqfail.h"


typedef struct {
    ngx_uint_t                       format;
} ngx_http_qqfail_loc_conf_t;


extern ngx_module_t  ngx_http_qqfail_module;


extern ngx_qqfail_front_t  ngx_http_qqfail_front;


ngx_int_t ngx_http_qqfail_methods_wrap(ngx_conf_t *cf);
void ngx_http_qqfail_methods_unwrap(void);
char *ngx_http_qqfail_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


ngx_int_t ngx_http_qqfail_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);

ngx_int_t ngx_http_qqfail_status_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_qqfail_variable_peer(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_HTTP_QQFAIL_HTTP_H_INCLUDED_ */
