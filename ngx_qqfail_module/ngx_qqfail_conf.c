
/*
 * Copyright (C) ngx_qqfail_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"


/*
 * Configuration helpers every front end uses: IP literals, and the
 * default "system" provider.
 */


static ngx_str_t  ngx_qqfail_system_name = ngx_string("system");


/*
 * An IP literal with an optional port: "1.2.3.4", "1.2.3.4:53", "::1",
 * "[::1]", "[::1]:53".  NGX_DECLINED: not an IP literal, or a bad port.
 */

ngx_int_t
ngx_qqfail_parse_ip(ngx_conf_t *cf, ngx_str_t *text,
    in_port_t default_port, ngx_addr_t *addr)
{
    u_char    *host;
    size_t     len;
    ngx_int_t  rc;
    u_char     buf[NGX_SOCKADDR_STRLEN];

    host = text->data;
    len = text->len;

    /* ngx_parse_addr_port() takes brackets only before a port */

    if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }

    if (len == 0) {
        return NGX_DECLINED;
    }

    rc = ngx_parse_addr_port(cf->pool, addr, host, len);

    if (rc != NGX_OK) {
        return rc;
    }

    /* a port it took is 1 to 65535 */

    if (ngx_inet_get_port(addr->sockaddr) == 0) {
        ngx_inet_set_port(addr->sockaddr, default_port);
    }

    len = ngx_sock_ntop(addr->sockaddr, addr->socklen, buf,
                        NGX_SOCKADDR_STRLEN, 1);

    addr->name.data = ngx_pnalloc(cf->pool, len);
    if (addr->name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(addr->name.data, buf, len);
    addr->name.len = len;

    return NGX_OK;
}


/*
 * Without "qqfail_provider": one provider, the nameservers of
 * /etc/resolv.conf, as c-ares reads them.
 */

ngx_int_t
ngx_qqfail_conf_system_provider(ngx_conf_t *cf,
    ngx_qqfail_main_conf_t *qmcf)
{
    u_char                 *p, *last, *end, *zone;
    ngx_int_t               rc;
    ngx_str_t               text, list;
    ngx_addr_t             *addr;
    ngx_qqfail_provider_t  *pr;

    pr = ngx_array_push(&qmcf->providers);
    if (pr == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(pr, sizeof(ngx_qqfail_provider_t));

    pr->name = ngx_qqfail_system_name;
    pr->system = 1;
    pr->max_inflight = NGX_QQFAIL_MAX_INFLIGHT;

    if (ngx_array_init(&pr->addrs, cf->pool, 2, sizeof(ngx_addr_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * c-ares reads /etc/resolv.conf itself; the servers it finds there
     * are asked for here only to show them on the status page
     */

    rc = ngx_qqfail_ares_system(cf->pool, cf->log, &list);

    if (rc != NGX_OK) {
        return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
    }

    last = list.data + list.len;

    for (p = list.data; p < last; p = end + 1) {
        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        /*
         * a link-local server comes with its interface
         * ("[fe80::1]:53%eth0"): it counts, as c-ares asks it, and is shown
         * without
         */

        zone = ngx_strlchr(p, end, '%');

        text.data = p;
        text.len = (zone ? zone : end) - p;

        if (text.len == 0
            || pr->addrs.nelts == NGX_QQFAIL_MAX_PROVIDER_ADDRS)
        {
            continue;
        }

        addr = ngx_array_push(&pr->addrs);
        if (addr == NULL) {
            return NGX_ERROR;
        }

        if (ngx_qqfail_parse_ip(cf, &text, 53, addr) != NGX_OK) {
            pr->addrs.nelts--;
        }
    }

    return NGX_OK;
}
