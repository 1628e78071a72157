
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
