
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"
#include "ngx_qqfail_dns.h"


/*
 * The directives every front end shares, and what they parse: the
 * providers, the zone, the state file and the GeoIP2 databases (main
 * level), "qqfail_server" and the upstream-level directives, and nginx's
 * balancing methods in a qqfail upstream.  A front end registers them in
 * its command table, and gives each of its upstreams its table
 * (ngx_qqfail_front_t): the "attach" hook (ngx_qqfail_upstream_conf())
 * that links the upstream's configuration to its own upstream{} at the
 * first directive, and what the core reads and sets of that upstream{}.
 */


static char *ngx_qqfail_conf_invalid(ngx_conf_t *cf,
    ngx_qqfail_slot_t *slot);
static ngx_int_t ngx_qqfail_valid_host(ngx_str_t *host);
static ngx_int_t ngx_qqfail_parse_name(ngx_conf_t *cf, ngx_str_t *text,
    ngx_qqfail_name_t *name);
static ngx_int_t ngx_qqfail_parse_rule(ngx_conf_t *cf,
    ngx_qqfail_srv_conf_t *qscf, ngx_str_t *value);
static char *ngx_qqfail_conf_first(ngx_conf_t *cf,
    ngx_qqfail_srv_conf_t *qscf, ngx_qqfail_upstream_t *u);
static char *ngx_qqfail_conf_server_line(ngx_conf_t *cf,
    ngx_qqfail_srv_conf_t *qscf, ngx_uint_t backup);


static ngx_str_t  ngx_qqfail_system_name = ngx_string("system");


/* the values of the directives that nginx's slot setters parse */

#define NGX_QQFAIL_TIME_INVALID                                               \
    "invalid \"%V\" value \"%V\", a time from %uims to %uims is expected"


ngx_qqfail_slot_t  ngx_qqfail_zone_slot = {
    ngx_qqfail_conf_zone_post, ngx_conf_set_size_slot,
    NGX_QQFAIL_MIN_ZONE_SIZE, 0,
    "invalid \"%V\" size \"%V\""
};

ngx_conf_post_t  ngx_qqfail_state_file_post = {
    ngx_qqfail_conf_state_file_post
};

ngx_qqfail_slot_t  ngx_qqfail_refresh_slot = {
    ngx_qqfail_conf_upstream_post, ngx_conf_set_msec_slot,
    1000, 7 * 24 * 3600 * 1000, NGX_QQFAIL_TIME_INVALID
};

ngx_qqfail_slot_t  ngx_qqfail_timeout_slot = {
    ngx_qqfail_conf_upstream_post, ngx_conf_set_msec_slot,
    10, 60000, NGX_QQFAIL_TIME_INVALID
};

ngx_qqfail_slot_t  ngx_qqfail_quorum_slot = {
    ngx_qqfail_conf_upstream_post, ngx_conf_set_num_slot,
    1, NGX_QQFAIL_MAX_PROVIDERS,
    "invalid \"%V\" value \"%V\", a number from %ui to %ui is expected"
};

/* nginx's message for a bad flag names the value */

ngx_qqfail_slot_t  ngx_qqfail_ipv6_slot = {
    ngx_qqfail_conf_upstream_post, ngx_conf_set_flag_slot, 0, 0, NULL
};

ngx_qqfail_slot_t  ngx_qqfail_dnssec_slot = {
    ngx_qqfail_conf_upstream_post, ngx_conf_set_flag_slot, 0, 0, NULL
};


ngx_qqfail_srv_conf_t *
ngx_qqfail_upstream_conf(ngx_conf_t *cf, void *conf)
{
    ngx_qqfail_srv_conf_t  *qscf = conf;

    if (qscf->upstream == NULL) {
        qscf->front->attach(cf, qscf);
    }

    return qscf;
}


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


void
ngx_qqfail_conf_where(ngx_conf_t *cf, ngx_qqfail_where_t *where)
{
    if (where->file == NULL) {
        where->file = cf->conf_file->file.name.data;
        where->line = cf->conf_file->line;
    }
}


char *
ngx_qqfail_conf_provider(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_qqfail_main_conf_t *qmcf = conf;

    u_char                      *p;
    size_t                       len;
    ngx_int_t                    rc, max_inflight, rate;
    ngx_str_t                   *value, s;
    ngx_uint_t                   i, naddrs;
    ngx_addr_t                  *addr;
    ngx_qqfail_provider_t       *pr;

    value = cf->args->elts;

    if (value[1].len == 0
        || value[1].len > NGX_QQFAIL_PROVIDER_NAME_LEN)
    {
        goto invalid_name;
    }

    for (i = 0; i < value[1].len; i++) {
        p = &value[1].data[i];

        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'
            || *p == '.')
        {
            continue;
        }

        goto invalid_name;
    }

    pr = qmcf->providers.elts;

    for (i = 0; i < qmcf->providers.nelts; i++) {
        if (pr[i].name.len == value[1].len
            && ngx_strncmp(pr[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"qqfail_provider\" name \"%V\" is duplicate",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (qmcf->providers.nelts == NGX_QQFAIL_MAX_PROVIDERS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many \"qqfail_provider\" directives, "
                           "the maximum is %d",
                           NGX_QQFAIL_MAX_PROVIDERS);
        return NGX_CONF_ERROR;
    }

    /* parameters come last: "max_inflight=N", "rate=N" */

    naddrs = cf->args->nelts - 2;
    max_inflight = NGX_QQFAIL_MAX_INFLIGHT;
    rate = 0;

    while (naddrs
           && ngx_strlchr(value[naddrs + 1].data,
                          value[naddrs + 1].data + value[naddrs + 1].len, '=')
              != NULL)
    {
        s = value[naddrs + 1];

        if (s.len > 13 && ngx_strncmp(s.data, "max_inflight=", 13) == 0) {
            max_inflight = ngx_atoi(s.data + 13, s.len - 13);

            if (max_inflight < 2) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"max_inflight\" value \"%V\" "
                                   "in \"qqfail_provider\" \"%V\", 2 or "
                                   "more is expected", &s, &value[1]);
                return NGX_CONF_ERROR;
            }

        } else if (s.len > 5 && ngx_strncmp(s.data, "rate=", 5) == 0) {
            rate = ngx_atoi(s.data + 5, s.len - 5);

            if (rate < 2) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"rate\" value \"%V\" in "
                                   "\"qqfail_provider\" \"%V\", queries "
                                   "per second, 2 or more, are expected",
                                   &s, &value[1]);
                return NGX_CONF_ERROR;
            }

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"qqfail_provider\" \"%V\"", &s, &value[1]);
            return NGX_CONF_ERROR;
        }

        naddrs--;
    }

    if (naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no address in \"qqfail_provider\" \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (naddrs > NGX_QQFAIL_MAX_PROVIDER_ADDRS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many addresses in \"qqfail_provider\" "
                           "\"%V\", the maximum is %d",
                           &value[1], NGX_QQFAIL_MAX_PROVIDER_ADDRS);
        return NGX_CONF_ERROR;
    }

    pr = ngx_array_push(&qmcf->providers);
    if (pr == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(pr, sizeof(ngx_qqfail_provider_t));

    pr->name = value[1];
    pr->max_inflight = max_inflight;
    pr->rate = rate;

    if (ngx_array_init(&pr->addrs, cf->pool, naddrs, sizeof(ngx_addr_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    len = 0;

    for (i = 2; i < naddrs + 2; i++) {
        addr = ngx_array_push(&pr->addrs);
        if (addr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_qqfail_parse_ip(cf, &value[i], 53, addr);

        if (rc != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\" in \"qqfail_provider\""
                               " \"%V\", an IP address with an optional port "
                               "is expected", &value[i], &value[1]);
            return NGX_CONF_ERROR;
        }

        len += addr->name.len + 1;
    }

    pr->servers.data = ngx_pnalloc(cf->pool, len);
    if (pr->servers.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = pr->servers.data;
    addr = pr->addrs.elts;

    for (i = 0; i < pr->addrs.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, addr[i].name.data, addr[i].name.len);
    }

    pr->servers.len = p - pr->servers.data;

    return NGX_CONF_OK;

invalid_name:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"qqfail_provider\" name \"%V\", expected "
                       "1 to %d letters, digits, \"_\", \"-\" or \".\"",
                       &value[1], NGX_QQFAIL_PROVIDER_NAME_LEN);
    return NGX_CONF_ERROR;
}


/*
 * nginx's slot setter of the command's post: duplicates and the syntax of
 * the value; a bad value is named in the message, nginx's own says
 * "invalid value" alone
 */

char *
ngx_qqfail_conf_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_qqfail_slot_t  *slot = cmd->post;

    char                   *rv;
    ngx_qqfail_srv_conf_t  *qscf;

    rv = slot->slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {

        /* an upstream's: where it is, for the checks at the end */

        if (slot->post_handler == ngx_qqfail_conf_upstream_post) {
            qscf = ngx_qqfail_upstream_conf(cf, conf);

            if (cmd->offset == offsetof(ngx_qqfail_srv_conf_t, quorum)) {
                ngx_qqfail_conf_where(cf, &qscf->quorum_where);
            }

            ngx_qqfail_conf_where(cf, &qscf->directive);
        }

        return rv;
    }

    if (rv == NGX_CONF_ERROR || ngx_strcmp(rv, "is duplicate") == 0) {
        return rv;
    }

    return ngx_qqfail_conf_invalid(cf, slot);
}


static char *
ngx_qqfail_conf_invalid(ngx_conf_t *cf, ngx_qqfail_slot_t *slot)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, slot->invalid,
                       &value[0], &value[1], slot->low, slot->high);

    return NGX_CONF_ERROR;
}


char *
ngx_qqfail_conf_zone_post(ngx_conf_t *cf, void *post, void *data)
{
    ngx_qqfail_slot_t  *slot = post;

    size_t                  *sp;
    ngx_str_t               *value;
    ngx_qqfail_main_conf_t  *qmcf;

    sp = data;

    if (*sp < slot->low) {
        value = cf->args->elts;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"qqfail_zone\" size \"%V\" is too small, "
                           "the minimum is %uik", &value[1],
                           slot->low / 1024);
        return NGX_CONF_ERROR;
    }

    /* every front end's main configuration is the shared one */

    qmcf = (ngx_qqfail_main_conf_t *)
               ((u_char *) data - offsetof(ngx_qqfail_main_conf_t, zone_size));
    ngx_qqfail_conf_where(cf, &qmcf->zone_where);

    return NGX_CONF_OK;
}


char *
ngx_qqfail_conf_state_file_post(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *path = data;

    ngx_str_t               *value;
    ngx_qqfail_main_conf_t  *qmcf;

    /* every front end's main configuration is the shared one */

    qmcf = (ngx_qqfail_main_conf_t *)
               ((u_char *) data - offsetof(ngx_qqfail_main_conf_t, state_file));

    if (ngx_strcmp(path->data, "off") == 0) {
        /* the text stays set: a second directive is a duplicate */
        path->len = 0;
        qmcf->state_file_set = 0;
        return NGX_CONF_OK;
    }

    if (path->len == 0 || path->data[path->len - 1] == '/') {
        value = cf->args->elts;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"qqfail_state_file\" path \"%V\", "
                           "a file name is expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* room for the temporary file's suffix, ".PID.tmp" */

    if (path->len > NGX_MAX_PATH - 32
        || ngx_strlchr(path->data, path->data + path->len, '\0'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"qqfail_state_file\" path of %uz "
                           "bytes, at most %d bytes and no NUL are allowed",
                           path->len, NGX_MAX_PATH - 32);
        return NGX_CONF_ERROR;
    }

    qmcf->state_file_set = 1;
    qmcf->state_file_hash = ngx_crc32_short(path->data, path->len);

    /* for the directory check, made once the worker user is known */

    ngx_qqfail_conf_where(cf, &qmcf->state_file_where);

    return NGX_CONF_OK;
}


char *
ngx_qqfail_conf_geoip2(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_qqfail_main_conf_t *qmcf = conf;

    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_qqfail_geo_db_t       *db;

    if (qmcf->geo_country || qmcf->geo_asn) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_qqfail_geo_open(cf, &value[i], &db) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if ((db->asn && qmcf->geo_asn)
            || (db->country && qmcf->geo_country))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"qqfail_geoip2\" database \"%V\" provides "
                               "the same data as the previous one",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (db->asn) {
            qmcf->geo_asn = db;
        }

        if (db->country) {
            qmcf->geo_country = db;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_qqfail_valid_host(ngx_str_t *host)
{
    u_char      c, *p, *last, *label;
    ngx_uint_t  digits;

    if (host->len == 0 || host->len > 253) {
        return NGX_ERROR;
    }

    last = host->data + host->len;
    label = host->data;
    digits = 1;

    for (p = host->data; p <= last; p++) {

        if (p == last || *p == '.') {
            if (p == label || p - label > 63
                || *label == '-' || *(p - 1) == '-')
            {
                return NGX_ERROR;
            }

            label = p + 1;

            if (p != last) {
                digits = 1;
            }

            continue;
        }

        c = *p;

        if ((c >= 'a' && c <= 'z') || c == '-' || c == '_') {
            digits = 0;
            continue;
        }

        if (c >= '0' && c <= '9') {
            continue;
        }

        return NGX_ERROR;
    }

    /* an all-digit last label is an address typo, not a name */

    return digits ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_qqfail_parse_name(ngx_conf_t *cf, ngx_str_t *text,
    ngx_qqfail_name_t *name)
{
    u_char    *p, *last;
    size_t     len;
    ngx_int_t  rc, port;

    ngx_memzero(name, sizeof(ngx_qqfail_name_t));

    name->text = *text;

    rc = ngx_qqfail_parse_ip(cf, text, 80, &name->addr);

    if (rc == NGX_OK) {
        name->literal = 1;
        name->host = name->addr.name;
        name->port = ngx_inet_get_port(name->addr.sockaddr);

        /* the canonical text carries the port */
        name->key = name->addr.name;
        name->qname = name->host;

        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    last = text->data + text->len;
    p = ngx_strlchr(text->data, last, ':');

    if (p) {
        len = p - text->data;
        port = ngx_atoi(p + 1, last - p - 1);

        if (port < 1 || port > 65535) {
            return NGX_ERROR;
        }

    } else {
        len = text->len;
        port = 80;
    }

    if (len && text->data[len - 1] == '.') {
        len--;
    }

    name->host.data = ngx_pnalloc(cf->pool, len);
    if (name->host.data == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(name->host.data, text->data, len);
    name->host.len = len;
    name->port = (in_port_t) port;

    if (ngx_qqfail_valid_host(&name->host) != NGX_OK) {
        return NGX_ERROR;
    }

    name->key.data = ngx_pnalloc(cf->pool, len + sizeof(":65535") - 1);
    if (name->key.data == NULL) {
        return NGX_ERROR;
    }

    name->key.len = ngx_sprintf(name->key.data, "%V:%d", &name->host, port)
                    - name->key.data;

    name->qname = name->host;

    return NGX_OK;
}


/*
 * "service=" on a qqfail_server line, as nginx's "server ... service=":
 * a service without a dot is looked up as "_SERVICE._tcp.NAME", one with
 * a dot as "SERVICE.NAME"; the ports come from the SRV records, so a
 * name has none, and an IP literal needs one
 */

static ngx_int_t
ngx_qqfail_conf_service(ngx_conf_t *cf, ngx_qqfail_server_t *server)
{
    u_char             *p, *last;
    size_t              len;
    ngx_uint_t          i, dot;
    ngx_qqfail_name_t  *name;

    dot = 0;
    last = server->service.data + server->service.len;

    for (p = server->service.data; p < last; p++) {
        if (*p == '.') {
            dot = 1;
            continue;
        }

        if (*p != '_' && *p != '-' && !(*p >= '0' && *p <= '9')
            && !((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
        {
            break;
        }
    }

    if (server->service.len == 0 || server->service.len > 63 || p != last
        || server->service.data[0] == '.' || last[-1] == '.'
        || ngx_strlcasestrn(server->service.data, last, (u_char *) "..", 1)
           != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"service\" value \"%V\" in "
                           "\"qqfail_server\"", &server->service);
        return NGX_ERROR;
    }

    name = server->names.elts;

    for (i = 0; i < server->names.nelts; i++) {

        if (name[i].literal) {
            p = name[i].text.data;
            last = p + name[i].text.len;

            if ((p[0] == '[' && ngx_strlcasestrn(p, last, (u_char *) "]:", 1)
                                == NULL)
                || (p[0] != '[' && ngx_strlchr(p, last, ':') == NULL))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "IP address \"%V\" needs a port with "
                                   "\"service\" in \"qqfail_server\"",
                                   &name[i].text);
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_strlchr(name[i].text.data,
                        name[i].text.data + name[i].text.len, ':'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "name \"%V\" has a port, but with "
                               "\"service\" the ports come from the SRV "
                               "records", &name[i].text);
            return NGX_ERROR;
        }

        len = server->service.len + name[i].host.len
              + (dot ? sizeof(".") - 1 : sizeof("_._tcp.") - 1);

        if (len >= NGX_QQFAIL_DNS_TEXTLEN) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "SRV name of \"%V\" with service \"%V\" "
                               "is too long", &name[i].text,
                               &server->service);
            return NGX_ERROR;
        }

        p = ngx_pnalloc(cf->pool, len + sizeof(":srv") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        name[i].qname.data = p;

        if (dot) {
            p = ngx_sprintf(p, "%V.%V", &server->service, &name[i].host);

        } else {
            p = ngx_sprintf(p, "_%V._tcp.%V", &server->service,
                            &name[i].host);
        }

        name[i].qname.len = p - name[i].qname.data;
        ngx_strlow(name[i].qname.data, name[i].qname.data,
                   name[i].qname.len);

        /* the SRV name in the zone and the state file, not a port */

        name[i].key.data = name[i].qname.data;
        name[i].key.len = ngx_cpymem(p, ":srv", 4) - name[i].key.data;

        name[i].port = 0;
        name[i].srv = 1;
    }

    return NGX_OK;
}


/*
 * qqfail_refresh, qqfail_timeout, qqfail_quorum, qqfail_ipv6,
 * qqfail_dnssec
 */

char *
ngx_qqfail_conf_upstream_post(ngx_conf_t *cf, void *post, void *data)
{
    ngx_qqfail_slot_t  *slot = post;

    if (slot->invalid
        && (*(ngx_uint_t *) data < slot->low
            || *(ngx_uint_t *) data > slot->high))
    {
        return ngx_qqfail_conf_invalid(cf, slot);
    }

    return NGX_CONF_OK;
}


char *
ngx_qqfail_conf_max_stale(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_qqfail_srv_conf_t  *qscf;

    time_t      t;
    ngx_str_t  *value;

    qscf = ngx_qqfail_upstream_conf(cf, conf);

    if (qscf->max_stale != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        t = NGX_QQFAIL_STALE_FOREVER;

    } else {
        t = ngx_parse_time(&value[1], 1);

        if (t == (time_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"qqfail_max_stale\" value \"%V\", "
                               "a time or \"off\" is expected", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    qscf->max_stale = t;
    ngx_qqfail_conf_where(cf, &qscf->directive);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_qqfail_parse_rule(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf,
    ngx_str_t *value)
{
    u_char            *p;
    ngx_int_t          rc, n;
    ngx_cidr_t         cidr, *c;
    ngx_qqfail_rule_t  rule, *r;

    ngx_memzero(&rule, sizeof(ngx_qqfail_rule_t));
    ngx_qqfail_conf_where(cf, &rule.where);

    if (value->len > 4 && ngx_strncmp(value->data, "asn=", 4) == 0) {
        p = value->data + 4;

        if (value->len - 4 > 10) {
            return NGX_DECLINED;
        }

        n = ngx_atoi(p, value->len - 4);

        if (n < 1 || (uint64_t) n > 0xffffffff) {
            return NGX_DECLINED;
        }

        rule.type = NGX_QQFAIL_RULE_ASN;
        rule.asn = (uint32_t) n;

    } else if (ngx_strncmp(value->data, "country=", 8) == 0) {
        p = value->data + 8;

        if (value->len != 10
            || ngx_toupper(p[0]) < 'A' || ngx_toupper(p[0]) > 'Z'
            || ngx_toupper(p[1]) < 'A' || ngx_toupper(p[1]) > 'Z')
        {
            return NGX_DECLINED;
        }

        rule.type = NGX_QQFAIL_RULE_COUNTRY;
        rule.country[0] = ngx_toupper(p[0]);
        rule.country[1] = ngx_toupper(p[1]);

    } else {
        rc = ngx_ptocidr(value, &cidr);

        if (rc == NGX_ERROR) {
            return NGX_DECLINED;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               value);
        }

        /* matched with ngx_cidr_match(), IPv4-mapped IPv6 as IPv4 */

        if (qscf->allow_cidr == NULL) {
            qscf->allow_cidr = ngx_array_create(cf->pool, 4,
                                                sizeof(ngx_cidr_t));
            if (qscf->allow_cidr == NULL) {
                return NGX_ERROR;
            }
        }

        c = ngx_array_push(qscf->allow_cidr);
        if (c == NULL) {
            return NGX_ERROR;
        }

        *c = cidr;

        return NGX_OK;
    }

    if (qscf->allow == NULL) {
        qscf->allow = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_qqfail_rule_t));
        if (qscf->allow == NULL) {
            return NGX_ERROR;
        }
    }

    r = ngx_array_push(qscf->allow);
    if (r == NULL) {
        return NGX_ERROR;
    }

    *r = rule;

    return NGX_OK;
}


char *
ngx_qqfail_conf_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_qqfail_srv_conf_t  *qscf;

    ngx_int_t   rc;
    ngx_str_t  *value;
    ngx_uint_t  i;

    qscf = ngx_qqfail_upstream_conf(cf, conf);

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        rc = ngx_qqfail_parse_rule(cf, qscf, &value[i]);

        if (rc == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"qqfail_allow\" rule \"%V\", "
                               "a CIDR, \"asn=NUMBER\" or \"country=CC\" "
                               "is expected", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    ngx_qqfail_conf_where(cf, &qscf->directive);

    return NGX_CONF_OK;
}


char *
ngx_qqfail_conf_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                   *rv;
    ngx_qqfail_upstream_t   u;
    ngx_qqfail_srv_conf_t  *qscf;

    qscf = ngx_qqfail_upstream_conf(cf, conf);

    if (qscf->id.data == NULL) {
        return NGX_CONF_ERROR;
    }

    qscf->front->read(qscf->upstream, &u);

    if (qscf->servers == NULL) {
        rv = ngx_qqfail_conf_first(cf, qscf, &u);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    return ngx_qqfail_conf_server_line(cf, qscf, u.backup);
}


/*
 * The first "qqfail_server" of an upstream takes it: a placeholder
 * "server" for the upstream module, which requires one (never used for
 * connections), and the front end's init_upstream
 */

static char *
ngx_qqfail_conf_first(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf,
    ngx_qqfail_upstream_t *u)
{
    void                    *server;
    ngx_str_t                s;
    ngx_addr_t              *addr;
    ngx_qqfail_front_t      *front;
    ngx_qqfail_srv_conf_t  **qscfp;

    front = qscf->front;

    /* a balancing method before the first qqfail_server is ours */

    if (u->init_upstream != NULL
        && u->init_upstream != front->init_upstream
        && u->init_upstream != qscf->method_init)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, front->combined,
                           &qscf->name);
        return NGX_CONF_ERROR;
    }

    if (u->zone) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"qqfail_server\" cannot be combined with "
                           "\"zone\" in upstream \"%V\"", &qscf->name);
        return NGX_CONF_ERROR;
    }

    qscf->servers = ngx_array_create(cf->pool, 4,
                                     sizeof(ngx_qqfail_server_t));
    if (qscf->servers == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_qqfail_conf_where(cf, &qscf->first);

    server = ngx_array_push(u->servers);
    if (server == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(server, u->servers->size);

    addr = ngx_pcalloc(cf->pool, sizeof(ngx_addr_t));
    if (addr == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&s, "0.0.0.1:80");

    if (ngx_parse_addr_port(cf->pool, addr, s.data, s.len) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    addr->name = s;

    front->placeholder(server, addr);
    front->set(qscf->upstream, front->init_upstream);

    qscfp = ngx_array_push(&qscf->main->upstreams);
    if (qscfp == NULL) {
        return NGX_CONF_ERROR;
    }

    *qscfp = qscf;

    return NGX_CONF_OK;
}


/*
 * One "qqfail_server" line, in the upstream qscf: its names and
 * parameters.  "backup": whether the upstream's balancing method takes
 * backup servers.
 */

static char *
ngx_qqfail_conf_server_line(ngx_conf_t *cf, ngx_qqfail_srv_conf_t *qscf,
    ngx_uint_t backup)
{
    u_char               *p;
    size_t                len;
    time_t                fail_timeout;
    ngx_str_t            *value, s;
    ngx_int_t             weight, max_fails, max_conns;
    ngx_uint_t            i, j, weight_set;
    ngx_qqfail_name_t    *name, *n;
    ngx_qqfail_server_t  *server;

    value = cf->args->elts;
    weight_set = 0;

    server = ngx_array_push(qscf->servers);
    if (server == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(server, sizeof(ngx_qqfail_server_t));

    if (ngx_array_init(&server->names, cf->pool, 2,
                       sizeof(ngx_qqfail_name_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    weight = 1;
    max_fails = 1;
    max_conns = 0;
    fail_timeout = 10;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "weight=", 7) == 0) {

            weight = ngx_atoi(&value[i].data[7], value[i].len - 7);
            weight_set = 1;

            if (weight == NGX_ERROR || weight == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"weight\" value \"%s\" in "
                                   "\"qqfail_server\"", &value[i].data[7]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_fails=", 10) == 0) {

            max_fails = ngx_atoi(&value[i].data[10], value[i].len - 10);

            if (max_fails == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"max_fails\" value \"%s\" in "
                                   "\"qqfail_server\"", &value[i].data[10]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "fail_timeout=", 13) == 0) {

            s.len = value[i].len - 13;
            s.data = &value[i].data[13];

            fail_timeout = ngx_parse_time(&s, 1);

            if (fail_timeout == (time_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"fail_timeout\" value \"%V\" "
                                   "in \"qqfail_server\"", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_conns=", 10) == 0) {

            max_conns = ngx_atoi(&value[i].data[10], value[i].len - 10);

            if (max_conns == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"max_conns\" value \"%s\" in "
                                   "\"qqfail_server\"", &value[i].data[10]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "backup") == 0) {

            /* as nginx's "server": hash, ip_hash and random refuse it */

            if (!backup) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "balancing method does not support "
                                   "parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            server->backup = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "down") == 0) {
            server->down = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "service=", 8) == 0) {
            server->service.data = value[i].data + 8;
            server->service.len = value[i].len - 8;
            continue;
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"qqfail_server\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (server->names.nelts == NGX_QQFAIL_MAX_NAMES) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "too many names in \"qqfail_server\", "
                               "the maximum is %d", NGX_QQFAIL_MAX_NAMES);
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(&server->names);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_qqfail_parse_name(cf, &value[i], name) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid name \"%V\" in \"qqfail_server\", "
                               "a host name or an IP address with an "
                               "optional port is expected", &value[i]);
            return NGX_CONF_ERROR;
        }

        n = server->names.elts;

        for (j = 0; j + 1 < server->names.nelts; j++) {
            if (n[j].port == name->port
                && n[j].host.len == name->host.len
                && ngx_strncmp(n[j].host.data, name->host.data,
                               name->host.len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "name \"%V\" is duplicate in "
                                   "\"qqfail_server\"", &value[i]);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (server->names.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no name in \"qqfail_server\"");
        return NGX_CONF_ERROR;
    }

    if (server->service.data) {
        if (weight_set) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"weight\" cannot be used with "
                               "\"service\" in \"qqfail_server\", the "
                               "weights come from the SRV records");
            return NGX_CONF_ERROR;
        }

        if (ngx_qqfail_conf_service(cf, server) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /* the server's key in the shared zone and the state file */

    name = server->names.elts;
    len = 0;

    for (j = 0; j < server->names.nelts; j++) {
        len += name[j].key.len + 1;
    }

    server->key.data = ngx_pnalloc(cf->pool, len);
    if (server->key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = server->key.data;

    for (j = 0; j < server->names.nelts; j++) {
        if (j) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, name[j].key.data, name[j].key.len);
    }

    server->key.len = p - server->key.data;

    server->weight = weight;
    server->max_fails = max_fails;
    server->max_conns = max_conns;
    server->fail_timeout = fail_timeout;

    return NGX_CONF_OK;
}


/*
 * nginx's balancing methods in a qqfail upstream.  Their directives
 * ("hash", "ip_hash", "least_conn", "random") belong to nginx's own
 * modules, which come before ours in the module list, so the first match
 * of ngx_conf_handler() is always theirs.  While a front end's block is
 * parsed (from its preconfiguration to its postconfiguration) their set
 * handlers are the front end's wrapper, which calls nginx's handler (the
 * arguments, uscf->flags, which refuse "backup" with hash, ip_hash and
 * random, and the usual warnings) and records the method in the
 * upstream's configuration.  nginx's handlers are put back after the
 * block, or when the cycle is freed if the configuration failed before,
 * so never after this module is unloaded.  The modules are found by
 * name: an nginx built without one of them still loads this one.
 */

ngx_int_t
ngx_qqfail_methods_wrap(ngx_conf_t *cf, ngx_qqfail_method_t *methods,
    ngx_qqfail_method_pt wrapper)
{
    ngx_uint_t            i;
    ngx_module_t         *module;
    ngx_command_t        *cmd;
    ngx_pool_cleanup_t   *cln;
    ngx_qqfail_method_t  *m;

    cln = ngx_pool_cleanup_add(cf->cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_qqfail_methods_unwrap;
    cln->data = methods;

    for (m = methods; m->module; m++) {

        if (m->cmd) {
            continue;
        }

        for (i = 0; cf->cycle->modules[i]; i++) {
            module = cf->cycle->modules[i];

            if (module->commands == NULL
                || ngx_strcmp(module->name, m->module) != 0)
            {
                continue;
            }

            for (cmd = module->commands; cmd->name.len; cmd++) {
                if (cmd->name.len == m->name.len
                    && ngx_strcmp(cmd->name.data, m->name.data) == 0
                    && cmd->set != wrapper)
                {
                    m->cmd = cmd;
                    m->set = cmd->set;
                    cmd->set = wrapper;
                    break;
                }
            }

            break;
        }
    }

    return NGX_OK;
}


void
ngx_qqfail_methods_unwrap(void *data)
{
    ngx_qqfail_method_t  *methods = data;

    ngx_qqfail_method_t  *m;

    for (m = methods; m->module; m++) {
        if (m->cmd) {
            m->cmd->set = m->set;
            m->cmd = NULL;
        }
    }
}


ngx_qqfail_method_t *
ngx_qqfail_method_find(ngx_qqfail_method_t *methods, ngx_command_t *cmd)
{
    ngx_qqfail_method_t  *m;

    for (m = methods; m->module; m++) {
        if (m->cmd == cmd) {
            return m;
        }
    }

    return NULL;
}


/*
 * A wrapped balancing method directive (the front end finds the
 * upstream's configuration, qscf): nginx's handler, which sees the
 * method set before (after qqfail_server, nginx warns "load balancing
 * method redefined" only if a method was set before), then the method,
 * its key and its line in qscf; the front end's init_upstream stays
 */

char *
ngx_qqfail_conf_method(ngx_conf_t *cf, ngx_command_t *cmd, void *conf,
    ngx_qqfail_srv_conf_t *qscf)
{
    char                   *rv;
    ngx_uint_t              ours;
    ngx_command_t           slot;
    ngx_qqfail_front_t     *front;
    ngx_qqfail_method_t    *m;
    ngx_qqfail_upstream_t   u;

    front = qscf->front;

    m = ngx_qqfail_method_find(front->methods, cmd);
    if (m == NULL) {
        return "is wrapped by the qqfail module but not known to it";
    }

    qscf = ngx_qqfail_upstream_conf(cf, qscf);

    front->read(qscf->upstream, &u);

    ours = (u.init_upstream == front->init_upstream);

    if (ours) {
        front->set(qscf->upstream, qscf->method_init);
    }

    rv = m->set(cf, cmd, conf);

    front->read(qscf->upstream, &u);
    qscf->method_init = u.init_upstream;

    if (ours) {
        front->set(qscf->upstream, front->init_upstream);
    }

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    qscf->method_name = cmd->name;
    ngx_qqfail_conf_where(cf, &qscf->method_where);

    qscf->method = ngx_qqfail_method_of(cf);

    if (qscf->method == NGX_QQFAIL_METHOD_HASH
        || qscf->method == NGX_QQFAIL_METHOD_CHASH)
    {
        /* the key, value[1]: a complex value of the front end's */

        ngx_memzero(&slot, sizeof(ngx_command_t));
        slot.offset = offsetof(ngx_qqfail_srv_conf_t, key);

        qscf->key = NULL;

        return front->key(cf, &slot, qscf);
    }

    return NGX_CONF_OK;
}


/* the method a directive nginx accepted sets: NGX_QQFAIL_METHOD_* */

ngx_uint_t
ngx_qqfail_method_of(ngx_conf_t *cf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strcmp(value[0].data, "hash") == 0) {
        return (cf->args->nelts == 3) ? NGX_QQFAIL_METHOD_CHASH
                                      : NGX_QQFAIL_METHOD_HASH;
    }

    if (ngx_strcmp(value[0].data, "ip_hash") == 0) {
        return NGX_QQFAIL_METHOD_IP_HASH;
    }

    if (ngx_strcmp(value[0].data, "least_conn") == 0) {
        return NGX_QQFAIL_METHOD_LEAST_CONN;
    }

    /* random [two [least_conn]] */

    return (cf->args->nelts > 1) ? NGX_QQFAIL_METHOD_RANDOM_TWO
                                 : NGX_QQFAIL_METHOD_RANDOM;
}
