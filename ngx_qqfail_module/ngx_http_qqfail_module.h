
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#ifndef _NGX_HTTP_QQFAIL_MODULE_H_INCLUDED_
#define _NGX_HTTP_QQFAIL_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <maxminddb.h>


#define NGX_HTTP_QQFAIL_VERSION          "0.1.0"

#define NGX_HTTP_QQFAIL_MAX_PROVIDERS    16
#define NGX_HTTP_QQFAIL_MAX_PROVIDER_ADDRS  16
#define NGX_HTTP_QQFAIL_MAX_NAMES        8
#define NGX_HTTP_QQFAIL_PROVIDER_NAME_LEN  64
#define NGX_HTTP_QQFAIL_MIN_ZONE_SIZE    (8 * ngx_pagesize)
#define NGX_HTTP_QQFAIL_DEFAULT_ZONE_SIZE  (1024 * 1024)

#define NGX_HTTP_QQFAIL_RULE_CIDR        1
#define NGX_HTTP_QQFAIL_RULE_ASN         2
#define NGX_HTTP_QQFAIL_RULE_COUNTRY     3

#define NGX_HTTP_QQFAIL_STATUS_JSON      1
#define NGX_HTTP_QQFAIL_STATUS_PROMETHEUS  2
#define NGX_HTTP_QQFAIL_STATUS_HTML      3

#define NGX_HTTP_QQFAIL_STALE_FOREVER    NGX_MAX_TIME_T_VALUE


/* a place in the configuration, for messages found after parsing */
typedef struct {
    u_char                          *file;
    ngx_uint_t                       line;
} ngx_http_qqfail_where_t;


typedef struct {
    ngx_str_t                        name;
    ngx_array_t                      addrs;      /* ngx_addr_t */
    ngx_str_t                        servers;    /* "ip:port,[ip6]:port" */
    ngx_uint_t                       index;
    unsigned                         system:1;   /* from /etc/resolv.conf */
} ngx_http_qqfail_provider_t;


typedef struct {
    ngx_str_t                        host;       /* lowercase, no final dot */
    in_port_t                        port;
    ngx_str_t                        text;       /* as written */
    ngx_addr_t                       addr;       /* IP literals only */
    unsigned                         literal:1;
} ngx_http_qqfail_name_t;


typedef struct {
    ngx_array_t                      names;      /* ngx_http_qqfail_name_t */
    ngx_uint_t                       weight;
    ngx_uint_t                       max_fails;
    time_t                           fail_timeout;
    ngx_uint_t                       index;
    ngx_http_qqfail_where_t          where;
    unsigned                         backup:1;
    unsigned                         down:1;
} ngx_http_qqfail_server_t;


typedef struct {
    ngx_uint_t                       type;
    ngx_cidr_t                       cidr;
    uint32_t                         asn;
    u_char                           country[2];
    ngx_http_qqfail_where_t          where;
} ngx_http_qqfail_rule_t;


typedef struct {
    MMDB_s                           mmdb;
    ngx_str_t                        path;
    unsigned                         asn:1;
    unsigned                         country:1;
} ngx_http_qqfail_geo_db_t;


typedef struct ngx_http_qqfail_srv_conf_s  ngx_http_qqfail_srv_conf_t;


typedef struct {
    ngx_array_t                      providers;  /* provider_t */
    ngx_array_t                      upstreams;  /* srv_conf_t * */

    ngx_shm_zone_t                  *shm_zone;
    size_t                           zone_size;
    ngx_http_qqfail_where_t          zone_where;

    ngx_str_t                        state_file;
    ngx_flag_t                       state_file_set;

    ngx_http_qqfail_geo_db_t        *geo_country;
    ngx_http_qqfail_geo_db_t        *geo_asn;

    ngx_uint_t                       status_used;
} ngx_http_qqfail_main_conf_t;


struct ngx_http_qqfail_srv_conf_s {
    ngx_array_t                     *servers;    /* server_t, NULL: none */
    ngx_http_upstream_srv_conf_t    *upstream;
    ngx_http_qqfail_main_conf_t     *main;

    ngx_msec_t                       refresh;
    ngx_msec_t                       timeout;
    time_t                           max_stale;
    ngx_uint_t                       quorum;
    ngx_array_t                     *allow;      /* rule_t */
    ngx_flag_t                       ipv6;

    ngx_uint_t                       placeholder;
    ngx_http_qqfail_where_t          first;      /* first qqfail_server */
    ngx_http_qqfail_where_t          directive;  /* first other directive */
    ngx_http_qqfail_where_t          quorum_where;

    ngx_http_upstream_init_pt        original_init_peer;
    unsigned                         initialized:1;
};


typedef struct {
    ngx_uint_t                       format;
} ngx_http_qqfail_loc_conf_t;


extern ngx_module_t  ngx_http_qqfail_module;


char *ngx_http_qqfail_provider(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_qqfail_state_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_geoip2(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_upstream_msec(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_max_stale(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_quorum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_qqfail_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_qqfail_ipv6(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_qqfail_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_qqfail_conf_system_provider(ngx_conf_t *cf,
    ngx_http_qqfail_main_conf_t *qmcf);

ngx_int_t ngx_http_qqfail_geo_open(ngx_conf_t *cf, ngx_str_t *path,
    ngx_http_qqfail_geo_db_t **db);

ngx_int_t ngx_http_qqfail_zone_add(ngx_conf_t *cf,
    ngx_http_qqfail_main_conf_t *qmcf);

ngx_int_t ngx_http_qqfail_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);

ngx_int_t ngx_http_qqfail_status_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_QQFAIL_MODULE_H_INCLUDED_ */
