
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


/*
 * libFuzzer harness of the DNS answer parser (ngx_qqfail_dns.c):
 * the first octet of an input picks the question (one of the names below,
 * A, AAAA, SRV, NS or SOA, and how many records fit), the rest is the message, as a
 * provider sends it.  Besides the sanitizers, the harness checks what the
 * resolver relies on, and aborts when it does not hold.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail_dns.h"


#define NGX_QQFAIL_FUZZ_MAX_ADDRS       32


static ngx_str_t  ngx_qqfail_fuzz_names[] = {
    ngx_string("victim.test"),
    ngx_string("server1.example.com"),
    ngx_string("a.b.c.d.e.f.g.h.example.net"),
    ngx_string("x")
};


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                  *msg;
    size_t                   len;
    ngx_int_t                rc;
    ngx_str_t               *name;
    u_char                   c;
    ngx_uint_t               sel, qtype, max, i, j;
    ngx_qqfail_dns_answer_t  ans;
    ngx_qqfail_dns_srv_t     srvs[NGX_QQFAIL_FUZZ_MAX_ADDRS];
    ngx_qqfail_dns_host_t    hosts[NGX_QQFAIL_FUZZ_MAX_ADDRS];
    ngx_qqfail_dns_extra_t   extras[NGX_QQFAIL_FUZZ_MAX_ADDRS];
    u_char                   addrs[NGX_QQFAIL_FUZZ_MAX_ADDRS * 16];

    if (size < 1) {
        return 0;
    }

    sel = data[0];
    name = &ngx_qqfail_fuzz_names[sel & 3];
    qtype = (sel & 16) ? ((sel & 32) ? NGX_QQFAIL_DNS_NS : NGX_QQFAIL_DNS_SRV)
            : (sel & 32) ? NGX_QQFAIL_DNS_SOA
            : (sel & 4) ? NGX_QQFAIL_DNS_AAAA : NGX_QQFAIL_DNS_A;
    max = (sel & 8) ? 1 : NGX_QQFAIL_FUZZ_MAX_ADDRS;

    /* a copy of exactly the message: a read past it is caught */

    len = size - 1;

    msg = malloc(len ? len : 1);
    if (msg == NULL) {
        return 0;
    }

    ngx_memcpy(msg, data + 1, len);

    ngx_memset(addrs, 0xa5, sizeof(addrs));
    ans.addrs = addrs;
    ans.srvs = srvs;
    ans.hosts = hosts;
    ans.max = max;
    ans.extras = extras;
    ans.max_extras = max;

    rc = ngx_qqfail_dns_parse(msg, len, name->data, name->len, qtype,
                              &ans);

    if (rc < NGX_QQFAIL_DNS_OK || rc > NGX_QQFAIL_DNS_MISMATCH) {
        abort();
    }

    /* addresses only with OK, at least one, never more than room for */

    if ((rc == NGX_QQFAIL_DNS_OK) != (ans.naddrs > 0)
        || ans.naddrs > max
        || ans.ncnames > NGX_QQFAIL_DNS_MAX_CNAMES + 1)
    {
        abort();
    }

    /* targets' addresses: only for an SRV answer, of a record it has */

    if (ans.nextras > max
        || (ans.nextras && (rc != NGX_QQFAIL_DNS_OK
                            || qtype != NGX_QQFAIL_DNS_SRV)))
    {
        abort();
    }

    for (i = 0; i < ans.nextras; i++) {
        if (extras[i].srv >= ans.naddrs
            || (extras[i].type != NGX_QQFAIL_DNS_A
                && extras[i].type != NGX_QQFAIL_DNS_AAAA))
        {
            abort();
        }
    }

    /* a TTL fits in an int (RFC 2181: the top bit set is zero) */

    if (rc == NGX_QQFAIL_DNS_OK && ans.ttl > 0x7fffffff) {
        abort();
    }

    /* the AD bit (qqfail_dnssec) only as the header has it */

    if (ans.ad && (len < 12 || !(msg[3] & 0x20))) {
        abort();
    }

    /* a refused message says why, for the log */

    if ((rc == NGX_QQFAIL_DNS_MALFORMED
         || rc == NGX_QQFAIL_DNS_MISMATCH
         || rc == NGX_QQFAIL_DNS_RCODE)
        && ans.reason == NULL)
    {
        abort();
    }

    /* an SRV target is a host name, as text, that fits */

    for (i = 0; qtype == NGX_QQFAIL_DNS_SRV && i < ans.naddrs; i++) {
        if (srvs[i].len == 0 || srvs[i].len >= NGX_QQFAIL_DNS_TEXTLEN) {
            abort();
        }

        for (j = 0; j < srvs[i].len; j++) {
            c = srvs[i].target[j];

            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                  || c == '-' || c == '_' || c == '.'))
            {
                abort();
            }
        }
    }

    /*
     * NS targets and an SOA's zone are host names, as text, that fit; an
     * SOA answer names one zone, the name asked or one of its ancestors
     */

    for (i = 0; (qtype == NGX_QQFAIL_DNS_NS || qtype == NGX_QQFAIL_DNS_SOA)
                && i < ans.naddrs; i++)
    {
        if (hosts[i].len == 0 || hosts[i].len >= NGX_QQFAIL_DNS_TEXTLEN) {
            abort();
        }

        for (j = 0; j < hosts[i].len; j++) {
            c = hosts[i].text[j];

            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                  || c == '-' || c == '_' || c == '.'))
            {
                abort();
            }
        }
    }

    if (qtype == NGX_QQFAIL_DNS_SOA && rc == NGX_QQFAIL_DNS_OK
        && (ans.naddrs != 1 || hosts[0].len > name->len
            || ngx_strncmp(hosts[0].text,
                               name->data + name->len - hosts[0].len,
                               hosts[0].len) != 0
            || (hosts[0].len < name->len
                && name->data[name->len - hosts[0].len - 1] != '.'))
        && ans.ncnames == 0)
    {
        abort();
    }

    /* only a response can be accepted */

    if (rc == NGX_QQFAIL_DNS_OK && (len < 12 || !(msg[2] & 0x80))) {
        abort();
    }

    free(msg);

    return 0;
}
