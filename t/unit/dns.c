
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


/*
 * Drives ngx_qqfail_dns_parse() for t/013-dns-srv.t: each line of the
 * standard input is one case,
 *
 *     TYPE NAME MESSAGE
 *
 * TYPE A, AAAA, SRV, NS or SOA; NAME the name asked; MESSAGE the answer in hex.
 * Each answer line is "RC N TTL [PRIORITY WEIGHT PORT TARGET ...]", RC the
 * result (ok, nodata, nxdomain, servfail, refused, rcode, malformed,
 * mismatch), N the records taken, the SRV records after (the NS targets, the
 * SOA's zone: "=NAME"), "ad" when the
 * AD bit was set, then the reason of a refusal after a '#'.
 */


#include <stdio.h>
#include <string.h>

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail_dns.h"


static const char  *results[] = { "ok", "nodata", "nxdomain", "servfail",
                                  "refused", "rcode", "malformed",
                                  "mismatch" };


int
main(void)
{
    char                     line[65536], type[16], name[512], hex[32768];
    size_t                   len, i;
    ngx_int_t                rc;
    ngx_uint_t               qtype, k;
    unsigned int             byte;
    ngx_qqfail_dns_srv_t     srvs[8];
    ngx_qqfail_dns_host_t    hosts[8];
    ngx_qqfail_dns_extra_t   extras[8];
    ngx_qqfail_dns_answer_t  ans;
    static u_char            msg[16384], addrs[8 * 16];

    while (fgets(line, sizeof(line), stdin) != NULL) {

        if (sscanf(line, "%15s %511s %32767s", type, name, hex) != 3) {
            printf("bad input\n");
            continue;
        }

        qtype = strcmp(type, "SRV") == 0 ? NGX_QQFAIL_DNS_SRV
                : strcmp(type, "NS") == 0 ? NGX_QQFAIL_DNS_NS
                : strcmp(type, "SOA") == 0 ? NGX_QQFAIL_DNS_SOA
                : strcmp(type, "AAAA") == 0 ? NGX_QQFAIL_DNS_AAAA
                : NGX_QQFAIL_DNS_A;

        len = strlen(hex) / 2;

        for (i = 0; i < len; i++) {
            if (sscanf(&hex[2 * i], "%2x", &byte) != 1) {
                break;
            }

            msg[i] = (u_char) byte;
        }

        ans.addrs = addrs;
        ans.srvs = srvs;
        ans.hosts = hosts;
        ans.max = 8;
        ans.extras = extras;
        ans.max_extras = 8;

        rc = ngx_qqfail_dns_parse(msg, len, (u_char *) name, strlen(name),
                                  qtype, &ans);

        printf("%s %lu %lu", results[rc], (unsigned long) ans.naddrs,
               (unsigned long) (rc == NGX_QQFAIL_DNS_OK ? ans.ttl : 0));

        for (k = 0; qtype == NGX_QQFAIL_DNS_SRV && k < ans.naddrs; k++) {
            printf(" %lu %lu %u %.*s", (unsigned long) srvs[k].priority,
                   (unsigned long) srvs[k].weight, srvs[k].port,
                   (int) srvs[k].len, srvs[k].target);
        }

        for (k = 0; (qtype == NGX_QQFAIL_DNS_NS
                     || qtype == NGX_QQFAIL_DNS_SOA)
                    && k < ans.naddrs; k++)
        {
            printf(" =%.*s", (int) hosts[k].len, hosts[k].text);
        }

        /* the targets' addresses from the additional section */

        for (k = 0; k < ans.nextras; k++) {
            if (extras[k].type == NGX_QQFAIL_DNS_A) {
                printf(" +%lu=%u.%u.%u.%u", (unsigned long) extras[k].srv,
                       extras[k].addr[0], extras[k].addr[1],
                       extras[k].addr[2], extras[k].addr[3]);

            } else {
                printf(" +%lu=aaaa", (unsigned long) extras[k].srv);
            }
        }

        if (ans.ad) {
            printf(" ad");
        }

        if (ans.reason) {
            printf(" # %s", ans.reason);
        }

        printf("\n");
        fflush(stdout);
    }

    return 0;
}
