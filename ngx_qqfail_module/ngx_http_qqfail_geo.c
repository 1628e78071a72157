
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_qqfail_module.h"


static void ngx_http_qqfail_geo_cleanup(void *data);


ngx_int_t
ngx_http_qqfail_geo_open(ngx_conf_t *cf, ngx_str_t *path,
    ngx_http_qqfail_geo_db_t **dbp)
{
    int                        status;
    ngx_str_t                  type;
    ngx_pool_cleanup_t        *cln;
    ngx_http_qqfail_geo_db_t  *db;

    db = ngx_pcalloc(cf->pool, sizeof(ngx_http_qqfail_geo_db_t));
    if (db == NULL) {
        return NGX_ERROR;
    }

    db->path = *path;

    if (ngx_conf_full_name(cf->cycle, &db->path, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    status = MMDB_open((char *) db->path.data, MMDB_MODE_MMAP, &db->mmdb);

    if (status != MMDB_SUCCESS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf,
                           status == MMDB_IO_ERROR ? ngx_errno : 0,
                           "\"qqfail_geoip2\" cannot open database \"%V\": "
                           "%s", &db->path, MMDB_strerror(status));
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        MMDB_close(&db->mmdb);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_qqfail_geo_cleanup;
    cln->data = db;

    type.data = (u_char *) db->mmdb.metadata.database_type;
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
ngx_http_qqfail_geo_cleanup(void *data)
{
    ngx_http_qqfail_geo_db_t  *db = data;

    MMDB_close(&db->mmdb);
}


void
ngx_http_qqfail_geo_annotate(ngx_http_qqfail_main_conf_t *qmcf,
    ngx_addr_t *addrs, ngx_uint_t naddrs, ngx_http_qqfail_geo_t *geo)
{
    ngx_uint_t  i;

    for (i = 0; i < naddrs; i++) {
        ngx_http_qqfail_geo_lookup(qmcf, addrs[i].sockaddr, &geo[i]);
    }
}


/*
 * The one address filter, for answers, state-file addresses and the
 * addresses a reload keeps: "qqfail_ipv6" and "qqfail_allow", with the
 * GeoIP2 data looked up once per address and kept for the status page.
 * The addresses that pass are moved to the front; returns their number.
 */

ngx_uint_t
ngx_http_qqfail_filter(ngx_http_qqfail_srv_conf_t *qscf, ngx_addr_t *addrs,
    ngx_http_qqfail_geo_t *geo, ngx_uint_t naddrs)
{
    ngx_uint_t                    i, n;
    ngx_http_qqfail_geo_t         g;
    ngx_http_qqfail_main_conf_t  *qmcf;

    qmcf = qscf->main;

    for (i = 0, n = 0; i < naddrs; i++) {

        if (addrs[i].sockaddr->sa_family != AF_INET && !qscf->ipv6) {
            continue;
        }

        if (qmcf->geo_country || qmcf->geo_asn) {
            ngx_http_qqfail_geo_lookup(qmcf, addrs[i].sockaddr, &g);

        } else {
            ngx_memzero(&g, sizeof(ngx_http_qqfail_geo_t));
        }

        if (!ngx_http_qqfail_allowed(qscf, addrs[i].sockaddr, &g)) {
            continue;
        }

        addrs[n] = addrs[i];
        geo[n] = g;
        n++;
    }

    return n;
}


/* country, continent, ASN and organisation of an address, if known */

void
ngx_http_qqfail_geo_lookup(ngx_http_qqfail_main_conf_t *qmcf,
    struct sockaddr *sa, ngx_http_qqfail_geo_t *geo)
{
    int                    err;
    MMDB_entry_data_s      data;
    MMDB_lookup_result_s   r;

    static const char  *country[] = { "country", "iso_code", NULL };
    static const char  *registered[] = { "registered_country", "iso_code",
                                         NULL };
    static const char  *continent[] = { "continent", "code", NULL };
    static const char  *asn[] = { "autonomous_system_number", NULL };
    static const char  *org[] = { "autonomous_system_organization", NULL };

    ngx_memzero(geo, sizeof(ngx_http_qqfail_geo_t));

    if (qmcf->geo_country) {
        r = MMDB_lookup_sockaddr(&qmcf->geo_country->mmdb, sa, &err);

        /* an IPv6 address in an IPv4 database is simply not found */

        if (err == MMDB_SUCCESS && r.found_entry) {

            if ((MMDB_aget_value(&r.entry, &data, country) == MMDB_SUCCESS
                 && data.has_data)
                || (MMDB_aget_value(&r.entry, &data, registered)
                    == MMDB_SUCCESS && data.has_data))
            {
                if (data.type == MMDB_DATA_TYPE_UTF8_STRING
                    && data.data_size == 2)
                {
                    geo->country[0] = ngx_toupper(data.utf8_string[0]);
                    geo->country[1] = ngx_toupper(data.utf8_string[1]);
                }
            }

            if (MMDB_aget_value(&r.entry, &data, continent) == MMDB_SUCCESS
                && data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING
                && data.data_size == 2)
            {
                geo->continent[0] = data.utf8_string[0];
                geo->continent[1] = data.utf8_string[1];
            }
        }
    }

    if (qmcf->geo_asn) {
        r = MMDB_lookup_sockaddr(&qmcf->geo_asn->mmdb, sa, &err);

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
                           ngx_min(data.data_size,
                                   NGX_HTTP_QQFAIL_ORG_LEN - 1));
            }
        }
    }
}


/* an address is allowed when it matches any qqfail_allow rule */

ngx_uint_t
ngx_http_qqfail_allowed(ngx_http_qqfail_srv_conf_t *qscf,
    struct sockaddr *sa, ngx_http_qqfail_geo_t *geo)
{
    ngx_uint_t               i, n;
    struct sockaddr_in      *sin;
    ngx_http_qqfail_rule_t  *rule;
#if (NGX_HAVE_INET6)
    u_char                  *p;
    struct sockaddr_in6     *sin6;
#endif

    if (qscf->allow == NULL) {
        return 1;
    }

    rule = qscf->allow->elts;

    for (i = 0; i < qscf->allow->nelts; i++) {

        switch (rule[i].type) {

        case NGX_HTTP_QQFAIL_RULE_ASN:
            if (geo && geo->asn && geo->asn == rule[i].asn) {
                return 1;
            }

            break;

        case NGX_HTTP_QQFAIL_RULE_COUNTRY:
            if (geo && geo->country[0] == rule[i].country[0]
                && geo->country[1] == rule[i].country[1])
            {
                return 1;
            }

            break;

        default: /* NGX_HTTP_QQFAIL_RULE_CIDR */

            if (rule[i].cidr.family != sa->sa_family) {
                break;
            }

            if (sa->sa_family == AF_INET) {
                sin = (struct sockaddr_in *) sa;

                if ((sin->sin_addr.s_addr & rule[i].cidr.u.in.mask)
                    == rule[i].cidr.u.in.addr)
                {
                    return 1;
                }

                break;
            }

#if (NGX_HAVE_INET6)
            sin6 = (struct sockaddr_in6 *) sa;
            p = sin6->sin6_addr.s6_addr;

            for (n = 0; n < 16; n++) {
                if ((p[n] & rule[i].cidr.u.in6.mask.s6_addr[n])
                    != rule[i].cidr.u.in6.addr.s6_addr[n])
                {
                    break;
                }
            }

            if (n == 16) {
                return 1;
            }
#else
            (void) n;
#endif

            break;
        }
    }

    return 0;
}
