
/*
 * Copyright (C) ngx_qqfail_module authors
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


typedef struct ngx_http_qqfail_peers_s  ngx_http_qqfail_peers_t;

typedef char *(*ngx_http_qqfail_slot_pt)(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/*
 * A command's post for ngx_http_qqfail_conf_slot(): nginx's slot setter,
 * the bounds of the value, and the message for a bad value (arguments:
 * the directive's name and value, low, high); NULL: no bounds
 */

typedef struct {
    ngx_conf_post_handler_pt         post_handler;
    ngx_http_qqfail_slot_pt          slot;
    ngx_uint_t                       low;
    ngx_uint_t                       high;
    char                            *invalid;
} ngx_http_qqfail_slot_t;


typedef struct {
    ngx_uint_t                       format;
} ngx_http_qqfail_loc_conf_t;


extern ngx_module_t  ngx_http_qqfail_module;


char *ngx_http_qqfail_provider(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_conf_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_zone_post(ngx_conf_t *cf, void *post, void *data);
char *ngx_http_qqfail_state_file_post(ngx_conf_t *cf, void *post,
    void *data);
char *ngx_http_qqfail_geoip2(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_qqfail_methods_wrap(ngx_conf_t *cf);
void ngx_http_qqfail_methods_unwrap(void *data);
char *ngx_http_qqfail_method(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_max_stale(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_upstream_post(ngx_conf_t *cf, void *post,
    void *data);
char *ngx_http_qqfail_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_qqfail_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_qqfail_conf_system_provider(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf);

ngx_int_t ngx_http_qqfail_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);

ngx_int_t ngx_http_qqfail_status_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_qqfail_variable_peer(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_HTTP_QQFAIL_HTTP_H_INCLUDED_ */
