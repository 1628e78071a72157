
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#ifndef _NGX_QQFAIL_BALANCER_H_INCLUDED_
#define _NGX_QQFAIL_BALANCER_H_INCLUDED_


/*
 * The balancer every front end uses (ngx_qqfail_balancer.c): a worker's
 * copy of an upstream's peers, kept in step with the zone, and nginx's
 * balancing methods over them, through nginx's peer connection
 * (ngx_peer_connection_t) that http and stream share.  A front end makes
 * a request's or a session's state with ngx_qqfail_balancer_create(),
 * gives it the hash key or the client's address its method needs, and
 * sets the peer connection's callbacks to the functions below.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_qqfail.h"


typedef struct ngx_qqfail_peers_s      ngx_qqfail_peers_t;
typedef struct ngx_qqfail_peer_data_s  ngx_qqfail_peer_data_t;


ngx_int_t ngx_qqfail_balancer_init(ngx_conf_t *cf,
    ngx_qqfail_srv_conf_t *qscf);
ngx_qqfail_peer_data_t *ngx_qqfail_balancer_create(
    ngx_qqfail_srv_conf_t *qscf, ngx_pool_t *pool);
void ngx_qqfail_balancer_key(ngx_qqfail_peer_data_t *pd, ngx_str_t *key);
void ngx_qqfail_balancer_client(ngx_qqfail_peer_data_t *pd,
    struct sockaddr *sa);
ngx_uint_t ngx_qqfail_balancer_tries(ngx_qqfail_peer_data_t *pd);
ngx_str_t *ngx_qqfail_balancer_peer(ngx_qqfail_peer_data_t *pd,
    ngx_uint_t source);

ngx_int_t ngx_qqfail_get_peer(ngx_peer_connection_t *pc, void *data);
void ngx_qqfail_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
#if (NGX_SSL || NGX_COMPAT)
ngx_int_t ngx_qqfail_set_session(ngx_peer_connection_t *pc, void *data);
void ngx_qqfail_save_session(ngx_peer_connection_t *pc, void *data);
#endif


#endif /* _NGX_QQFAIL_BALANCER_H_INCLUDED_ */
