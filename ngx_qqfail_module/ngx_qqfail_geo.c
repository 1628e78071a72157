
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <ifaddrs.h>
#include <maxminddb.h>

#include "ngx_qqfail.h"


static void ngx_qqfail_geo_cleanup(void *data);
static ngx_uint_t ngx_qqfail_refused(ngx_qqfail_srv_conf_t *qscf,
    struct sockaddr *sa, ngx_qqfail_geo_t *geo);
static ngx_uint_t ngx_qqfail_addr_kind(struct sockaddr *sa);
static ngx_uint_t ngx_qqfail_addr_loops(
    ngx_qqfail_main_conf_t *qmcf, struct sockaddr *sa);
static ngx_uint_t ngx_qqfail_addr_wildcard(struct sockaddr *sa);
static ngx_uint_t ngx_qqfail_addr_loopback(struct sockaddr *sa);
static ngx_uint_t ngx_qqfail_geo_code(const char *code);


ngx_int_t
ngx_qqfail_geo_open(ngx_conf_t *cf, ngx_str_t *path,
    ngx_qqfail_geo_db_t **dbp)
{
    int                   status;
    ngx_str_t             type;
    ngx_pool_cleanup_t   *cln;
    ngx_qqfail_geo_db_t  *db;

    db = ngx_pcalloc(cf->pool, sizeof(ngx_qqfail_geo_db_t));
    if (db == NULL) {
        return NGX_ERROR;
    }

    db->mmdb = ngx_pcalloc(cf->pool, sizeof(MMDB_s));
    if (db->mmdb == NULL) {
        return NGX_ERROR;
    }

    db->path = *path;

    if (ngx_conf_full_name(cf->cycle, &db->path, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    status = MMDB_open((char *) db->path.data, MMDB_MODE_MMAP, db->mmdb);

    if (status != MMDB_SUCCESS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf,
                           status == MMDB_IO_ERROR ? ngx_errno : 0,
                           "\"qqfail_geoip2\" cannot open database \"%V\": "
                           "%s", &db->path, MMDB_strerror(status));
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        MMDB_close(db->mmdb);
        return NGX_ERROR;
    }

    cln->handler = ngx_qqfail_geo_cleanup;
    cln->data = db;

    type.data = (u_char *) ((MMDB_s *) db->mmdb)->metadata.database_type;
    type.len = type.data ? ngx_strlen(type.data) : 0;

    if (ngx_strlcasestrn(type.data, type.data + type.len,
                         (u_char *) "ASN", 3 - 1)
        != NULL)
    {
        db->asn = 1;
    }

    if (ngx_strlcasestrn(type.data, type.data + type.len,
                         (u_char *) "Country", 7 - 1)
        != NULL
        || ngx_strlcasestrn(type.data, type.data + type.len,
                            (u_char *) "City", 4 - 1)
           != NULL)
    {
        db->country = 1;
    }

    if (!db->asn && !db->country) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"qqfail_geoip2\" database \"%V\" has type \"%V\","
                           " an ASN, Country or City database is expected",
                           &db->path, &type);
        return NGX_ERROR;
    }

    *dbp = db;

    return NGX_OK;
}


static void
ngx_qqfail_geo_cleanup(void *data)
{
    ngx_qqfail_geo_db_t  *db = data;

    MMDB_close(db->mmdb);
}


void
ngx_qqfail_geo_annotate(ngx_qqfail_main_conf_t *qmcf,
    ngx_addr_t *addrs, ngx_uint_t naddrs, ngx_qqfail_geo_t *geo)
{
    ngx_uint_t  i;

    for (i = 0; i < naddrs; i++) {
        ngx_qqfail_geo_lookup(qmcf, addrs[i].sockaddr, &geo[i]);
    }
}


/*
 * The one address filter, for answers, state-file addresses and the
 * addresses a reload keeps.  Refused always: addresses no backend can have
 * (unspecified, broadcast, multicast, link-local) and this nginx's own
 * listen sockets (a request loop); cloud metadata services unless an
 * allow rule names them; then "qqfail_ipv6" and "qqfail_allow", with the
 * GeoIP2 data looked up once per address and kept for the status page.
 * The addresses that pass are moved to the front, in order; returns their
 * number, and in "why" the reason the first refused one was refused.
 */

ngx_uint_t
ngx_qqfail_filter(ngx_qqfail_srv_conf_t *qscf, ngx_addr_t *addrs,
    ngx_qqfail_geo_t *geo, ngx_uint_t naddrs, ngx_uint_t *why)
{
    ngx_uint_t               i, n, reason;
    ngx_qqfail_geo_t         g;
    ngx_qqfail_main_conf_t  *qmcf;

    qmcf = qscf->main;

    if (why) {
        *why = NGX_QQFAIL_REFUSED_NONE;
    }

    for (i = 0, n = 0; i < naddrs; i++) {

        if (qmcf->geo_country || qmcf->geo_asn) {
            ngx_qqfail_geo_lookup(qmcf, addrs[i].sockaddr, &g);

        } else {
            ngx_memzero(&g, sizeof(ngx_qqfail_geo_t));
        }

        reason = ngx_qqfail_refused(qscf, addrs[i].sockaddr, &g);

        if (reason != NGX_QQFAIL_REFUSED_NONE) {
            if (why && *why == NGX_QQFAIL_REFUSED_NONE) {
                *why = reason;
            }

            continue;
        }

        addrs[n] = addrs[i];
        geo[n] = g;
        n++;
    }

    return n;
}


static ngx_uint_t
ngx_qqfail_refused(ngx_qqfail_srv_conf_t *qscf, struct sockaddr *sa,
    ngx_qqfail_geo_t *geo)
{
    ngx_uint_t          kind;
    struct sockaddr_in  sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6   *sin6;
#endif

    if (sa->sa_family != AF_INET && !qscf->ipv6) {
        return NGX_QQFAIL_REFUSED_FAMILY;
    }

#if (NGX_HAVE_INET6)

    /* ::ffff:a.b.c.d is a.b.c.d */

    if (sa->sa_family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) sa;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            ngx_memzero(&sin, sizeof(struct sockaddr_in));
            sin.sin_family = AF_INET;
            sin.sin_port = sin6->sin6_port;
            ngx_memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
            sa = (struct sockaddr *) &sin;
        }
    }

#endif

    kind = ngx_qqfail_addr_kind(sa);

    if (kind == NGX_QQFAIL_REFUSED_SPECIAL) {
        return kind;
    }

    if (ngx_qqfail_addr_loops(qscf->main, sa)) {
        return NGX_QQFAIL_REFUSED_LOOP;
    }

    if (kind == NGX_QQFAIL_REFUSED_METADATA) {
        /* only a CIDR rule that names the address lets it through */
        return (qscf->allow_cidr
                && ngx_cidr_match(sa, qscf->allow_cidr) == NGX_OK)
               ? NGX_QQFAIL_REFUSED_NONE : kind;
    }

    if (!ngx_qqfail_allowed(qscf, sa, geo)) {
        return NGX_QQFAIL_REFUSED_ALLOW;
    }

    return NGX_QQFAIL_REFUSED_NONE;
}


/*
 * Addresses no backend can have, and the link-local and private addresses
 * cloud providers give their metadata services (a forged answer must not
 * turn the proxy into a way in).
 */

static ngx_uint_t
ngx_qqfail_addr_kind(struct sockaddr *sa)
{
    in_addr_t  a;
#if (NGX_HAVE_INET6)
    u_char               *p;
    struct in6_addr      *a6;
    static u_char         ec2[16] = { 0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0, 0, 0x02, 0x54 };
#endif

    if (sa->sa_family == AF_INET) {
        a = ntohl(((struct sockaddr_in *) sa)->sin_addr.s_addr);

        if (a == 0xa9fea9fe                    /* 169.254.169.254 */
            || a == 0xa9feaa02                 /* 169.254.170.2, ECS */
            || a == 0x646464c8)                /* 100.100.100.200 */
        {
            return NGX_QQFAIL_REFUSED_METADATA;
        }

        if ((a & 0xff000000) == 0                  /* 0.0.0.0/8 */
            || a == 0xffffffff                     /* broadcast */
            || (a & 0xf0000000) == 0xe0000000      /* 224.0.0.0/4 */
            || (a & 0xffff0000) == 0xa9fe0000)     /* 169.254.0.0/16 */
        {
            return NGX_QQFAIL_REFUSED_SPECIAL;
        }

        return NGX_QQFAIL_REFUSED_NONE;
    }

#if (NGX_HAVE_INET6)

    if (sa->sa_family == AF_INET6) {
        a6 = &((struct sockaddr_in6 *) sa)->sin6_addr;
        p = a6->s6_addr;

        if (ngx_memcmp(p, ec2, 16) == 0) {
            return NGX_QQFAIL_REFUSED_METADATA;
        }

        if (IN6_IS_ADDR_UNSPECIFIED(a6)
            || IN6_IS_ADDR_MULTICAST(a6)
            || IN6_IS_ADDR_LINKLOCAL(a6))
        {
            return NGX_QQFAIL_REFUSED_SPECIAL;
        }
    }

#endif

    return NGX_QQFAIL_REFUSED_NONE;
}


/*
 * The address of one of this nginx's own listen sockets, or, for a socket
 * listening on every address, a loopback or local interface address with
 * its port: a request sent there comes back as a new request.
 */

static ngx_uint_t
ngx_qqfail_addr_loops(ngx_qqfail_main_conf_t *qmcf,
    struct sockaddr *sa)
{
    ngx_uint_t        i, j;
    in_port_t         port;
    ngx_addr_t       *local;
    ngx_listening_t  *ls;

    if (qmcf->listening == NULL) {
        return 0;
    }

    port = ngx_inet_get_port(sa);
    ls = qmcf->listening->elts;

    for (i = 0; i < qmcf->listening->nelts; i++) {

        if (ls[i].sockaddr->sa_family != AF_INET
#if (NGX_HAVE_INET6)
            && ls[i].sockaddr->sa_family != AF_INET6
#endif
           )
        {
            continue;
        }

        if (ngx_inet_get_port(ls[i].sockaddr) != port) {
            continue;
        }

        if (!ngx_qqfail_addr_wildcard(ls[i].sockaddr)) {
            if (ngx_cmp_sockaddr(ls[i].sockaddr, ls[i].socklen, sa,
                                 sa->sa_family == AF_INET
                                 ? sizeof(struct sockaddr_in)
                                 : ls[i].socklen, 0)
                == NGX_OK)
            {
                return 1;
            }

            continue;
        }

        /* every address of this host */

        if (ngx_qqfail_addr_loopback(sa)) {
            return 1;
        }

        local = qmcf->local.elts;

        for (j = 0; j < qmcf->local.nelts; j++) {
            if (local[j].sockaddr->sa_family == sa->sa_family
                && ngx_cmp_sockaddr(local[j].sockaddr, local[j].socklen, sa,
                                    local[j].socklen, 0)
                   == NGX_OK)
            {
                return 1;
            }
        }
    }

    return 0;
}


static ngx_uint_t
ngx_qqfail_addr_wildcard(struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return ((struct sockaddr_in *) sa)->sin_addr.s_addr == INADDR_ANY;
    }

#if (NGX_HAVE_INET6)
    if (sa->sa_family == AF_INET6) {
        return IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *) sa)
                                       ->sin6_addr);
    }
#endif

    return 0;
}


static ngx_uint_t
ngx_qqfail_addr_loopback(struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return (ntohl(((struct sockaddr_in *) sa)->sin_addr.s_addr)
                & 0xff000000) == 0x7f000000;
    }

#if (NGX_HAVE_INET6)
    if (sa->sa_family == AF_INET6) {
        return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *) sa)
                                    ->sin6_addr);
    }
#endif

    return 0;
}


/*
 * The addresses of this host's interfaces, for the loop check of sockets
 * that listen on every address; read in the master at each generation.
 */

ngx_int_t
ngx_qqfail_local_addrs(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf)
{
    size_t           len;
    ngx_addr_t      *addr;
    struct ifaddrs  *ifa, *i;

    qmcf->listening = &cycle->listening;

    if (ngx_array_init(&qmcf->local, cycle->pool, 4, sizeof(ngx_addr_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (getifaddrs(&ifa) == -1) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                      "qqfail: getifaddrs() failed, answers that point at "
                      "this host's own addresses are not recognised");
        return NGX_OK;
    }

    for (i = ifa; i; i = i->ifa_next) {

        if (i->ifa_addr == NULL) {
            continue;
        }

        if (i->ifa_addr->sa_family == AF_INET) {
            len = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            len = sizeof(struct sockaddr_in6);
#endif

        } else {
            continue;
        }

        addr = ngx_array_push(&qmcf->local);
        if (addr == NULL) {
            break;
        }

        addr->sockaddr = ngx_palloc(cycle->pool, len);
        if (addr->sockaddr == NULL) {
            qmcf->local.nelts--;
            break;
        }

        ngx_memcpy(addr->sockaddr, i->ifa_addr, len);
        addr->socklen = len;
        ngx_str_null(&addr->name);
    }

    freeifaddrs(ifa);

    return NGX_OK;
}


static ngx_uint_t
ngx_qqfail_geo_code(const char *code)
{
    u_char  c0, c1;

    c0 = (u_char) (code[0] | 0x20);
    c1 = (u_char) (code[1] | 0x20);

    return c0 >= 'a' && c0 <= 'z' && c1 >= 'a' && c1 <= 'z';
}


/* country, continent, ASN and organisation of an address, if known */

void
ngx_qqfail_geo_lookup(ngx_qqfail_main_conf_t *qmcf,
    struct sockaddr *sa, ngx_qqfail_geo_t *geo)
{
    int                   err;
    MMDB_entry_data_s     data;
    MMDB_lookup_result_s  r;

    static const char  *country[] = { "country", "iso_code", NULL };
    static const char  *registered[] = { "registered_country", "iso_code",
                                         NULL };
    static const char  *continent[] = { "continent", "code", NULL };
    static const char  *asn[] = { "autonomous_system_number", NULL };
    static const char  *org[] = { "autonomous_system_organization", NULL };

    ngx_memzero(geo, sizeof(ngx_qqfail_geo_t));

    if (qmcf->geo_country) {
        r = MMDB_lookup_sockaddr(qmcf->geo_country->mmdb, sa, &err);

        /* an IPv6 address in an IPv4 database is simply not found */

        if (err == MMDB_SUCCESS && r.found_entry) {

            if ((MMDB_aget_value(&r.entry, &data, country) == MMDB_SUCCESS
                 && data.has_data)
                || (MMDB_aget_value(&r.entry, &data, registered)
                    == MMDB_SUCCESS && data.has_data))
            {
                /* an ISO 3166 code, two letters, or nothing */

                if (data.type == MMDB_DATA_TYPE_UTF8_STRING
                    && data.data_size == 2
                    && ngx_qqfail_geo_code(data.utf8_string))
                {
                    geo->country[0] = ngx_toupper(data.utf8_string[0]);
                    geo->country[1] = ngx_toupper(data.utf8_string[1]);
                }
            }

            if (MMDB_aget_value(&r.entry, &data, continent) == MMDB_SUCCESS
                && data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING
                && data.data_size == 2
                && ngx_qqfail_geo_code(data.utf8_string))
            {
                geo->continent[0] = ngx_toupper(data.utf8_string[0]);
                geo->continent[1] = ngx_toupper(data.utf8_string[1]);
            }
        }
    }

    if (qmcf->geo_asn) {
        r = MMDB_lookup_sockaddr(qmcf->geo_asn->mmdb, sa, &err);

        if (err == MMDB_SUCCESS && r.found_entry) {

            if (MMDB_aget_value(&r.entry, &data, asn) == MMDB_SUCCESS
                && data.has_data && data.type == MMDB_DATA_TYPE_UINT32)
            {
                geo->asn = data.uint32;
            }

            /* not NUL-terminated, and it lives in the mapping: copy */

            if (MMDB_aget_value(&r.entry, &data, org) == MMDB_SUCCESS
                && data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING)
            {
                ngx_memcpy(geo->org, data.utf8_string,
                           ngx_qqfail_utf8_cut(
                                   (u_char *) data.utf8_string,
                                   data.data_size,
                                   NGX_QQFAIL_ORG_LEN - 1));
            }
        }
    }
}


/*
 * An address is allowed when it matches any qqfail_allow rule; without
 * "geo", only CIDR rules are tried.  ngx_cidr_match() matches an
 * IPv4-mapped IPv6 address as its IPv4 address; ngx_qqfail_refused()
 * has made it one already.
 */

ngx_uint_t
ngx_qqfail_allowed(ngx_qqfail_srv_conf_t *qscf,
    struct sockaddr *sa, ngx_qqfail_geo_t *geo)
{
    ngx_uint_t          i;
    ngx_qqfail_rule_t  *rule;

    if (qscf->allow == NULL && qscf->allow_cidr == NULL) {
        return 1;
    }

    if (qscf->allow_cidr && ngx_cidr_match(sa, qscf->allow_cidr) == NGX_OK) {
        return 1;
    }

    if (qscf->allow == NULL || geo == NULL) {
        return 0;
    }

    rule = qscf->allow->elts;

    for (i = 0; i < qscf->allow->nelts; i++) {

        if (rule[i].type == NGX_QQFAIL_RULE_ASN) {
            if (geo->asn && geo->asn == rule[i].asn) {
                return 1;
            }

        } else if (geo->country[0] == rule[i].country[0]
                   && geo->country[1] == rule[i].country[1])
        {
            return 1;
        }
    }

    return 0;
}
