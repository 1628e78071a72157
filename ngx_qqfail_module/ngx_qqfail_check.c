
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_dns.h"
#include "ngx_qqfail_resolver.h"


/*
 * The independence check, in the leader: for every server with two
 * names or more that are not IP literals, what the providers say of
 * each name's zone (SOA), of the zone's name servers (NS) and of their
 * addresses (A, AAAA), then what the names share: a zone, a registered
 * domain, a name server host or address, a TLD operator.  The report
 * goes to the server's record (ngx_qqfail_zone_independence()) and
 * each new finding to the log, once.
 *
 * Slowly: one query at a time, one server after the other, at the start
 * of the leadership, every NGX_QQFAIL_CHECK_PERIOD and after a failover
 * of the server; at most NGX_QQFAIL_CHECK_QUERIES for a server; each
 * query paid from the slowest "rate=" as a round's are, waiting for its
 * token.  It never changes what a server uses.  The queries go through the
 * lookups' channels (those of the server's qqfail_timeout), to the
 * first provider, the next one when it fails, and end in
 * ngx_qqfail_check_done() (rs->check_done).
 */


#define NGX_QQFAIL_CHECK_PERIOD   (6 * 60 * 60 * 1000)
#define NGX_QQFAIL_CHECK_FIRST    1000   /* after the leadership starts */
#define NGX_QQFAIL_CHECK_WATCH    5000   /* failovers looked for */
#define NGX_QQFAIL_CHECK_NS       4      /* name servers of a zone */
#define NGX_QQFAIL_CHECK_ADDRS    4      /* addresses of one, a type */
#define NGX_QQFAIL_CHECK_QUERIES  96     /* for one server */

#define NGX_QQFAIL_CHECK_SOA      0
#define NGX_QQFAIL_CHECK_NSQ      1
#define NGX_QQFAIL_CHECK_A        2
#define NGX_QQFAIL_CHECK_AAAA     3


typedef struct {
    ngx_str_t                        host;
    ngx_qqfail_dns_host_t            zone;
    ngx_uint_t                       error;      /* Q_*: no zone */
    ngx_uint_t                       nns;
    ngx_qqfail_dns_host_t            ns[NGX_QQFAIL_CHECK_NS];
    ngx_uint_t                       naddrs[NGX_QQFAIL_CHECK_NS];
    u_char                           addr[NGX_QQFAIL_CHECK_NS]
                                         [2 * NGX_QQFAIL_CHECK_ADDRS][16];
    u_char                           alen[NGX_QQFAIL_CHECK_NS]
                                         [2 * NGX_QQFAIL_CHECK_ADDRS];
    unsigned                         known:1;    /* its zone */
} ngx_qqfail_check_name_t;


struct ngx_qqfail_check_s {
    ngx_qqfail_resolver_t           *rs;
    ngx_event_t                      timer;
    ngx_event_t                      next;       /* posted: the next step */
    ngx_event_t                      pace;       /* a query waits: rate= */
    ngx_msec_t                       due;        /* every server again */

    ngx_uint_t                       nservers;
    ngx_qqfail_server_t            **servers;    /* with aliases */
    ngx_uint_t                      *failovers;  /* as last seen */
    u_char                          *todo;

    /* the server being checked */
    ngx_qqfail_server_t             *server;
    ngx_uint_t                       nnames;
    ngx_uint_t                       name;
    ngx_uint_t                       step;       /* NGX_QQFAIL_CHECK_* */
    ngx_uint_t                       ns;
    ngx_uint_t                       provider;
    ngx_uint_t                       queries;
    ngx_uint_t                       outcome;    /* of the last query */
    size_t                           qlen;
    u_char                           qname[NGX_QQFAIL_DNS_TEXTLEN + 1];
    u_char                           answer[4096];
    size_t                           alen;
    ngx_qqfail_query_t               query;
    unsigned                         busy:1;     /* a query in flight */
    ngx_qqfail_check_name_t          names[NGX_QQFAIL_MAX_NAMES];
};


static void ngx_qqfail_check_handler(ngx_event_t *ev);
static void ngx_qqfail_check_next(ngx_event_t *ev);
static void ngx_qqfail_check_paced(ngx_event_t *ev);
static void ngx_qqfail_check_begin(ngx_qqfail_check_t *ck,
    ngx_qqfail_server_t *server);
static void ngx_qqfail_check_send(ngx_qqfail_check_t *ck);
static void ngx_qqfail_check_read(ngx_qqfail_check_t *ck);
static ngx_uint_t ngx_qqfail_check_advance(ngx_qqfail_check_t *ck);
static void ngx_qqfail_check_name(ngx_qqfail_check_t *ck);
static void ngx_qqfail_check_report(ngx_qqfail_check_t *ck);
static void ngx_qqfail_check_pair(ngx_qqfail_check_t *ck,
    ngx_qqfail_check_sh_t *report, ngx_uint_t i, ngx_uint_t j);
static void ngx_qqfail_check_add(ngx_qqfail_check_sh_t *report,
    ngx_uint_t kind, ngx_uint_t names, u_char *detail, size_t len);
static ngx_str_t ngx_qqfail_check_domain(ngx_str_t *host);
static ngx_str_t ngx_qqfail_check_tld(ngx_str_t *host);
static const char *ngx_qqfail_check_operator(ngx_str_t *tld);


static ngx_str_t  ngx_qqfail_check_kinds[] = {
    ngx_null_string,
    ngx_string("same_zone"),
    ngx_string("same_registered_domain"),
    ngx_string("shared_ns_host"),
    ngx_string("shared_ns_address"),
    ngx_string("same_tld_operator"),
    ngx_string("unknown_zone")
};


/* why a name's zone was not learned: NGX_QQFAIL_Q_* */

static const char  *ngx_qqfail_check_outcomes[] = {
    "no SOA record", "no SOA record", "nxdomain", "servfail", "refused",
    "timeout", "unreachable", "bad answer", "cancelled", "error",
    "unvalidated"
};


/*
 * Registered domains: the last two labels, three under these two-label
 * public suffixes (a small built-in list, not the Public Suffix List:
 * the finding is advice, and the zones and name servers the check learns
 * from DNS are the stronger signal)
 */

static ngx_str_t  ngx_qqfail_check_suffixes[] = {
    ngx_string("co.uk"), ngx_string("org.uk"), ngx_string("me.uk"),
    ngx_string("ltd.uk"), ngx_string("plc.uk"), ngx_string("net.uk"),
    ngx_string("ac.uk"), ngx_string("gov.uk"),
    ngx_string("com.au"), ngx_string("net.au"), ngx_string("org.au"),
    ngx_string("co.nz"), ngx_string("org.nz"), ngx_string("net.nz"),
    ngx_string("co.jp"), ngx_string("ne.jp"), ngx_string("or.jp"),
    ngx_string("co.za"), ngx_string("co.in"), ngx_string("co.kr"),
    ngx_string("com.br"), ngx_string("com.cn"), ngx_string("com.mx"),
    ngx_string("com.tr"), ngx_string("com.sg"), ngx_string("com.tw"),
    ngx_null_string
};


/* top-level domains run by one operator (a small built-in table) */

typedef struct {
    ngx_str_t                        tld;
    const char                      *operator;
} ngx_qqfail_check_tld_t;


static ngx_qqfail_check_tld_t  ngx_qqfail_check_tlds[] = {
    { ngx_string("com"), "Verisign" },
    { ngx_string("net"), "Verisign" },
    { ngx_string("cc"), "Verisign" },
    { ngx_string("tv"), "Verisign" },
    { ngx_string("name"), "Verisign" },
    { ngx_string("org"), "Public Interest Registry" },
    { ngx_string("ngo"), "Public Interest Registry" },
    { ngx_string("ong"), "Public Interest Registry" },
    { ngx_string("info"), "Identity Digital" },
    { ngx_string("mobi"), "Identity Digital" },
    { ngx_string("pro"), "Identity Digital" },
    { ngx_string("biz"), "GoDaddy Registry" },
    { ngx_string("us"), "GoDaddy Registry" },
    { ngx_string("co"), "GoDaddy Registry" },
    { ngx_string("app"), "Google Registry" },
    { ngx_string("dev"), "Google Registry" },
    { ngx_string("page"), "Google Registry" },
    { ngx_null_string, NULL }
};


/* with the leadership: the servers to check, the first check soon */

ngx_int_t
ngx_qqfail_check_start(ngx_qqfail_resolver_t *rs)
{
    ngx_uint_t               i, j, n;
    ngx_qqfail_check_t      *ck;
    ngx_qqfail_server_t     *server;
    ngx_qqfail_srv_conf_t  **qscfp;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = rs->qmcf;
    qscfp = qmcf->upstreams.elts;
    n = 0;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        if (qscfp[i]->servers) {
            n += qscfp[i]->servers->nelts;
        }
    }

    ck = ngx_calloc(sizeof(ngx_qqfail_check_t)
                    + n * (sizeof(ngx_qqfail_server_t *)
                           + sizeof(ngx_uint_t) + 1), rs->log);
    if (ck == NULL) {
        return NGX_ERROR;
    }

    ck->rs = rs;
    ck->servers = (ngx_qqfail_server_t **) (ck + 1);
    ck->failovers = (ngx_uint_t *) (ck->servers + n);
    ck->todo = (u_char *) (ck->failovers + n);

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        if (qscfp[i]->servers == NULL) {
            continue;
        }

        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            if (ngx_qqfail_check_named(&server[j]) < 2) {
                continue;
            }

            ck->failovers[ck->nservers] = server[j].sh->failovers;
            ck->servers[ck->nservers++] = &server[j];
        }
    }

    if (ck->nservers == 0) {
        ngx_free(ck);
        return NGX_OK;
    }

    ck->timer.handler = ngx_qqfail_check_handler;
    ck->timer.data = ck;
    ck->timer.log = rs->log;
    ck->timer.cancelable = 1;

    ck->next.handler = ngx_qqfail_check_next;
    ck->next.data = ck;
    ck->next.log = rs->log;

    ck->pace.handler = ngx_qqfail_check_paced;
    ck->pace.data = ck;
    ck->pace.log = rs->log;
    ck->pace.cancelable = 1;

    ck->due = ngx_current_msec;

    rs->check = ck;
    rs->check_done = ngx_qqfail_check_done;

    ngx_add_timer(&ck->timer, NGX_QQFAIL_CHECK_FIRST);

    return NGX_OK;
}


/* after the channels: their queries ended, cancelled */

void
ngx_qqfail_check_stop(ngx_qqfail_resolver_t *rs)
{
    ngx_qqfail_check_t  *ck;

    ck = rs->check;

    if (ck == NULL) {
        return;
    }

    if (ck->timer.timer_set) {
        ngx_del_timer(&ck->timer);
    }

    if (ck->pace.timer_set) {
        ngx_del_timer(&ck->pace);
    }

    if (ck->next.posted) {
        ngx_delete_posted_event(&ck->next);
    }

    rs->check = NULL;

    ngx_free(ck);
}


/* which servers are due, and the next one */

static void
ngx_qqfail_check_handler(ngx_event_t *ev)
{
    ngx_qqfail_check_t  *ck = ev->data;

    ngx_uint_t  i, all;

    if (!ngx_qqfail_lead_check(ck->rs)) {
        return;
    }

    if (ck->server) {
        /* a check runs: it goes on through its queries */
        return;
    }

    all = ((ngx_msec_int_t) (ngx_current_msec - ck->due) >= 0);

    if (all) {
        ck->due = ngx_current_msec + NGX_QQFAIL_CHECK_PERIOD;
    }

    for (i = 0; i < ck->nservers; i++) {
        if (all || ck->servers[i]->sh->failovers != ck->failovers[i]) {
            ck->failovers[i] = ck->servers[i]->sh->failovers;
            ck->todo[i] = 1;
        }
    }

    for (i = 0; i < ck->nservers; i++) {
        if (ck->todo[i]) {
            ck->todo[i] = 0;
            ngx_qqfail_check_begin(ck, ck->servers[i]);
            return;
        }
    }

    ngx_add_timer(&ck->timer, NGX_QQFAIL_CHECK_WATCH);
}


static void
ngx_qqfail_check_begin(ngx_qqfail_check_t *ck, ngx_qqfail_server_t *server)
{
    ngx_uint_t                k;
    ngx_qqfail_name_t        *name;
    ngx_qqfail_check_name_t  *cn;

    ck->server = server;
    ck->nnames = 0;
    ck->queries = 0;

    name = server->names.elts;

    for (k = 0; k < server->names.nelts && k < NGX_QQFAIL_MAX_NAMES; k++) {
        cn = &ck->names[k];
        ngx_memzero(cn, sizeof(ngx_qqfail_check_name_t));

        /* an IP literal has no zone: not checked */

        cn->host = name[k].literal ? (ngx_str_t) ngx_null_string
                                   : name[k].host;
        cn->error = NGX_QQFAIL_Q_OK;
    }

    ck->nnames = k;
    ck->name = (ngx_uint_t) -1;

    ngx_qqfail_check_name(ck);
}


/* the next name to learn, or the report */

static void
ngx_qqfail_check_name(ngx_qqfail_check_t *ck)
{
    ngx_qqfail_check_name_t  *cn;

    for (ck->name++; ck->name < ck->nnames; ck->name++) {
        cn = &ck->names[ck->name];

        if (cn->host.len == 0 || cn->host.len > NGX_QQFAIL_DNS_TEXTLEN - 1) {
            continue;
        }

        ck->step = NGX_QQFAIL_CHECK_SOA;
        ck->provider = 0;
        ck->qlen = cn->host.len;
        ngx_memcpy(ck->qname, cn->host.data, cn->host.len);
        ck->qname[ck->qlen] = '\0';

        ngx_qqfail_check_send(ck);
        return;
    }

    ngx_qqfail_check_report(ck);

    ck->server = NULL;

    /* the next server due, if any, at the next tick */

    ngx_add_timer(&ck->timer, 1);
}


static void
ngx_qqfail_check_send(ngx_qqfail_check_t *ck)
{
    ngx_msec_t              wait;
    ngx_qqfail_channel_t   *ch;
    ngx_qqfail_provider_t  *pr;
    ngx_qqfail_resolver_t  *rs;

    rs = ck->rs;

    /* paced as the rounds are: the query waits for its token */

    wait = ngx_qqfail_rate_take(rs, 1);

    if (wait) {
        ngx_add_timer(&ck->pace, wait);
        return;
    }

    if (ck->queries++ >= NGX_QQFAIL_CHECK_QUERIES) {
        ck->outcome = NGX_QQFAIL_Q_ERROR;
        ck->alen = 0;
        ngx_post_event(&ck->next, &ngx_posted_events);
        return;
    }

    ch = ngx_qqfail_channel(rs, ck->server->upstream->channels
                                * rs->nproviders + ck->provider);

    if (ch == NULL) {
        ck->outcome = NGX_QQFAIL_Q_UNREACHABLE;
        ck->alen = 0;
        ngx_post_event(&ck->next, &ngx_posted_events);
        return;
    }

    ngx_memzero(&ck->query, sizeof(ngx_qqfail_query_t));

    ck->query.check = rs;
    ck->query.provider = ck->provider;
    ck->query.target = -1;
    ck->query.type = (ck->step == NGX_QQFAIL_CHECK_SOA)
                     ? NGX_QQFAIL_QTYPE_SOA
                     : (ck->step == NGX_QQFAIL_CHECK_NSQ)
                       ? NGX_QQFAIL_QTYPE_NS
                       : (ck->step == NGX_QQFAIL_CHECK_A)
                         ? NGX_QQFAIL_QTYPE_A : NGX_QQFAIL_QTYPE_AAAA;

    ck->busy = 1;

    /* counted as the lookups' are: the provider's page shows what it got */

    if (ngx_qqfail_lead_check(rs)) {
        pr = rs->qmcf->providers.elts;
        ngx_qqfail_zone_counter(rs->qmcf, pr[ck->provider].sh,
                                NGX_QQFAIL_COUNT_QUERIES, 1);
    }

    ngx_qqfail_channel_query(rs, ch, ck->qname, ck->query.type, &ck->query);

    ngx_qqfail_channel_timer(rs, ch);
}


/* the token of a query that waited for it is due */

static void
ngx_qqfail_check_paced(ngx_event_t *ev)
{
    ngx_qqfail_check_t  *ck = ev->data;

    if (!ngx_qqfail_lead_check(ck->rs) || ck->server == NULL) {
        return;
    }

    ngx_qqfail_check_send(ck);
}


/*
 * A query ended (c-ares may be on the stack, or the channel going away):
 * the message is kept, read by the next step, posted
 */

void
ngx_qqfail_check_done(ngx_qqfail_query_t *q, ngx_uint_t outcome,
    u_char *abuf, size_t alen)
{
    ngx_qqfail_check_t  *ck;

    ck = q->check->check;

    if (ck == NULL || !ck->busy || q != &ck->query) {
        return;
    }

    ck->busy = 0;

    if (outcome == NGX_QQFAIL_Q_CANCELLED) {
        /* the end of the leadership: the check stops with it */
        return;
    }

    ck->outcome = outcome;
    ck->alen = 0;

    if (abuf && alen <= sizeof(ck->answer)) {
        ngx_memcpy(ck->answer, abuf, alen);
        ck->alen = alen;
    }

    ngx_post_event(&ck->next, &ngx_posted_events);
}


static void
ngx_qqfail_check_next(ngx_event_t *ev)
{
    ngx_qqfail_check_t  *ck = ev->data;

    if (ck->server == NULL || !ngx_qqfail_lead_check(ck->rs)) {
        return;
    }

    ngx_qqfail_check_read(ck);
}


/* the answer to the step's query, and the step after it */

static void
ngx_qqfail_check_read(ngx_qqfail_check_t *ck)
{
    u_char                    *p, addrs[NGX_QQFAIL_CHECK_ADDRS * 16];
    size_t                     asize;
    ngx_int_t                  rc;
    ngx_uint_t                 qtype, i, k, n, failed;
    ngx_qqfail_dns_host_t      hosts[NGX_QQFAIL_CHECK_NS];
    ngx_qqfail_check_name_t   *cn;
    ngx_qqfail_dns_answer_t    ans;

    cn = &ck->names[ck->name];

    qtype = (ck->step == NGX_QQFAIL_CHECK_SOA) ? NGX_QQFAIL_DNS_SOA
            : (ck->step == NGX_QQFAIL_CHECK_NSQ) ? NGX_QQFAIL_DNS_NS
            : (ck->step == NGX_QQFAIL_CHECK_A) ? NGX_QQFAIL_DNS_A
            : NGX_QQFAIL_DNS_AAAA;

    ngx_memzero(&ans, sizeof(ngx_qqfail_dns_answer_t));
    ans.addrs = addrs;
    ans.hosts = hosts;
    ans.max = (ck->step == NGX_QQFAIL_CHECK_SOA) ? 1
              : (ck->step == NGX_QQFAIL_CHECK_NSQ) ? NGX_QQFAIL_CHECK_NS
              : NGX_QQFAIL_CHECK_ADDRS;

    rc = NGX_QQFAIL_DNS_MALFORMED;

    if (ck->alen) {
        rc = ngx_qqfail_dns_parse(ck->answer, ck->alen, ck->qname, ck->qlen,
                                  qtype, &ans);
    }

    /*
     * no message, or one that is no answer, or an error rcode but
     * NXDOMAIN: the next provider is asked the same; NODATA and NXDOMAIN
     * are answers
     */

    failed = !(rc == NGX_QQFAIL_DNS_OK || rc == NGX_QQFAIL_DNS_NODATA
               || rc == NGX_QQFAIL_DNS_NXDOMAIN);

    if (failed) {
        if (++ck->provider < ck->rs->nproviders) {
            ngx_qqfail_check_send(ck);
            return;
        }

        if (ck->step == NGX_QQFAIL_CHECK_SOA
            || ck->step == NGX_QQFAIL_CHECK_NSQ)
        {
            /* no zone, or none of its name servers: the name is unknown */
            cn->error = (ck->outcome != NGX_QQFAIL_Q_OK
                         && ck->outcome != NGX_QQFAIL_Q_NODATA)
                        ? ck->outcome : NGX_QQFAIL_Q_BADANSWER;
            cn->known = 0;
            ngx_qqfail_check_name(ck);
            return;
        }

        /* a name server without addresses: the next step */
        rc = NGX_QQFAIL_DNS_NODATA;
    }

    ck->provider = 0;

    switch (ck->step) {

    case NGX_QQFAIL_CHECK_SOA:

        if (rc == NGX_QQFAIL_DNS_OK) {
            cn->zone = hosts[0];
            cn->known = 1;

            ck->step = NGX_QQFAIL_CHECK_NSQ;
            ck->qlen = cn->zone.len;
            ngx_memcpy(ck->qname, cn->zone.text, cn->zone.len);
            ck->qname[ck->qlen] = '\0';

            ngx_qqfail_check_send(ck);
            return;
        }

        /* no SOA said: the parent, while it has two labels */

        p = ngx_strlchr(ck->qname, ck->qname + ck->qlen, '.');

        if (p == NULL
            || ngx_strlchr(p + 1, ck->qname + ck->qlen, '.') == NULL)
        {
            cn->error = (rc == NGX_QQFAIL_DNS_NXDOMAIN)
                        ? NGX_QQFAIL_Q_NXDOMAIN : NGX_QQFAIL_Q_NODATA;
            ngx_qqfail_check_name(ck);
            return;
        }

        n = ck->qlen - (p + 1 - ck->qname);
        ngx_memmove(ck->qname, p + 1, n);
        ck->qlen = n;
        ck->qname[n] = '\0';

        ngx_qqfail_check_send(ck);
        return;

    case NGX_QQFAIL_CHECK_NSQ:

        if (rc != NGX_QQFAIL_DNS_OK) {
            cn->error = NGX_QQFAIL_Q_NODATA;
            cn->known = 0;
            ngx_qqfail_check_name(ck);
            return;
        }

        cn->nns = ans.naddrs;

        for (i = 0; i < cn->nns; i++) {
            cn->ns[i] = hosts[i];
        }

        ck->ns = 0;
        ck->step = NGX_QQFAIL_CHECK_A;
        break;

    default: /* A, AAAA */

        if (rc == NGX_QQFAIL_DNS_OK) {
            asize = (ck->step == NGX_QQFAIL_CHECK_A) ? 4 : 16;

            for (i = 0; i < ans.naddrs; i++) {
                k = cn->naddrs[ck->ns];

                if (k == 2 * NGX_QQFAIL_CHECK_ADDRS) {
                    break;
                }

                ngx_memcpy(cn->addr[ck->ns][k], addrs + i * asize, asize);
                cn->alen[ck->ns][k] = (u_char) asize;
                cn->naddrs[ck->ns]++;
            }
        }

        if (!ngx_qqfail_check_advance(ck)) {
            ngx_qqfail_check_name(ck);
            return;
        }
    }

    if (ck->ns >= cn->nns) {
        ngx_qqfail_check_name(ck);
        return;
    }

    ck->qlen = cn->ns[ck->ns].len;
    ngx_memcpy(ck->qname, cn->ns[ck->ns].text, ck->qlen);
    ck->qname[ck->qlen] = '\0';

    ngx_qqfail_check_send(ck);
}


/* A, then AAAA, of each name server; 0: all asked */

static ngx_uint_t
ngx_qqfail_check_advance(ngx_qqfail_check_t *ck)
{
    if (ck->step == NGX_QQFAIL_CHECK_A) {
        ck->step = NGX_QQFAIL_CHECK_AAAA;

    } else {
        ck->step = NGX_QQFAIL_CHECK_A;
        ck->ns++;
    }

    return ck->ns < ck->names[ck->name].nns;
}


/* what the names share, into the record, and each new finding logged */

static void
ngx_qqfail_check_report(ngx_qqfail_check_t *ck)
{
    u_char                   *p, text[NGX_QQFAIL_DNS_TEXTLEN * 4];
    ngx_uint_t                i, j, k, fresh;
    ngx_qqfail_server_t      *server;
    ngx_qqfail_check_sh_t     report;
    ngx_qqfail_finding_sh_t  *f;
    ngx_qqfail_check_name_t  *cn;

    server = ck->server;

    ngx_memzero(&report, sizeof(ngx_qqfail_check_sh_t));
    report.checked = ngx_time();

    for (i = 0; i < ck->nnames; i++) {
        cn = &ck->names[i];

        if (cn->host.len && !cn->known) {
            p = ngx_snprintf(text, sizeof(text), "%s",
                             cn->error < sizeof(ngx_qqfail_check_outcomes)
                                         / sizeof(char *)
                             ? ngx_qqfail_check_outcomes[cn->error]
                             : "error");
            ngx_qqfail_check_add(&report, NGX_QQFAIL_FINDING_UNKNOWN,
                                 (ngx_uint_t) 1 << i, text, p - text);
        }
    }

    for (i = 0; i < ck->nnames; i++) {
        for (j = i + 1; j < ck->nnames; j++) {
            if (ck->names[i].known && ck->names[j].known) {
                ngx_qqfail_check_pair(ck, &report, i, j);
            }
        }
    }

    fresh = ngx_qqfail_zone_independence(ck->rs->qmcf, server->sh,
                                         &report);

    for (k = 0; k < report.nfindings; k++) {
        if (!(fresh & ((ngx_uint_t) 1 << k))) {
            continue;
        }

        f = &report.finding[k];
        p = text;

        for (i = 0; i < ck->nnames; i++) {
            if (f->names & (1 << i)) {
                p = ngx_snprintf(p, text + sizeof(text) - p, "%s\"%V\"",
                                 p == text ? "" : ", ", &ck->names[i].host);
            }
        }

        ngx_log_error(NGX_LOG_WARN, ck->rs->log, 0,
                      "qqfail: upstream \"%V\" server \"%V\": names %*s "
                      "are not independent: %V (%*s)",
                      &server->upstream->name, &server->key,
                      (size_t) (p - text), text,
                      &ngx_qqfail_check_kinds[f->kind], (size_t) f->len,
                      f->detail);
    }
}


/* two names whose zones are known */

static void
ngx_qqfail_check_pair(ngx_qqfail_check_t *ck, ngx_qqfail_check_sh_t *report,
    ngx_uint_t i, ngx_uint_t j)
{
    u_char                   *p, text[NGX_SOCKADDR_STRLEN + 64];
    size_t                    len;
    ngx_str_t                 di, dj, ti, tj;
    ngx_uint_t                a, b, x, y, names;
    const char               *oi, *oj;
    struct sockaddr_in        sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6       sin6;
#endif
    ngx_qqfail_check_name_t  *ni, *nj;

    ni = &ck->names[i];
    nj = &ck->names[j];
    names = ((ngx_uint_t) 1 << i) | ((ngx_uint_t) 1 << j);

    if (ni->zone.len == nj->zone.len
        && ngx_memcmp(ni->zone.text, nj->zone.text, ni->zone.len) == 0)
    {
        ngx_qqfail_check_add(report, NGX_QQFAIL_FINDING_SAME_ZONE, names,
                             ni->zone.text, ni->zone.len);
        return;
    }

    di = ngx_qqfail_check_domain(&ni->host);
    dj = ngx_qqfail_check_domain(&nj->host);

    if (di.len == dj.len && ngx_memcmp(di.data, dj.data, di.len) == 0) {
        ngx_qqfail_check_add(report, NGX_QQFAIL_FINDING_SAME_DOMAIN, names,
                             di.data, di.len);
    }

    /* a name server host both zones have */

    for (a = 0; a < ni->nns; a++) {
        for (b = 0; b < nj->nns; b++) {
            if (ni->ns[a].len == nj->ns[b].len
                && ngx_memcmp(ni->ns[a].text, nj->ns[b].text,
                              ni->ns[a].len) == 0)
            {
                ngx_qqfail_check_add(report, NGX_QQFAIL_FINDING_NS_HOST,
                                     names, ni->ns[a].text, ni->ns[a].len);
            }
        }
    }

    /* an address of two name servers of other names */

    for (a = 0; a < ni->nns; a++) {
        for (b = 0; b < nj->nns; b++) {
            if (ni->ns[a].len == nj->ns[b].len
                && ngx_memcmp(ni->ns[a].text, nj->ns[b].text,
                              ni->ns[a].len) == 0)
            {
                continue;
            }

            for (x = 0; x < ni->naddrs[a]; x++) {
                for (y = 0; y < nj->naddrs[b]; y++) {
                    if (ni->alen[a][x] != nj->alen[b][y]
                        || ngx_memcmp(ni->addr[a][x], nj->addr[b][y],
                                      ni->alen[a][x]) != 0)
                    {
                        continue;
                    }

                    if (ni->alen[a][x] == 4) {
                        ngx_memzero(&sin, sizeof(struct sockaddr_in));
                        sin.sin_family = AF_INET;
                        ngx_memcpy(&sin.sin_addr, ni->addr[a][x], 4);
                        len = ngx_sock_ntop((struct sockaddr *) &sin,
                                            sizeof(sin), text,
                                            NGX_SOCKADDR_STRLEN, 0);
#if (NGX_HAVE_INET6)
                    } else {
                        ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
                        sin6.sin6_family = AF_INET6;
                        ngx_memcpy(&sin6.sin6_addr, ni->addr[a][x], 16);
                        len = ngx_sock_ntop((struct sockaddr *) &sin6,
                                            sizeof(sin6), text,
                                            NGX_SOCKADDR_STRLEN, 0);
#else
                    } else {
                        continue;
#endif
                    }

                    ngx_qqfail_check_add(report,
                                         NGX_QQFAIL_FINDING_NS_ADDRESS,
                                         names, text, len);
                }
            }
        }
    }

    /* the same but for the top-level domain, run by one operator */

    ti = ngx_qqfail_check_tld(&ni->host);
    tj = ngx_qqfail_check_tld(&nj->host);

    if (ni->host.len - ti.len != nj->host.len - tj.len
        || ngx_memcmp(ni->host.data, nj->host.data, ni->host.len - ti.len)
           != 0
        || (ti.len == tj.len && ngx_memcmp(ti.data, tj.data, ti.len) == 0))
    {
        return;
    }

    oi = ngx_qqfail_check_operator(&ti);
    oj = ngx_qqfail_check_operator(&tj);

    if (oi == NULL || oi != oj) {
        return;
    }

    p = ngx_snprintf(text, sizeof(text), "%V, %V: %s", &ti, &tj, oi);

    ngx_qqfail_check_add(report, NGX_QQFAIL_FINDING_TLD_OPERATOR, names,
                         text, p - text);
}


/* a finding, or the names of the same one made more */

static void
ngx_qqfail_check_add(ngx_qqfail_check_sh_t *report, ngx_uint_t kind,
    ngx_uint_t names, u_char *detail, size_t len)
{
    ngx_uint_t                i;
    ngx_qqfail_finding_sh_t  *f;

    len = ngx_min(len, NGX_QQFAIL_FINDING_LEN);

    for (i = 0; i < report->nfindings; i++) {
        f = &report->finding[i];

        if (f->kind == kind && f->len == len
            && ngx_memcmp(f->detail, detail, len) == 0)
        {
            f->names |= (u_char) names;
            return;
        }
    }

    if (report->nfindings == NGX_QQFAIL_FINDINGS) {
        if (report->more < 255) {
            report->more++;
        }

        return;
    }

    f = &report->finding[report->nfindings++];
    f->kind = (u_char) kind;
    f->names = (u_char) names;
    f->len = (u_char) len;
    ngx_memcpy(f->detail, detail, len);
}


/* "a.example.co.uk": "example.co.uk"; "a.example.com": "example.com" */

static ngx_str_t
ngx_qqfail_check_domain(ngx_str_t *host)
{
    size_t       n;
    ngx_str_t    d;
    ngx_uint_t   i, labels, want;

    want = 2;

    for (i = 0; ngx_qqfail_check_suffixes[i].len; i++) {
        n = ngx_qqfail_check_suffixes[i].len;

        if (host->len > n + 1
            && host->data[host->len - n - 1] == '.'
            && ngx_strncmp(host->data + host->len - n,
                           ngx_qqfail_check_suffixes[i].data, n) == 0)
        {
            want = 3;
            break;
        }
    }

    labels = 0;

    for (n = host->len; n > 0; n--) {
        if (host->data[n - 1] == '.' && ++labels == want) {
            break;
        }
    }

    d.data = host->data + n;
    d.len = host->len - n;

    return d;
}


static ngx_str_t
ngx_qqfail_check_tld(ngx_str_t *host)
{
    size_t     n;
    ngx_str_t  t;

    for (n = host->len; n > 0 && host->data[n - 1] != '.'; n--) {
        /* void */
    }

    t.data = host->data + n;
    t.len = host->len - n;

    return t;
}


static const char *
ngx_qqfail_check_operator(ngx_str_t *tld)
{
    ngx_uint_t  i;

    for (i = 0; ngx_qqfail_check_tlds[i].operator; i++) {
        if (ngx_qqfail_check_tlds[i].tld.len == tld->len
            && ngx_strncmp(ngx_qqfail_check_tlds[i].tld.data, tld->data,
                           tld->len) == 0)
        {
            return ngx_qqfail_check_tlds[i].operator;
        }
    }

    return NULL;
}


/* the kind of a finding as the status page and the log name it */

ngx_str_t *
ngx_qqfail_check_kind(ngx_uint_t kind)
{
    if (kind == 0 || kind > NGX_QQFAIL_FINDING_UNKNOWN) {
        kind = NGX_QQFAIL_FINDING_UNKNOWN;
    }

    return &ngx_qqfail_check_kinds[kind];
}
