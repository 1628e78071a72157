
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#ifndef _NGX_QQFAIL_DNS_H_INCLUDED_
#define _NGX_QQFAIL_DNS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * A strict parser of one DNS answer to one A, AAAA, SRV, SOA or NS
 * question (SOA and NS for the independence check): nginx
 * core macros only, no c-ares, so that it can be fuzzed alone (fuzz/) and
 * used by any front end.
 */

#define NGX_QQFAIL_DNS_A                 1
#define NGX_QQFAIL_DNS_AAAA              28
#define NGX_QQFAIL_DNS_SRV               33
#define NGX_QQFAIL_DNS_NS                2
#define NGX_QQFAIL_DNS_SOA               6

#define NGX_QQFAIL_DNS_TEXTLEN           254     /* a name as text */

#define NGX_QQFAIL_DNS_MAX_CNAMES        8       /* links in a CNAME chain */

/* results of ngx_qqfail_dns_parse() */
#define NGX_QQFAIL_DNS_OK                0       /* addresses found */
#define NGX_QQFAIL_DNS_NODATA            1       /* NOERROR, no address */
#define NGX_QQFAIL_DNS_NXDOMAIN          2
#define NGX_QQFAIL_DNS_SERVFAIL          3
#define NGX_QQFAIL_DNS_REFUSED           4
#define NGX_QQFAIL_DNS_RCODE             5       /* another error rcode */
#define NGX_QQFAIL_DNS_MALFORMED         6       /* not a valid message */
#define NGX_QQFAIL_DNS_MISMATCH          7       /* not the answer asked for */


/* an SRV record (RFC 2782): its target as text, lowercase, no final dot */

typedef struct {
    ngx_uint_t             priority;
    ngx_uint_t             weight;
    in_port_t              port;
    size_t                 len;
    u_char                 target[NGX_QQFAIL_DNS_TEXTLEN];
} ngx_qqfail_dns_srv_t;


/* an address of an SRV target, from the additional section */

typedef struct {
    ngx_uint_t             srv;       /* the record: index in srvs */
    ngx_uint_t             type;      /* NGX_QQFAIL_DNS_A or _AAAA */
    uint32_t               ttl;
    u_char                 addr[16];  /* 4 or 16 octets */
} ngx_qqfail_dns_extra_t;


/* a host name as text, lowercase, no final dot: SOA and NS answers */

typedef struct {
    size_t                 len;
    u_char                 text[NGX_QQFAIL_DNS_TEXTLEN];
} ngx_qqfail_dns_host_t;


typedef struct {
    u_char                *addrs;     /* A, AAAA: room for "max" addresses,
                                         4 or 16 octets each */
    ngx_qqfail_dns_srv_t  *srvs;      /* SRV: room for "max" records */
    ngx_qqfail_dns_host_t *hosts;     /* SOA: the zone of the name asked
                                         (one); NS: the name servers;
                                         room for "max" */
    ngx_qqfail_dns_extra_t *extras;   /* SRV: room for "max_extras"
                                         target addresses, or NULL */
    ngx_uint_t             max_extras;
    ngx_uint_t             nextras;
    ngx_uint_t             max;
    ngx_uint_t             naddrs;    /* addresses or records found */
    ngx_uint_t             ncnames;   /* CNAME links followed */
    uint32_t               ttl;       /* the least TTL of the chain and
                                         the records */
    const char            *reason;    /* the check that failed, for the log */
    unsigned               ad:1;      /* the AD bit: the provider says it
                                         validated the answer (DNSSEC) */
} ngx_qqfail_dns_answer_t;


ngx_int_t ngx_qqfail_dns_parse(u_char *msg, size_t len,
    u_char *name, size_t nlen, ngx_uint_t qtype,
    ngx_qqfail_dns_answer_t *ans);


#endif /* _NGX_QQFAIL_DNS_H_INCLUDED_ */
