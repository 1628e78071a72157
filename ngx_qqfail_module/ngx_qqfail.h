
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#ifndef _NGX_QQFAIL_H_INCLUDED_
#define _NGX_QQFAIL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_qqfail_text.h"
#include "ngx_qqfail_policy.h"


#define NGX_QQFAIL_VERSION               "0.1.0"

#define NGX_QQFAIL_MAX_PROVIDERS         16
#define NGX_QQFAIL_MAX_PROVIDER_ADDRS       16
#define NGX_QQFAIL_MAX_NAMES             8
#define NGX_QQFAIL_PROVIDER_NAME_LEN       64
#define NGX_QQFAIL_MAX_INFLIGHT          128     /* queries, per provider */
#define NGX_QQFAIL_MIN_ZONE_SIZE         (128 * 1024)
#define NGX_QQFAIL_DEFAULT_ZONE_SIZE       (1024 * 1024)
#define NGX_QQFAIL_SERVER_ROOM           1024    /* default zone size */

#define NGX_QQFAIL_RULE_ASN              2
#define NGX_QQFAIL_RULE_COUNTRY          3

#define NGX_QQFAIL_STATUS_JSON           1
#define NGX_QQFAIL_STATUS_PROMETHEUS       2
#define NGX_QQFAIL_STATUS_HTML           3

#define NGX_QQFAIL_STALE_FOREVER         NGX_MAX_TIME_T_VALUE

/* changes whenever a structure in the shared zone changes */
#define NGX_QQFAIL_LAYOUT                                                     \
    (0x71710000 + sizeof(ngx_qqfail_sh_t)                                     \
     + 3 * sizeof(ngx_qqfail_server_sh_t)                                     \
     + 5 * sizeof(ngx_qqfail_slot_sh_t)                                       \
     + 11 * sizeof(ngx_qqfail_name_sh_t)                                      \
     + 7 * sizeof(ngx_qqfail_events_sh_t)                                     \
     + 13 * sizeof(ngx_qqfail_upstream_sh_t))

#define NGX_QQFAIL_MAX_ADDRS             32      /* per name and answer */

/* nginx's balancing methods, in a qqfail upstream */
#define NGX_QQFAIL_METHOD_RR             0
#define NGX_QQFAIL_METHOD_HASH           1
#define NGX_QQFAIL_METHOD_CHASH          2
#define NGX_QQFAIL_METHOD_IP_HASH        3
#define NGX_QQFAIL_METHOD_LEAST_CONN     4
#define NGX_QQFAIL_METHOD_RANDOM         5
#define NGX_QQFAIL_METHOD_RANDOM_TWO     6
#define NGX_QQFAIL_MAX_PROCS             256     /* workers, all generations */
#define NGX_QQFAIL_ADDR_STRLEN           (NGX_INET6_ADDRSTRLEN + 9)
#define NGX_QQFAIL_ORG_HASH              256     /* buckets */
#define NGX_QQFAIL_MAX_ORGS              4096    /* AS names kept */
#define NGX_QQFAIL_ERRLEN                64
#define NGX_QQFAIL_ORG_LEN               48
#define NGX_QQFAIL_NEVENTS               64
#define NGX_QQFAIL_EVENT_UPSTREAM        64
#define NGX_QQFAIL_EVENT_SERVER          96
#define NGX_QQFAIL_EVENT_MESSAGE         192
#define NGX_QQFAIL_CHANGES               128     /* per upstream, ring */

/* lookup failure kinds, as counted per provider */
#define NGX_QQFAIL_ERR_TIMEOUT           0
#define NGX_QQFAIL_ERR_SERVFAIL          1
#define NGX_QQFAIL_ERR_NXDOMAIN          2
#define NGX_QQFAIL_ERR_REFUSED           3
#define NGX_QQFAIL_ERR_OTHER             4
#define NGX_QQFAIL_ERR_BADANSWER         5   /* refused by the parser */
#define NGX_QQFAIL_ERR_UNVALIDATED       6   /* qqfail_dnssec: no AD bit */
#define NGX_QQFAIL_NERRS                 7

/* why the address filter refused an address */
#define NGX_QQFAIL_REFUSED_NONE          0
#define NGX_QQFAIL_REFUSED_FAMILY        1
#define NGX_QQFAIL_REFUSED_SPECIAL       2
#define NGX_QQFAIL_REFUSED_METADATA 3
#define NGX_QQFAIL_REFUSED_LOOP          4
#define NGX_QQFAIL_REFUSED_ALLOW         5


typedef struct ngx_qqfail_srv_conf_s       ngx_qqfail_srv_conf_t;


/* what the lookups report to the zone (ngx_qqfail_zone_*()) */

#define NGX_QQFAIL_COUNT_QUERIES             0
#define NGX_QQFAIL_COUNT_DROPS               1
#define NGX_QQFAIL_COUNT_DISAGREEMENTS       2

#define NGX_QQFAIL_STALE_NEW                 1
#define NGX_QQFAIL_STALE_EXPIRED             2

typedef struct {
    ngx_uint_t                       ok;
    ngx_uint_t                       error;      /* unless ok */
    ngx_uint_t                       transport;  /* no answer at all */
    ngx_uint_t                       disagree;
    ngx_uint_t                       validated;  /* qqfail_dnssec: AD set */
    ngx_uint_t                       unvalidated;    /* ... and not */
    ngx_msec_t                       rtt;
    u_char                          *text;       /* the last error */
    size_t                           len;
} ngx_qqfail_result_report_t;

typedef struct {
    ngx_uint_t                       state;      /* NGX_QQFAIL_NAME_* */
    ngx_uint_t                       error;
    ngx_uint_t                       naddrs;
    ngx_uint_t                       rejected;
} ngx_qqfail_name_report_t;
typedef struct ngx_qqfail_provider_sh_s       ngx_qqfail_provider_sh_t;


/* a place in the configuration, for messages found after parsing */
typedef struct {
    u_char                          *file;
    ngx_uint_t                       line;
} ngx_qqfail_where_t;


typedef struct {
    ngx_str_t                        name;
    ngx_array_t                      addrs;      /* ngx_addr_t */
    ngx_str_t                        servers;    /* "ip:port,[ip6]:port" */
    ngx_qqfail_provider_sh_t        *sh;
    ngx_uint_t                       max_inflight;  /* queries */
    ngx_uint_t                       rate;       /* queries a second, 0: any */
    unsigned                         system:1;   /* from /etc/resolv.conf */
} ngx_qqfail_provider_t;


typedef struct {
    ngx_str_t                        host;       /* lowercase, no final dot */
    in_port_t                        port;
    ngx_str_t                        text;       /* as written */
    ngx_str_t                        key;        /* "host:port", "ip:port",
                                                    "qname:srv" */
    ngx_addr_t                       addr;       /* IP literals only */
    /* the name asked: the host, or with service= its SRV name */
    ngx_str_t                        qname;
    unsigned                         literal:1;
    unsigned                         srv:1;      /* SRV, ports from it */
} ngx_qqfail_name_t;


/*
 * Shared memory: no process-local pointers below this line.
 *
 * Who writes: every field below is written under the zone's mutex
 * (qmcf->shpool->mutex), and only by ngx_qqfail_zone.c: the address
 * sets by ngx_qqfail_zone_publish() (the leader, the start-up pass,
 * the state file's load), the counters and states by the report
 * functions ngx_qqfail_zone_counter(), _rejected(),
 * _provider_result(), _names(), _failover(), _stale(), _loaded(),
 * _generation(), _state_saved(), the passive checks of a slot by
 * _peer_failed() and _peer_ok() (the balancer), the lease and the
 * process registry by ngx_qqfail_lease() and the registry functions.
 * Readers take the same lock and copy what they need: the balancer (a
 * server at a time), the status page (a batch of servers at a time); the
 * state file's save gets its copy of 64 servers at a time from
 * ngx_qqfail_zone_copy(); a server's slots are walked
 * with ngx_qqfail_slot_first() and _next().
 *
 * Nothing is allocated while the lock is held.  The lock is the slab
 * pool's own mutex, so ngx_qqfail_zone.c allocates what a write
 * needs before it takes the lock (ngx_slab_alloc() locks it briefly),
 * links it under the lock, and frees what it unlinked or did not use
 * (ngx_slab_free()) once it is unlocked: the chunk of slots and the AS
 * names of a publication, the records of the master's attach.
 *
 * Written without the lock, each for the reason given at the field:
 * a server record's "next_msec", "next_lookup" and "recover" (the one
 * process that looks the server up writes them, the leader or the
 * start-up pass; a reader only shows or schedules from them, and a torn
 * value moves one lookup), and a slot's "checked" when the balancer picks
 * the address for its trial after fail_timeout (as nginx's round robin
 * does for its peers; a lost write delays or repeats one trial).  Read
 * without the lock: a
 * provider's "down" by the leader's pacing (a stale value moves one turn),
 * a server's and an upstream's "gen" by the balancer (it takes the lock
 * before it copies anything), the AS names ("orgs", never freed, linked
 * after a barrier) by the status page and by a publication that looks
 * for the names it lacks before it allocates them (linked only if still
 * missing once it has the lock).
 */

typedef union {
    struct sockaddr                  sockaddr;
    struct sockaddr_in               sockaddr_in;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6              sockaddr_in6;
#endif
} ngx_qqfail_sockaddr_t;


/*
 * An address of a server.  Its text ("ip:port") is made when it is shown
 * (ngx_qqfail_slot_text()), and the GeoIP2 organisation is kept once
 * per AS number for the whole zone (ngx_qqfail_zone_org()).
 */

typedef struct {
    ngx_qqfail_sockaddr_t            sockaddr;
    u_char                           socklen;
    u_char                           in_use;
    u_char                           country[2];
    u_char                           continent[2];
    uint32_t                         id;         /* changes on reuse */
    uint32_t                         asn;
    uint32_t                         fails;
    time_t                           accessed;
    time_t                           checked;
    uint32_t                         srv;        /* NGX_QQFAIL_SRV_* */
    ngx_atomic_t                     conns;      /* id and count, packed */
} ngx_qqfail_slot_sh_t;


/* a server's record as a reader copies it (ngx_qqfail_zone_copy()) */

typedef struct {
    ngx_uint_t                       active;
    ngx_uint_t                       source;
    ngx_uint_t                       naddrs;
    time_t                           last_success;
    ngx_uint_t                       nslots;     /* in use */
    ngx_qqfail_slot_sh_t             slots[NGX_QQFAIL_MAX_ADDRS];
} ngx_qqfail_server_copy_t;


/*
 * Slots in one allocation: the first chunk of a server is part of its
 * record, more are added when a set needs them, sized to it; a slot never
 * moves while its record lives (the workers' copies point to it).
 */

typedef struct ngx_qqfail_chunk_sh_s       ngx_qqfail_chunk_sh_t;

struct ngx_qqfail_chunk_sh_s {
    ngx_qqfail_chunk_sh_t           *next;
    ngx_uint_t                       nslots;
    ngx_qqfail_slot_sh_t             slot[1];
};


/* a name of a server; hash: of "name:port", as the record's key */

typedef struct {
    uint64_t                         hash;
    time_t                           last_success;
    uint32_t                         rejected;   /* by qqfail_allow */
    u_char                           state;
    u_char                           error;      /* NGX_QQFAIL_ERR_* */
    u_char                           naddrs;
    unsigned                         rejecting:1;  /* logged, episode */
    unsigned                         noquorum:1;   /* logged, episode */
} ngx_qqfail_name_sh_t;


/* an AS organisation name, shared by the addresses of that AS */

typedef struct ngx_qqfail_org_sh_s       ngx_qqfail_org_sh_t;

struct ngx_qqfail_org_sh_s {
    ngx_qqfail_org_sh_t             *next;
    uint32_t                         asn;
    u_char                           len;
    u_char                           data[1];
};


/*
 * The independence check's report on a server's names
 * (ngx_qqfail_check.c), a block of its own linked to the server's
 * record at the first report and freed with it: written by the leader
 * through ngx_qqfail_zone_independence() under the lock, copied under
 * the lock by readers; a finding names the server's names it is about (a bit a name) and what
 * they share, as text ("detail")
 */

#define NGX_QQFAIL_FINDING_SAME_ZONE     1
#define NGX_QQFAIL_FINDING_SAME_DOMAIN   2   /* registered domain */
#define NGX_QQFAIL_FINDING_NS_HOST       3
#define NGX_QQFAIL_FINDING_NS_ADDRESS    4
#define NGX_QQFAIL_FINDING_TLD_OPERATOR  5
#define NGX_QQFAIL_FINDING_UNKNOWN       6   /* the zone was not learned */

#define NGX_QQFAIL_FINDINGS              4
#define NGX_QQFAIL_FINDING_LEN           57     /* a report: 256 bytes */

typedef struct {
    u_char                           kind;       /* NGX_QQFAIL_FINDING_* */
    u_char                           names;      /* a bit a name */
    u_char                           len;
    u_char                           detail[NGX_QQFAIL_FINDING_LEN];
} ngx_qqfail_finding_sh_t;


typedef struct {
    time_t                           checked;    /* 0: not yet */
    u_char                           nfindings;
    u_char                           more;       /* beyond the room */
    ngx_qqfail_finding_sh_t          finding[NGX_QQFAIL_FINDINGS];
} ngx_qqfail_check_sh_t;


typedef struct ngx_qqfail_server_sh_s       ngx_qqfail_server_sh_t;
typedef struct ngx_qqfail_upstream_sh_s       ngx_qqfail_upstream_sh_t;

/*
 * A server's record is found by its upstream and its names, as written
 * in the state file ("name:port,name:port"): the record keeps a 64-bit
 * hash of each name, not the text.  Records are shared by every
 * generation whose configuration has that server; "epoch" is the newest
 * generation that uses it, and a record no running generation uses is
 * freed (ngx_qqfail_zone_gc).       One allocation holds the record, its
 * names and its first slots (as many as the allocation has room for).
 */

struct ngx_qqfail_server_sh_s {
    ngx_qqfail_server_sh_t          *next;
    ngx_qqfail_upstream_sh_t        *upstream;
    ngx_qqfail_name_sh_t            *names;      /* nnames, in the record */
    ngx_qqfail_chunk_sh_t           *chunks;     /* the first in the record */
    time_t                           last_success;
    time_t                           next_lookup;    /* shown; no lock */
    ngx_msec_t                       next_msec;      /* scheduled; no lock */
    time_t                           stale_since;
    ngx_uint_t                       failovers;
    uint32_t                         gen;        /* changes with the set */
    uint32_t                         epoch;
    u_char                           nnames;
    u_char                           naddrs;
    u_char                           active;     /* index of the name */
    u_char                           source;
    u_char                           quorum;     /* the set was agreed by */
    u_char                           recover;    /* better name ok; no lock */
    /* the independence check's report, allocated at its first one */
    ngx_qqfail_check_sh_t           *check;
};


/*
 * The walk over a server's slots, in use or not, chunk after chunk; every
 * walk over slots goes through it:
 *
 *     for (slot = ngx_qqfail_slot_first(ssh, &it);
 *          slot;
 *          slot = ngx_qqfail_slot_next(&it))
 *     {
 *         if (!slot->in_use) {
 *             continue;
 *         }
 *         ...
 *     }
 *
 * Under the zone lock, or on a record the walker alone can reach; "ssh"
 * may be a copy of a record, its "chunks" are read once.
 */

typedef struct {
    ngx_qqfail_chunk_sh_t           *chunk;
    ngx_uint_t                       i;
} ngx_qqfail_slots_t;


static ngx_inline ngx_qqfail_slot_sh_t *
ngx_qqfail_slot_next(ngx_qqfail_slots_t *it)
{
    while (it->chunk) {
        if (it->i < it->chunk->nslots) {
            return &it->chunk->slot[it->i++];
        }

        it->chunk = it->chunk->next;
        it->i = 0;
    }

    return NULL;
}


static ngx_inline ngx_qqfail_slot_sh_t *
ngx_qqfail_slot_first(ngx_qqfail_server_sh_t *ssh,
    ngx_qqfail_slots_t *it)
{
    it->chunk = ssh->chunks;
    it->i = 0;

    return ngx_qqfail_slot_next(it);
}


/*
 * Connections to an address, counted by every worker on its slot (for
 * least_conn, random two and max_conns): the slot's id and the count in
 * one word, changed by compare-and-swap, so that a count made for an
 * address is never read or released as another's once the slot is
 * reused; a word of another id counts 0.
 */

#if (NGX_PTR_SIZE == 8)
#define NGX_QQFAIL_CONNS_SHIFT           32
#else
#define NGX_QQFAIL_CONNS_SHIFT           16
#endif

#define NGX_QQFAIL_CONNS_MASK                                                 \
    (((ngx_atomic_uint_t) 1 << NGX_QQFAIL_CONNS_SHIFT) - 1)
#define ngx_qqfail_conns_id(id)                                               \
    ((ngx_atomic_uint_t) (id) & NGX_QQFAIL_CONNS_MASK)


static ngx_inline ngx_uint_t
ngx_qqfail_slot_conns(ngx_qqfail_slot_sh_t *slot, uint32_t id)
{
    ngx_atomic_uint_t  w;

    w = *(volatile ngx_atomic_uint_t *) &slot->conns;

    if ((w >> NGX_QQFAIL_CONNS_SHIFT) != ngx_qqfail_conns_id(id)) {
        return 0;
    }

    return (ngx_uint_t) (w & NGX_QQFAIL_CONNS_MASK);
}


/* one more connection, unless max (0: no limit) are open */

static ngx_inline ngx_uint_t
ngx_qqfail_slot_conns_take(ngx_qqfail_slot_sh_t *slot, uint32_t id,
    ngx_uint_t max)
{
    ngx_atomic_uint_t  w, n, nw;

    for ( ;; ) {
        w = *(volatile ngx_atomic_uint_t *) &slot->conns;

        if ((w >> NGX_QQFAIL_CONNS_SHIFT) == ngx_qqfail_conns_id(id)) {
            n = w & NGX_QQFAIL_CONNS_MASK;

            if ((max && n >= max) || n == NGX_QQFAIL_CONNS_MASK) {
                return 0;
            }

            nw = w + 1;

        } else if (*(volatile uint32_t *) &slot->id != id) {
            /* the address is gone: the word is its slot's new one's */
            return 1;

        } else {
            nw = (ngx_qqfail_conns_id(id) << NGX_QQFAIL_CONNS_SHIFT) | 1;
        }

        if (ngx_atomic_cmp_set(&slot->conns, w, nw)) {
            return 1;
        }
    }
}


static ngx_inline void
ngx_qqfail_slot_conns_release(ngx_qqfail_slot_sh_t *slot, uint32_t id)
{
    ngx_atomic_uint_t  w;

    for ( ;; ) {
        w = *(volatile ngx_atomic_uint_t *) &slot->conns;

        if ((w >> NGX_QQFAIL_CONNS_SHIFT) != ngx_qqfail_conns_id(id)
            || (w & NGX_QQFAIL_CONNS_MASK) == 0)
        {
            return;
        }

        if (ngx_atomic_cmp_set(&slot->conns, w, w - 1)) {
            return;
        }
    }
}


/*
 * "gen" counts the changes of its servers' address sets; the records of
 * the last NGX_QQFAIL_CHANGES of them are in "changed", the change
 * numbered g at g % NGX_QQFAIL_CHANGES, so that workers copy only
 * the servers that changed (ngx_qqfail_zone_changed())
 */

struct ngx_qqfail_upstream_sh_s {
    ngx_qqfail_upstream_sh_t        *next;
    u_char                          *key;
    size_t                           key_len;
    ngx_uint_t                       gen;
    ngx_uint_t                       epoch;
    ngx_qqfail_server_sh_t          *changed[NGX_QQFAIL_CHANGES];
};


/* a worker process and the generation it belongs to */

typedef struct {
    ngx_pid_t                        pid;
    ngx_uint_t                       epoch;
} ngx_qqfail_proc_sh_t;


struct ngx_qqfail_provider_sh_s {
    u_char                           name[NGX_QQFAIL_PROVIDER_NAME_LEN];
    size_t                           name_len;
    ngx_uint_t                       down;
    ngx_uint_t                       transport_fails;  /* in a row */
    ngx_uint_t                       queries;
    ngx_uint_t                       failures[NGX_QQFAIL_NERRS];
    ngx_uint_t                       disagreements;
    ngx_uint_t                       rejected;
    ngx_uint_t                       drops;      /* by the kernel */
    /* qqfail_dnssec answers marked validated (AD), and not */
    ngx_uint_t                       validated;
    ngx_uint_t                       unvalidated;
    ngx_msec_t                       rtt;
    time_t                           last_success;
    time_t                           last_failure;
    u_char                           last_error[NGX_QQFAIL_ERRLEN];
};


typedef struct {
    time_t                           time;
    u_char                           upstream_len;
    u_char                           server_len;
    u_char                           message_len;
    u_char                           upstream[NGX_QQFAIL_EVENT_UPSTREAM];
    u_char                           server[NGX_QQFAIL_EVENT_SERVER];
    u_char                           message[NGX_QQFAIL_EVENT_MESSAGE];
} ngx_qqfail_event_sh_t;


typedef struct {
    ngx_uint_t                       nevents;    /* ever recorded */
    ngx_qqfail_event_sh_t            event[NGX_QQFAIL_NEVENTS];
} ngx_qqfail_events_sh_t;


typedef struct {
    ngx_uint_t                       layout;
    ngx_uint_t                       epoch;
    ngx_uint_t                       leader_epoch;
    ngx_pid_t                        leader_pid;
    ngx_msec_t                       lease_until;
    ngx_qqfail_provider_sh_t         providers[NGX_QQFAIL_MAX_PROVIDERS];
    ngx_qqfail_upstream_sh_t        *upstreams;
    ngx_qqfail_server_sh_t          *servers;
    ngx_qqfail_org_sh_t             *orgs[NGX_QQFAIL_ORG_HASH];
    ngx_uint_t                       norgs;
    /* free records, by their number of names less one */
    void                            *cells[NGX_QQFAIL_MAX_NAMES];
    ngx_qqfail_events_sh_t          *events;
    ngx_uint_t                       nservers;   /* records */
    ngx_uint_t                       full;       /* logged, episode */
    size_t                           needed;     /* bytes, when full */
    ngx_uint_t                       nprocs;
    ngx_qqfail_proc_sh_t             procs[NGX_QQFAIL_MAX_PROCS];

    /*
     * the state file's health: written by the lookup leader in
     * ngx_qqfail_state_save() under the zone mutex, shown by the
     * status page of any worker; state_path_hash is the crc32 of the path
     * they are about, state_error is "" while the last write succeeded
     */
    uint32_t                         state_path_hash;
    time_t                           state_written;  /* last success */
    u_char                           state_error[NGX_QQFAIL_ERRLEN * 2];
} ngx_qqfail_sh_t;


/* process memory */

typedef struct {
    u_char                           country[2];
    u_char                           continent[2];
    uint32_t                         asn;
    u_char                           org[NGX_QQFAIL_ORG_LEN];
} ngx_qqfail_geo_t;


typedef struct ngx_qqfail_job_s       ngx_qqfail_job_t;


typedef struct {
    ngx_array_t                      names;      /* ngx_qqfail_name_t */
    ngx_str_t                        key;        /* "name:port,name:port" */
    ngx_str_t                        service;    /* "service=", or empty */
    ngx_uint_t                       weight;
    ngx_uint_t                       max_fails;
    ngx_uint_t                       max_conns;
    time_t                           fail_timeout;
    ngx_qqfail_server_sh_t          *sh;
    ngx_qqfail_srv_conf_t           *upstream;
    unsigned                         backup:1;
    unsigned                         down:1;
    unsigned                         refused:1;  /* by new rules, at start */
} ngx_qqfail_server_t;


typedef struct {
    ngx_uint_t                       type;
    uint32_t                         asn;
    u_char                           country[2];
    ngx_qqfail_where_t               where;
} ngx_qqfail_rule_t;


typedef struct {
    void                            *mmdb;       /* MMDB_s: the geo file's */
    ngx_str_t                        path;
    unsigned                         asn:1;
    unsigned                         country:1;
} ngx_qqfail_geo_db_t;


typedef struct {
    ngx_array_t                      providers;  /* provider_t */
    ngx_array_t                      upstreams;  /* srv_conf_t * */

    ngx_uint_t                       nservers;   /* configured */

    ngx_shm_zone_t                  *shm_zone;
    ngx_slab_pool_t                 *shpool;
    ngx_qqfail_sh_t                 *sh;
    size_t                           zone_size;
    ngx_qqfail_where_t               zone_where; /* "qqfail_zone", if set */
    ngx_uint_t                       epoch;      /* a worker's generation */

    ngx_array_t                     *listening;  /* the cycle's sockets */
    ngx_array_t                      local;      /* ngx_addr_t, interfaces */

    ngx_str_t                        state_file;
    ngx_flag_t                       state_file_set;
    uint32_t                         state_file_hash;   /* crc32 of the path */
    ngx_qqfail_where_t               state_file_where;

    ngx_qqfail_geo_db_t             *geo_country;
    ngx_qqfail_geo_db_t             *geo_asn;

    ngx_uint_t                       status_used;
} ngx_qqfail_main_conf_t;





typedef struct ngx_qqfail_front_s  ngx_qqfail_front_t;

/* a front end's init_upstream, as the core holds it (never calls it) */
typedef ngx_int_t (*ngx_qqfail_init_pt)(ngx_conf_t *cf, void *upstream);


struct ngx_qqfail_srv_conf_s {
    ngx_array_t                     *servers;    /* server_t, NULL: none */
    ngx_str_t                        name;       /* the upstream's */
    /* in the zone and the state file: the name, "stream:" before it in
       stream{}, so that an http and a stream upstream stay apart */
    ngx_str_t                        id;

    /* the front end's upstream{}: ngx_http_upstream_srv_conf_t */
    void                            *upstream;
    ngx_qqfail_main_conf_t          *main;
    /* set by the front end's create_srv_conf */
    ngx_qqfail_front_t              *front;

    ngx_msec_t                       refresh;
    ngx_msec_t                       timeout;
    time_t                           max_stale;
    ngx_uint_t                       quorum;
    ngx_array_t                     *allow;      /* rule_t: asn, country */
    ngx_array_t                     *allow_cidr; /* ngx_cidr_t */
    ngx_flag_t                       ipv6;
    ngx_flag_t                       dnssec;     /* AD answers only */

    /* the balancing method, and the front end's data for it */
    ngx_uint_t                       method;     /* NGX_QQFAIL_METHOD_* */
    ngx_str_t                        method_name;
    ngx_qqfail_where_t               method_where;
    ngx_qqfail_init_pt               method_init;
    void                            *key;        /* hash: complex value */
    void                            *points;     /* hash consistent */

    ngx_qqfail_where_t               first;      /* first qqfail_server */
    ngx_qqfail_where_t               directive;  /* first other directive */
    ngx_qqfail_where_t               quorum_where;

    ngx_qqfail_upstream_sh_t        *sh;
    ngx_uint_t                       channels;   /* the leader's set */
    void                            *peers;      /* the balancer's copy */
    unsigned                         initialized:1;
    unsigned                         stream:1;   /* in stream {} */
};




extern ngx_module_t  ngx_qqfail_module;

/* the shared configuration, while the configuration is read */
#define ngx_qqfail_conf_get(cycle)                                            \
    ((ngx_qqfail_main_conf_t *) ngx_get_conf((cycle)->conf_ctx,               \
                                             ngx_qqfail_module))


/*
 * A command's post for ngx_qqfail_conf_slot(): nginx's slot setter, the
 * bounds of the value, and the message for a bad value (arguments: the
 * directive's name and value, low, high); NULL: no bounds
 */

typedef struct {
    ngx_conf_post_handler_pt         post_handler;
    char                          *(*slot)(ngx_conf_t *cf,
                                           ngx_command_t *cmd, void *conf);
    ngx_uint_t                       low;
    ngx_uint_t                       high;
    char                            *invalid;
} ngx_qqfail_slot_t;


typedef char *(*ngx_qqfail_method_pt)(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* a balancing method directive of nginx's, wrapped while a block is read */

typedef struct {
    char                            *module;
    ngx_str_t                        name;
    ngx_command_t                   *cmd;
    ngx_qqfail_method_pt             set;
} ngx_qqfail_method_t;


/*
 * What the core reads of a front end's upstream{} (its
 * ngx_http_upstream_srv_conf_t or ngx_stream_upstream_srv_conf_t)
 */

typedef struct {
    ngx_qqfail_init_pt               init_upstream;  /* peer.init_upstream */
    ngx_array_t                     *servers;    /* its "server" entries */
    ngx_uint_t                       backup;     /* "backup" allowed */
    ngx_uint_t                       zone;       /* it has a "zone" */
} ngx_qqfail_upstream_t;


/*
 * A front end, to the core: one static table each, which its
 * create_srv_conf gives every upstream configuration (qscf->front).  The
 * core does with it what both front ends do: "qqfail_server"
 * (ngx_qqfail_conf_server()), the wrapped balancing methods
 * (ngx_qqfail_conf_method()) and the checks of init_upstream
 * (ngx_qqfail_balancer_init()).
 */

struct ngx_qqfail_front_s {
    /* at the upstream's first directive: sets upstream, name, id, main */
    void                           (*attach)(ngx_conf_t *cf,
                                             ngx_qqfail_srv_conf_t *qscf);
    /* reads the upstream{} into u */
    void                           (*read)(void *upstream,
                                           ngx_qqfail_upstream_t *u);
    /* sets its peer.init_upstream */
    void                           (*set)(void *upstream,
                                          ngx_qqfail_init_pt init);
    /* fills the placeholder "server" the core adds (an element of
       u->servers, zeroed) */
    void                           (*placeholder)(void *server,
                                                  ngx_addr_t *addr);
    /* nginx's complex value slot: the key of "hash" */
    ngx_qqfail_method_pt             key;
    ngx_qqfail_init_pt               init_upstream;  /* the front end's */
    ngx_qqfail_method_t             *methods;    /* the ones it wraps */
    /* "qqfail_server" after another balancing method (argument: the
       upstream's name) */
    char                            *combined;
};


extern ngx_qqfail_slot_t  ngx_qqfail_zone_slot;
extern ngx_conf_post_t    ngx_qqfail_state_file_post;
extern ngx_qqfail_slot_t  ngx_qqfail_refresh_slot;
extern ngx_qqfail_slot_t  ngx_qqfail_timeout_slot;
extern ngx_qqfail_slot_t  ngx_qqfail_quorum_slot;
extern ngx_qqfail_slot_t  ngx_qqfail_ipv6_slot;
extern ngx_qqfail_slot_t  ngx_qqfail_dnssec_slot;

void ngx_qqfail_conf_where(ngx_conf_t *cf, ngx_qqfail_where_t *where);
ngx_qqfail_srv_conf_t *ngx_qqfail_upstream_conf(ngx_conf_t *cf,
    void *conf);
char *ngx_qqfail_conf_provider(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_qqfail_conf_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_qqfail_conf_zone_post(ngx_conf_t *cf, void *post, void *data);
char *ngx_qqfail_conf_state_file_post(ngx_conf_t *cf, void *post,
    void *data);
char *ngx_qqfail_conf_geoip2(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_qqfail_conf_upstream_post(ngx_conf_t *cf, void *post,
    void *data);
char *ngx_qqfail_conf_max_stale(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_qqfail_conf_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_qqfail_conf_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_qqfail_conf_method(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf, ngx_qqfail_srv_conf_t *qscf);
ngx_int_t ngx_qqfail_methods_wrap(ngx_conf_t *cf,
    ngx_qqfail_method_t *methods, ngx_qqfail_method_pt wrapper);
void ngx_qqfail_methods_unwrap(void *data);
ngx_qqfail_method_t *ngx_qqfail_method_find(ngx_qqfail_method_t *methods,
    ngx_command_t *cmd);
ngx_uint_t ngx_qqfail_method_of(ngx_conf_t *cf);

ngx_qqfail_main_conf_t *ngx_qqfail_cycle_conf(ngx_cycle_t *cycle);
ngx_int_t ngx_qqfail_parse_ip(ngx_conf_t *cf, ngx_str_t *text,
    in_port_t default_port, ngx_addr_t *addr);
ngx_int_t ngx_qqfail_conf_system_provider(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf);

ngx_int_t ngx_qqfail_geo_open(ngx_conf_t *cf, ngx_str_t *path,
    ngx_qqfail_geo_db_t **db);

ngx_int_t ngx_qqfail_zone_add(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf, void *tag);

ngx_int_t ngx_qqfail_zone_publish(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server, ngx_uint_t name, ngx_addr_t *addrs,
    ngx_qqfail_geo_t *geo, uint32_t *srv, ngx_uint_t naddrs,
    ngx_uint_t source, ngx_log_t *log);
void ngx_qqfail_geo_annotate(ngx_qqfail_main_conf_t *qmcf,
    ngx_addr_t *addrs, ngx_uint_t naddrs, ngx_qqfail_geo_t *geo);
void ngx_qqfail_geo_lookup(ngx_qqfail_main_conf_t *qmcf,
    struct sockaddr *sa, ngx_qqfail_geo_t *geo);
ngx_uint_t ngx_qqfail_allowed(ngx_qqfail_srv_conf_t *qscf,
    struct sockaddr *sa, ngx_qqfail_geo_t *geo);
void ngx_qqfail_zone_refilter(ngx_qqfail_main_conf_t *qmcf,
    ngx_uint_t empty, ngx_log_t *log);
void ngx_qqfail_zone_register(ngx_qqfail_main_conf_t *qmcf,
    ngx_uint_t epoch);
ngx_uint_t ngx_qqfail_filter(ngx_qqfail_srv_conf_t *qscf,
    ngx_addr_t *addrs, ngx_qqfail_geo_t *geo, ngx_uint_t naddrs,
    ngx_uint_t *why);
ngx_int_t ngx_qqfail_local_addrs(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf);
size_t ngx_qqfail_zone_suggest(ngx_qqfail_main_conf_t *qmcf);
void ngx_qqfail_zone_changed(ngx_qqfail_server_sh_t *ssh);
void ngx_qqfail_zone_counter(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_provider_sh_t *psh, ngx_uint_t what, ngx_uint_t n);
ngx_uint_t ngx_qqfail_zone_rejected(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_provider_sh_t *psh, ngx_qqfail_name_sh_t *nsh,
    ngx_uint_t n);
ngx_int_t ngx_qqfail_zone_provider_result(
    ngx_qqfail_main_conf_t *qmcf, ngx_qqfail_provider_sh_t *psh,
    ngx_qqfail_result_report_t *r);
void ngx_qqfail_zone_names(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh, ngx_uint_t n,
    ngx_qqfail_name_report_t *report, ngx_uint_t success);
ngx_str_t *ngx_qqfail_check_kind(ngx_uint_t kind);
ngx_uint_t ngx_qqfail_check_named(ngx_qqfail_server_t *server);
ngx_uint_t ngx_qqfail_zone_independence(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh, ngx_qqfail_check_sh_t *report);
void ngx_qqfail_zone_failover(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh);
ngx_uint_t ngx_qqfail_zone_stale(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server);
void ngx_qqfail_zone_loaded(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_sh_t *ssh, time_t last_success);
void ngx_qqfail_zone_generation(ngx_qqfail_main_conf_t *qmcf);
ngx_uint_t ngx_qqfail_zone_noquorum(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_name_sh_t *nsh, ngx_uint_t on);
ngx_uint_t ngx_qqfail_zone_peer_failed(ngx_slab_pool_t *shpool,
    ngx_qqfail_slot_sh_t *slot, uint32_t id, time_t now);
void ngx_qqfail_zone_peer_ok(ngx_slab_pool_t *shpool,
    ngx_qqfail_slot_sh_t *slot, uint32_t id);
void ngx_qqfail_zone_state_saved(ngx_qqfail_main_conf_t *qmcf,
    u_char *error, size_t len);
ngx_int_t ngx_qqfail_zone_check(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf);
size_t ngx_qqfail_zone_record_size(ngx_uint_t nnames);
uint64_t ngx_qqfail_zone_name_hash(u_char *data, size_t len);
void ngx_qqfail_zone_org(ngx_qqfail_main_conf_t *qmcf,
    uint32_t asn, ngx_str_t *org);
void ngx_qqfail_zone_copy(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server, ngx_uint_t n, ngx_qqfail_server_copy_t *copy);
size_t ngx_qqfail_slot_text(ngx_qqfail_slot_sh_t *slot,
    u_char *text);
ngx_uint_t ngx_qqfail_zone_same(ngx_qqfail_main_conf_t *qmcf,
    ngx_qqfail_server_t *server, ngx_uint_t name, ngx_addr_t *addrs,
    uint32_t *srv, ngx_uint_t naddrs);
void ngx_qqfail_event(ngx_qqfail_main_conf_t *qmcf,
    ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    ngx_qqfail_server_t *server, const char *fmt, ...);
ngx_int_t ngx_qqfail_lease(ngx_qqfail_main_conf_t *qmcf,
    ngx_uint_t epoch, ngx_uint_t leading);

ngx_int_t ngx_qqfail_ares_init(ngx_log_t *log);
ngx_int_t ngx_qqfail_ares_system(ngx_pool_t *pool, ngx_log_t *log,
    ngx_str_t *servers);
ngx_int_t ngx_qqfail_resolver_sync(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf);
ngx_int_t ngx_qqfail_resolver_init_process(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf);
void ngx_qqfail_resolver_exit_process(ngx_cycle_t *cycle);

void ngx_qqfail_state_check(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf);
ngx_int_t ngx_qqfail_state_load(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log);
ngx_int_t ngx_qqfail_state_save(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log);
void ngx_qqfail_state_changed(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log);
void ngx_qqfail_state_flush(void);
void ngx_qqfail_state_cancel(void);

/*
 * A fresh monotonic reading in milliseconds, for what processes compare
 * through the zone (the lease, the next lookup): CLOCK_MONOTONIC is one
 * clock for the whole system, unlike the cached ngx_current_msec, which
 * is as old as the last event loop turn (a timer_resolution, or a stop).
 */

static ngx_inline ngx_msec_t
ngx_qqfail_msec(void)
{
#if (NGX_HAVE_CLOCK_MONOTONIC)
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#else
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (ngx_msec_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
#endif
}




#endif /* _NGX_QQFAIL_H_INCLUDED_ */
