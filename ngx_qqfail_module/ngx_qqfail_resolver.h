
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#ifndef _NGX_QQFAIL_RESOLVER_H_INCLUDED_
#define _NGX_QQFAIL_RESOLVER_H_INCLUDED_


/*
 * The lookups, private to the resolver's files, layer by layer:
 *
 *   ngx_qqfail_ares.c      c-ares channels and their sockets, one
 *                               driver for the event loop and the
 *                               start-up pass
 *   ngx_qqfail_lookup.c    one name asked of every provider, and the
 *                               decision (quorum, agreement, the most
 *                               telling error)
 *   ngx_qqfail_round.c     one server's rounds: pacing, aliases, the
 *                               end of a round (the policy choice is
 *                               ngx_qqfail_policy.c)
 *   ngx_qqfail_resolver.c  who looks up: the start-up pass in the
 *                               master, the leader's lease in the workers
 *
 * All their state is in one object, ngx_qqfail_resolver_t, passed
 * as the first parameter, as nginx passes its ngx_resolver_t.  Where
 * nginx or c-ares calls in, the context leads to it: an event's data (the
 * resolver, a job, a lookup), a c-ares callback's argument (a channel, a
 * query and its lookup).  Only the worker's exit hook, which nginx calls
 * with the cycle alone, finds it through a static pointer
 * (ngx_qqfail_resolver.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"


#define NGX_QQFAIL_LEASE_TICK          250

/*
 * the start-up pass ends after this long once every upstream has a server
 * with addresses (live, or from the state file or the zone), and after
 * qqfail_timeout at the latest: the lookup leader takes over the names
 * still undecided
 */
#define NGX_QQFAIL_START_PASS          500
#define NGX_QQFAIL_MAX_CONNS           (2 * NGX_QQFAIL_MAX_PROVIDER_ADDRS)

/* the socket buffer for the answers of the lookups in flight */
#define NGX_QQFAIL_RCVBUF              (1024 * 1024)


/*
 * The outcome of one query, as ngx_qqfail_ares.c reports it (the
 * c-ares status, or the parser's verdict on the message received): the
 * rest of the resolver never sees c-ares's own codes
 */

#define NGX_QQFAIL_Q_OK                0
#define NGX_QQFAIL_Q_NODATA            1     /* NOERROR, no address */
#define NGX_QQFAIL_Q_NXDOMAIN          2
#define NGX_QQFAIL_Q_SERVFAIL          3
#define NGX_QQFAIL_Q_REFUSED           4
#define NGX_QQFAIL_Q_TIMEOUT           5
#define NGX_QQFAIL_Q_UNREACHABLE       6     /* connection refused, or no
                                                channel for the provider */
#define NGX_QQFAIL_Q_BADANSWER         7     /* not an answer to the
                                                question, or malformed */
#define NGX_QQFAIL_Q_CANCELLED         8     /* the channel went away */
#define NGX_QQFAIL_Q_ERROR             9     /* anything else */
#define NGX_QQFAIL_Q_UNVALIDATED       10    /* qqfail_dnssec: an answer
                                                without the AD bit */


/* c-ares channels, one per provider and qqfail_timeout: ares.c alone */

typedef struct ngx_qqfail_channel_s       ngx_qqfail_channel_t;


typedef struct ngx_qqfail_resolver_s       ngx_qqfail_resolver_t;
typedef struct ngx_qqfail_lookup_s         ngx_qqfail_lookup_t;


/* what a query asks: q->type */
#define NGX_QQFAIL_QTYPE_A             0
#define NGX_QQFAIL_QTYPE_AAAA          1
#define NGX_QQFAIL_QTYPE_SRV           2
#define NGX_QQFAIL_QTYPE_SOA           3     /* the independence check */
#define NGX_QQFAIL_QTYPE_NS            4

/* the targets of one provider's SRV answer that are looked up, at most */
#define NGX_QQFAIL_MAX_TARGETS         16


typedef struct {
    ngx_qqfail_lookup_t             *lookup;     /* NULL: the check's */
    ngx_qqfail_resolver_t           *check;      /* the check's resolver */
    ngx_uint_t                       provider;
    ngx_uint_t                       type;       /* NGX_QQFAIL_QTYPE_* */
    ngx_int_t                        target;     /* -1: the name itself */
    ngx_uint_t                       sent;       /* counted in flight */
    unsigned                         dnssec:1;   /* DO bit: qqfail_dnssec */
} ngx_qqfail_query_t;


/*
 * A name with "service=": its SRV records as one provider gave them, and
 * the queries for their targets' addresses, asked of the same provider
 */

typedef struct {
    in_port_t                        port;
    uint32_t                         srv;        /* NGX_QQFAIL_SRV_* */
    size_t                           len;
    u_char                           host[256];
    u_char                           given[2];   /* A, AAAA: in the SRV
                                                    answer's additional
                                                    section, not asked */
} ngx_qqfail_target_t;


typedef struct {
    ngx_uint_t                       ntargets;
    ngx_qqfail_target_t              target[NGX_QQFAIL_MAX_TARGETS];
    ngx_qqfail_query_t               query[2 * NGX_QQFAIL_MAX_TARGETS];
} ngx_qqfail_targets_t;


/* one provider's answers for one name */

typedef struct {
    ngx_uint_t                       pending;
    /* Q_* outcomes: A and AAAA; with SRV, the SRV query's and the first
       failed target's */
    ngx_uint_t                       status[2];
    ngx_uint_t                       naddrs;
    int                              ttl;
    ngx_msec_t                       sent;
    unsigned                         done:1;
    unsigned                         ok:1;
    unsigned                         abandoned:1;
    unsigned                         reused:1;   /* a shared answer */
    unsigned                         validated:1;    /* qqfail_dnssec: */
    unsigned                         unvalidated:1;  /* AD bit, or not */
    ngx_qqfail_sockaddr_t            addrs[NGX_QQFAIL_MAX_ADDRS];
    socklen_t                        socklen[NGX_QQFAIL_MAX_ADDRS];
    uint32_t                         srv[NGX_QQFAIL_MAX_ADDRS];
} ngx_qqfail_answer_t;


/*
 * A name that more than one server asks (the same host in several
 * upstreams, in http and stream): each provider's last answer with
 * addresses, given to the next lookup of the name within that lookup's
 * qqfail_refresh instead of asking again, before each upstream's own
 * filter and quorum (ngx_qqfail_lookup.c)
 */

typedef struct {
    ngx_str_t                        qname;
    ngx_uint_t                       srv;
    ngx_uint_t                       stored;     /* a bit a provider */
    /* the types asked, 0x10 with qqfail_dnssec, 0x20 SRV for a backup */
    ngx_uint_t                       types[NGX_QQFAIL_MAX_PROVIDERS];
    ngx_msec_t                       when[NGX_QQFAIL_MAX_PROVIDERS];
    /* whose lookup got it: a server's next lookup asks again */
    ngx_qqfail_server_t             *from[NGX_QQFAIL_MAX_PROVIDERS];
    ngx_qqfail_answer_t             *answer;     /* one a provider */
} ngx_qqfail_shared_t;


/* one name looked up through every provider */

struct ngx_qqfail_lookup_s {
    ngx_qqfail_resolver_t           *rs;
    ngx_qqfail_job_t                *job;        /* NULL once decided */
    ngx_qqfail_server_t             *server;
    ngx_uint_t                       name;
    ngx_uint_t                       queries;    /* outstanding */
    ngx_uint_t                       nproviders;
    ngx_uint_t                       types;      /* 1: A, 2: A and AAAA */
    ngx_int_t                        accepted;   /* answer index, or -1 */
    ngx_uint_t                       rejected;   /* by qqfail_allow */
    ngx_event_t                      deadline;
    ngx_qqfail_targets_t            *targets;    /* SRV: nproviders */
    ngx_qqfail_shared_t             *shared;
    unsigned                         decided:1;
    unsigned                         srv:1;
    unsigned                         charged:1;  /* its targets, to rate= */
    ngx_qqfail_query_t               query[2 * NGX_QQFAIL_MAX_PROVIDERS];
    ngx_qqfail_answer_t              answer[1];  /* nproviders of them */
};


/* the results of one name in a round */

typedef struct {
    ngx_uint_t                       state;
    ngx_uint_t                       error;
    ngx_uint_t                       naddrs;
    ngx_uint_t                       rejected;
    int                              ttl;
    ngx_qqfail_lookup_t             *lookup;

    /*
     * allocated when the name is decided, freed when the round ends: a
     * job waits small, whatever the number of servers
     */
    ngx_addr_t                      *addrs;
    uint32_t                        *srv;        /* NULL: not SRV */
    ngx_qqfail_shared_t             *shared;     /* asked by others too */
    unsigned                         owned:1;
    unsigned                         nodata:1;   /* no record of a type */
} ngx_qqfail_result_t;


/* the periodic lookups of one qqfail_server, in the leader */

struct ngx_qqfail_job_s {
    ngx_qqfail_resolver_t           *rs;
    ngx_qqfail_server_t             *server;
    ngx_event_t                      timer;
    ngx_msec_t                       backoff;
    ngx_msec_t                       ttl;        /* the last answer's */
    ngx_uint_t                       ttl_name;   /* ... of this name */
    ngx_uint_t                       pending;    /* lookups undecided */
    ngx_uint_t                       phase;
    ngx_uint_t                       queried;    /* names in this round */
    ngx_uint_t                       types;      /* 1: A, 2: A and AAAA */
    ngx_queue_t                      queue;      /* waiting for its turn */
    unsigned                         running:1;
    unsigned                         both:1;     /* A alone was not enough */
    unsigned                         starting:1;
    unsigned                         queued:1;
    unsigned                         scheduled:1;  /* once since start */
    ngx_qqfail_result_t              result[1];  /* one a name */
};


typedef void (*ngx_qqfail_query_done_pt)(ngx_qqfail_query_t *q,
    ngx_uint_t outcome, u_char *abuf, size_t alen);
typedef void (*ngx_qqfail_lookup_done_pt)(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
typedef void (*ngx_qqfail_lead_lost_pt)(ngx_qqfail_resolver_t *rs);

typedef struct ngx_qqfail_check_s          ngx_qqfail_check_t;


struct ngx_qqfail_resolver_s {
    ngx_qqfail_main_conf_t          *qmcf;
    ngx_log_t                       *log;

    /* c-ares: one channel per provider and distinct qqfail_timeout */
    ngx_qqfail_channel_t            *channels;
    ngx_uint_t                       nchannels;
    ngx_uint_t                       nproviders;

    /* pacing: queries in flight per provider, the "rate=" bucket */
    ngx_uint_t                       inflight[NGX_QQFAIL_MAX_PROVIDERS];
    ngx_uint_t                       rate;       /* queries a second */
    ngx_msec_t                       tokens_at;
    ngx_uint_t                       tokens;     /* x 1000 */
    ngx_queue_t                      waiting;    /* jobs, for their turn */
    ngx_event_t                      resume_ev;

    ngx_array_t                     *jobs;       /* job_t *, one a server */
    ngx_qqfail_shared_t             *shared;     /* names asked by several */
    ngx_uint_t                       nshared;

    /* who acts: the start-up pass, or the leader of generation "epoch" */
    ngx_uint_t                       sync;
    ngx_uint_t                       leading;
    ngx_uint_t                       ending;     /* the pass's last step */
    ngx_uint_t                       epoch;
    ngx_event_t                      lease_ev;
    ngx_event_t                      stop_ev;

    /* the independence check, in the leader (ngx_qqfail_check.c) */
    ngx_qqfail_check_t              *check;

    /*
     * the layers above, as the layers below call them back: each layer
     * calls down by name and up only through these (set by the layer
     * called), so that the files depend on each other in one direction
     */
    ngx_qqfail_query_done_pt         query_done;   /* lookup.c */
    ngx_qqfail_query_done_pt         check_done;   /* check.c */
    ngx_qqfail_lookup_done_pt        lookup_done;  /* round.c */
    ngx_qqfail_lead_lost_pt          lead_lost;    /* resolver.c */
};


ngx_qqfail_channel_t *ngx_qqfail_channel(
    ngx_qqfail_resolver_t *rs, ngx_uint_t i);
void ngx_qqfail_channel_query(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch, u_char *host, ngx_uint_t type,
    ngx_qqfail_query_t *q);
void ngx_qqfail_channel_timer(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_channel_t *ch);
ngx_int_t ngx_qqfail_channels_create(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_channels_destroy(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_channels_drops(ngx_qqfail_resolver_t *rs);
ngx_int_t ngx_qqfail_channels_poll(ngx_qqfail_resolver_t *rs,
    ngx_msec_t deadline, ngx_msec_t wake);
ngx_int_t ngx_qqfail_lookups_share(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_lookups_unshare(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_job_lookup(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job, ngx_uint_t n);
void ngx_qqfail_lookup_deadline(ngx_event_t *ev);
void ngx_qqfail_query_done(ngx_qqfail_query_t *q,
    ngx_uint_t outcome, u_char *abuf, size_t alen);
void ngx_qqfail_job_check(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
ngx_uint_t ngx_qqfail_job_turn(ngx_qqfail_resolver_t *rs,
    ngx_qqfail_job_t *job);
ngx_msec_t ngx_qqfail_rate_take(ngx_qqfail_resolver_t *rs, ngx_uint_t need);
ngx_int_t ngx_qqfail_jobs_create(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_jobs_destroy(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_jobs_resume(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_jobs_resume_handler(ngx_event_t *ev);
ngx_int_t ngx_qqfail_check_start(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_check_stop(ngx_qqfail_resolver_t *rs);
void ngx_qqfail_check_done(ngx_qqfail_query_t *q, ngx_uint_t outcome,
    u_char *abuf, size_t alen);


/*
 * Before the leader writes to the zone or publishes anything: does it
 * still hold its lease?  A leader that resumes after a stop (SIGSTOP, a
 * slow fsync) reads the answers that came meanwhile and runs its expired
 * timers before its next lease tick: once the lease ran out, none of that
 * counts, and the leadership ends (rs->lead_lost).  The start-up pass
 * always acts.
 */

static ngx_inline ngx_uint_t
ngx_qqfail_lead_check(ngx_qqfail_resolver_t *rs)
{
    if (rs->sync) {
        return 1;
    }

    if (!rs->leading) {
        return 0;
    }

    if (ngx_qqfail_lease(rs->qmcf, rs->epoch, 1) == NGX_OK) {
        return 1;
    }

    rs->lead_lost(rs);

    return 0;
}


/* a query ended: its lookup, or the independence check, hears the outcome */

static ngx_inline void
ngx_qqfail_query_end(ngx_qqfail_query_t *q, ngx_uint_t outcome,
    u_char *abuf, size_t alen)
{
    if (q->check) {
        q->check->check_done(q, outcome, abuf, alen);
        return;
    }

    q->lookup->rs->query_done(q, outcome, abuf, alen);
}


#endif /* _NGX_QQFAIL_RESOLVER_H_INCLUDED_ */
