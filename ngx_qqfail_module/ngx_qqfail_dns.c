
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail_dns.h"


/*
 * One DNS message, read as the answer to one question and nothing else
 * (RFC 1035, section 4; RFC 2181, sections 8 and 10.1):
 *
 *   - a response (QR set) to a standard query (opcode 0) with exactly one
 *     question, the one asked: same name (case-insensitively), same type,
 *     class IN;
 *   - NXDOMAIN, SERVFAIL and REFUSED are returned as such, any other error
 *     rcode as NGX_QQFAIL_DNS_RCODE;
 *   - in the answer section only the CNAME chain that starts at the name
 *     asked is followed, at most NGX_QQFAIL_DNS_MAX_CNAMES links, and
 *     only the addresses of the name at its end are taken; every other
 *     record is ignored;
 *   - names are at most 255 octets, labels 63, and a compression pointer
 *     must point before the labels that lead to it, so it can never loop;
 *   - an SRV record's target must be a host name, its data exactly the
 *     record (ngx_qqfail_dns_srv()); a target "." is no record;
 *   - the AD bit of the header is returned as it is ("ad"): what it is
 *     worth is the caller's to say; the RRSIG records that a query with
 *     the DO bit brings are records of another type, checked for their
 *     form and ignored;
 *   - NS (the independence check): the NS records of the name at the end
 *     of the chain, their targets host names filling the data, as text;
 *   - SOA (the independence check): the zone of the name asked, as
 *     text: the owner of an SOA record of the name at the end of the
 *     chain in the answer, or else of the SOA record of the authority
 *     section (a NODATA answer, RFC 2308) whose owner is that name or one
 *     of its ancestors; an SOA record's data must be two names and the
 *     five numbers, exactly.
 *
 * The authority section is read only for an SOA question, and the
 * additional section only for an SRV question whose caller gave room for
 * its targets' addresses (ngx_qqfail_dns_extras()).
 */


#define NGX_QQFAIL_DNS_HLEN              12
#define NGX_QQFAIL_DNS_NAMELEN           255     /* wire form, with the root */
#define NGX_QQFAIL_DNS_HOPS              127     /* pointers in one name */

#define NGX_QQFAIL_DNS_CNAME             5
#define NGX_QQFAIL_DNS_IN                1

#define ngx_qqfail_dns_get16(p)                                               \
    (((ngx_uint_t) (p)[0] << 8) | (p)[1])

#define ngx_qqfail_dns_get32(p)                                               \
    (((uint32_t) (p)[0] << 24) | ((uint32_t) (p)[1] << 16)                    \
     | ((uint32_t) (p)[2] << 8) | (p)[3])


typedef struct {
    u_char             name[NGX_QQFAIL_DNS_NAMELEN];
    size_t             len;
} ngx_qqfail_dns_name_t;


typedef struct {
    ngx_qqfail_dns_name_t       owner;
    ngx_uint_t                  type;
    ngx_uint_t                  class;
    uint32_t                    ttl;
    size_t                      rdata;       /* offset in the message */
    size_t                      rdlen;
} ngx_qqfail_dns_rr_t;


static ngx_int_t ngx_qqfail_dns_encode(u_char *text, size_t len,
    ngx_qqfail_dns_name_t *name);
static ngx_int_t ngx_qqfail_dns_name(u_char *msg, size_t len,
    size_t *pos, ngx_qqfail_dns_name_t *name, const char **reason);
static ngx_int_t ngx_qqfail_dns_rr(u_char *msg, size_t len, size_t *pos,
    ngx_qqfail_dns_rr_t *rr, const char **reason);
static ngx_uint_t ngx_qqfail_dns_same(ngx_qqfail_dns_name_t *a,
    ngx_qqfail_dns_name_t *b);
static ngx_int_t ngx_qqfail_dns_srv(u_char *msg, ngx_qqfail_dns_rr_t *rr,
    ngx_qqfail_dns_srv_t *srv, const char **reason);
static ngx_int_t ngx_qqfail_dns_text(ngx_qqfail_dns_name_t *name,
    u_char *t, size_t *len);
static ngx_int_t ngx_qqfail_dns_data(u_char *msg, ngx_qqfail_dns_rr_t *rr,
    ngx_qqfail_dns_name_t *name, const char **reason);
static ngx_uint_t ngx_qqfail_dns_under(ngx_qqfail_dns_name_t *name,
    ngx_qqfail_dns_name_t *zone);
static ngx_int_t ngx_qqfail_dns_soa(u_char *msg, size_t len, size_t pos,
    ngx_uint_t ancount, ngx_qqfail_dns_name_t *cur,
    ngx_qqfail_dns_answer_t *ans);
static void ngx_qqfail_dns_extras(u_char *msg, size_t len, size_t pos,
    ngx_qqfail_dns_answer_t *ans);


ngx_int_t
ngx_qqfail_dns_parse(u_char *msg, size_t len, u_char *name, size_t nlen,
    ngx_uint_t qtype, ngx_qqfail_dns_answer_t *ans)
{
    size_t                 pos, answers, end, asize;
    uint32_t               ttl;
    ngx_uint_t             flags, qdcount, ancount, i, found;
    ngx_qqfail_dns_rr_t    rr;
    ngx_qqfail_dns_name_t  want, cur, next;

    ans->naddrs = 0;
    ans->nextras = 0;
    ans->ncnames = 0;
    ans->ttl = 0;
    ans->reason = NULL;
    ans->ad = 0;

    if (qtype == NGX_QQFAIL_DNS_A) {
        asize = 4;

    } else if (qtype == NGX_QQFAIL_DNS_AAAA) {
        asize = 16;

    } else if (qtype == NGX_QQFAIL_DNS_SRV
               || qtype == NGX_QQFAIL_DNS_NS
               || qtype == NGX_QQFAIL_DNS_SOA)
    {
        asize = 0;

    } else {
        ans->reason = "type asked is not A, AAAA, SRV, NS or SOA";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    if (asize == 0 && qtype != NGX_QQFAIL_DNS_SRV && ans->hosts == NULL) {
        ans->max = 0;
    }

    if (ngx_qqfail_dns_encode(name, nlen, &want) != NGX_OK) {
        ans->reason = "name asked is not a valid name";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    if (len < NGX_QQFAIL_DNS_HLEN) {
        ans->reason = "message shorter than a header";
        return NGX_QQFAIL_DNS_MALFORMED;
    }

    flags = ngx_qqfail_dns_get16(&msg[2]);
    qdcount = ngx_qqfail_dns_get16(&msg[4]);
    ancount = ngx_qqfail_dns_get16(&msg[6]);

    if (!(flags & 0x8000)) {
        ans->reason = "not a response (QR bit clear)";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    if (flags & 0x7800) {
        ans->reason = "opcode is not QUERY";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    if (qdcount != 1) {
        ans->reason = "not exactly one question";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    /* the question, echoed */

    pos = NGX_QQFAIL_DNS_HLEN;

    if (ngx_qqfail_dns_name(msg, len, &pos, &cur, &ans->reason)
        != NGX_OK)
    {
        return NGX_QQFAIL_DNS_MALFORMED;
    }

    if (len - pos < 4) {
        ans->reason = "question out of the message";
        return NGX_QQFAIL_DNS_MALFORMED;
    }

    if (!ngx_qqfail_dns_same(&cur, &want)) {
        ans->reason = "question name differs from the name asked";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    if (ngx_qqfail_dns_get16(&msg[pos]) != qtype) {
        ans->reason = "question type differs from the type asked";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    if (ngx_qqfail_dns_get16(&msg[pos + 2]) != NGX_QQFAIL_DNS_IN) {
        ans->reason = "question class is not IN";
        return NGX_QQFAIL_DNS_MISMATCH;
    }

    pos += 4;

    /*
     * the answer to the question asked: its AD bit (RFC 4035, section
     * 3.2.3, and RFC 6840, section 5.7), whatever its rcode
     */

    ans->ad = (flags & 0x0020) ? 1 : 0;

    switch (flags & 0x000f) {

    case 0:
        break;

    case 2:
        return NGX_QQFAIL_DNS_SERVFAIL;

    case 3:
        return NGX_QQFAIL_DNS_NXDOMAIN;

    case 5:
        return NGX_QQFAIL_DNS_REFUSED;

    default:
        ans->reason = "error rcode";
        return NGX_QQFAIL_DNS_RCODE;
    }

    /* every answer record must be well formed, the ignored ones too */

    answers = pos;

    for (i = 0; i < ancount; i++) {
        if (ngx_qqfail_dns_rr(msg, len, &pos, &rr, &ans->reason)
            != NGX_OK)
        {
            return NGX_QQFAIL_DNS_MALFORMED;
        }

        if (rr.class != NGX_QQFAIL_DNS_IN) {
            continue;
        }

        if (rr.type == NGX_QQFAIL_DNS_CNAME) {
            if (ngx_qqfail_dns_name(msg, rr.rdata + rr.rdlen, &rr.rdata,
                                    &next, &ans->reason)
                != NGX_OK)
            {
                return NGX_QQFAIL_DNS_MALFORMED;
            }

            if (rr.rdata != pos) {
                ans->reason = "CNAME data longer than its name";
                return NGX_QQFAIL_DNS_MALFORMED;
            }

        } else if (rr.type == qtype && qtype == NGX_QQFAIL_DNS_SRV) {
            if (ngx_qqfail_dns_srv(msg, &rr, NULL, &ans->reason)
                == NGX_ERROR)
            {
                return NGX_QQFAIL_DNS_MALFORMED;
            }

        } else if (rr.type == qtype && qtype == NGX_QQFAIL_DNS_NS) {
            if (ngx_qqfail_dns_data(msg, &rr, &next, &ans->reason)
                != NGX_OK)
            {
                return NGX_QQFAIL_DNS_MALFORMED;
            }

            if (ngx_qqfail_dns_text(&next, NULL, &end) != NGX_OK) {
                ans->reason = "NS target is not a host name";
                return NGX_QQFAIL_DNS_MALFORMED;
            }

        } else if (rr.type == qtype && qtype == NGX_QQFAIL_DNS_SOA) {
            if (ngx_qqfail_dns_data(msg, &rr, NULL, &ans->reason)
                != NGX_OK)
            {
                return NGX_QQFAIL_DNS_MALFORMED;
            }

        } else if (rr.type == qtype && rr.rdlen != asize) {
            ans->reason = "address of a wrong length";
            return NGX_QQFAIL_DNS_MALFORMED;
        }
    }

    end = pos;

    /* the CNAME chain from the name asked: cur is the question's name */

    ttl = 0xffffffff;

    for ( ;; ) {
        found = 0;
        pos = answers;

        for (i = 0; i < ancount; i++) {
            (void) ngx_qqfail_dns_rr(msg, len, &pos, &rr, &ans->reason);

            if (rr.type != NGX_QQFAIL_DNS_CNAME
                || rr.class != NGX_QQFAIL_DNS_IN
                || !ngx_qqfail_dns_same(&rr.owner, &cur))
            {
                continue;
            }

            if (found) {
                ans->reason = "two CNAME records for one name";
                return NGX_QQFAIL_DNS_MALFORMED;
            }

            found = 1;
            ttl = ngx_min(ttl, rr.ttl);

            (void) ngx_qqfail_dns_name(msg, rr.rdata + rr.rdlen,
                                       &rr.rdata, &next, &ans->reason);
        }

        if (!found) {
            break;
        }

        if (++ans->ncnames > NGX_QQFAIL_DNS_MAX_CNAMES) {
            ans->reason = "CNAME chain too long";
            return NGX_QQFAIL_DNS_MISMATCH;
        }

        cur = next;
    }

    if (qtype == NGX_QQFAIL_DNS_SOA) {
        return ngx_qqfail_dns_soa(msg, len, answers, ancount, &cur, ans);
    }

    /* the addresses of the name at the end of the chain */

    pos = answers;

    for (i = 0; i < ancount; i++) {
        (void) ngx_qqfail_dns_rr(msg, len, &pos, &rr, &ans->reason);

        if (rr.type != qtype
            || rr.class != NGX_QQFAIL_DNS_IN
            || !ngx_qqfail_dns_same(&rr.owner, &cur))
        {
            continue;
        }

        if (ans->naddrs == ans->max) {
            break;
        }

        if (qtype == NGX_QQFAIL_DNS_NS) {
            /* checked above */

            (void) ngx_qqfail_dns_data(msg, &rr, &next, &ans->reason);
            (void) ngx_qqfail_dns_text(&next, ans->hosts[ans->naddrs].text,
                                       &ans->hosts[ans->naddrs].len);

        } else if (qtype == NGX_QQFAIL_DNS_SRV) {

            /* a target "." says the service is not there: no record */

            if (ngx_qqfail_dns_srv(msg, &rr, &ans->srvs[ans->naddrs],
                                   &ans->reason)
                == NGX_DECLINED)
            {
                continue;
            }

        } else {
            ngx_memcpy(ans->addrs + ans->naddrs * asize, &msg[rr.rdata],
                       asize);
        }

        ans->naddrs++;

        ttl = ngx_min(ttl, rr.ttl);
    }

    ans->reason = NULL;

    if (ans->naddrs == 0) {
        return NGX_QQFAIL_DNS_NODATA;
    }

    ans->ttl = ttl;

    if (qtype == NGX_QQFAIL_DNS_SRV && ans->extras && ans->max_extras) {
        ngx_qqfail_dns_extras(msg, len, end, ans);
    }

    return NGX_QQFAIL_DNS_OK;
}


/*
 * The addresses of an SRV answer's targets that the provider added to the
 * additional section (RFC 2782): the A and AAAA records, class IN, whose
 * owner is the target of one of the records taken, and nothing else.
 * The authority section before it must be well formed to be crossed, and
 * every record of the section too; if one is not, no address is taken
 * from it (the targets are then asked), the SRV records stand.
 */

static void
ngx_qqfail_dns_extras(u_char *msg, size_t len, size_t pos,
    ngx_qqfail_dns_answer_t *ans)
{
    size_t                  asize;
    ngx_uint_t              i, k, n, nscount, arcount;
    const char             *reason;
    ngx_qqfail_dns_rr_t     rr;
    ngx_qqfail_dns_extra_t *x;
    ngx_qqfail_dns_name_t   targets[16];

    nscount = ngx_qqfail_dns_get16(&msg[8]);
    arcount = ngx_qqfail_dns_get16(&msg[10]);

    if (arcount == 0) {
        return;
    }

    for (k = 0; k < ans->naddrs && k < 16; k++) {
        if (ngx_qqfail_dns_encode(ans->srvs[k].target, ans->srvs[k].len,
                                  &targets[k])
            != NGX_OK)
        {
            targets[k].len = 0;
        }
    }

    for (i = 0; i < nscount; i++) {
        if (ngx_qqfail_dns_rr(msg, len, &pos, &rr, &reason) != NGX_OK) {
            return;
        }
    }

    n = 0;

    for (i = 0; i < arcount; i++) {
        if (ngx_qqfail_dns_rr(msg, len, &pos, &rr, &reason) != NGX_OK) {
            ans->nextras = 0;
            return;
        }

        if (rr.class != NGX_QQFAIL_DNS_IN
            || (rr.type != NGX_QQFAIL_DNS_A && rr.type != NGX_QQFAIL_DNS_AAAA))
        {
            continue;
        }

        asize = (rr.type == NGX_QQFAIL_DNS_A) ? 4 : 16;

        if (rr.rdlen != asize) {
            ans->nextras = 0;
            return;
        }

        for (k = 0; k < ans->naddrs && k < 16; k++) {
            if (targets[k].len == 0
                || !ngx_qqfail_dns_same(&rr.owner, &targets[k])
                || n == ans->max_extras)
            {
                continue;
            }

            x = &ans->extras[n++];
            x->srv = k;
            x->type = rr.type;
            x->ttl = rr.ttl;
            ngx_memcpy(x->addr, &msg[rr.rdata], asize);
        }
    }

    ans->nextras = n;
}


/* "www.example.com" to its wire form, lowercase; a final dot is allowed */

static ngx_int_t
ngx_qqfail_dns_encode(u_char *text, size_t len,
    ngx_qqfail_dns_name_t *name)
{
    u_char  *p, *last, *label;
    size_t   n, l;

    if (len && text[len - 1] == '.') {
        len--;
    }

    if (len == 0 || len + 2 > NGX_QQFAIL_DNS_NAMELEN) {
        return NGX_ERROR;
    }

    last = text + len;
    label = text;
    n = 0;

    for (p = text; p <= last; p++) {
        if (p < last && *p != '.') {
            continue;
        }

        l = p - label;

        if (l == 0 || l > 63) {
            return NGX_ERROR;
        }

        name->name[n++] = (u_char) l;

        while (label < p) {
            name->name[n++] = ngx_tolower(*label);
            label++;
        }

        label = p + 1;
    }

    name->name[n++] = '\0';
    name->len = n;

    return NGX_OK;
}


/*
 * A name at *pos, decompressed to its wire form in lowercase; *pos is moved
 * past the name as it is in place (past its first pointer).  A pointer must
 * point before the run of labels that led to it, so each jump goes back
 * and a name can never loop; the message is read only below "len".
 */

static ngx_int_t
ngx_qqfail_dns_name(u_char *msg, size_t len, size_t *pos,
    ngx_qqfail_dns_name_t *name, const char **reason)
{
    size_t      p, start, end, n, target;
    ngx_uint_t  c, i, hops;

    p = *pos;
    start = p;
    end = 0;
    n = 0;
    hops = 0;

    for ( ;; ) {
        if (p >= len) {
            *reason = "name out of the message";
            return NGX_ERROR;
        }

        c = msg[p];

        if (c == 0) {
            break;
        }

        if ((c & 0xc0) == 0xc0) {
            if (p + 1 >= len) {
                *reason = "name out of the message";
                return NGX_ERROR;
            }

            target = ((c & 0x3f) << 8) | msg[p + 1];

            if (target >= start || target < NGX_QQFAIL_DNS_HLEN) {
                *reason = "compression pointer not backwards";
                return NGX_ERROR;
            }

            if (++hops > NGX_QQFAIL_DNS_HOPS) {
                *reason = "too many compression pointers";
                return NGX_ERROR;
            }

            if (end == 0) {
                end = p + 2;
            }

            p = target;
            start = target;
            continue;
        }

        if (c & 0xc0) {
            *reason = "unknown label type";
            return NGX_ERROR;
        }

        /* the label, and at least the root after it */

        if (n + 1 + c + 1 > NGX_QQFAIL_DNS_NAMELEN) {
            *reason = "name longer than 255 octets";
            return NGX_ERROR;
        }

        if (len - p <= c) {
            *reason = "name out of the message";
            return NGX_ERROR;
        }

        name->name[n++] = (u_char) c;

        for (i = 1; i <= c; i++) {
            name->name[n++] = ngx_tolower(msg[p + i]);
        }

        p += 1 + c;
    }

    name->name[n++] = '\0';
    name->len = n;

    *pos = end ? end : p + 1;

    return NGX_OK;
}


static ngx_int_t
ngx_qqfail_dns_rr(u_char *msg, size_t len, size_t *pos,
    ngx_qqfail_dns_rr_t *rr, const char **reason)
{
    size_t  p;

    if (ngx_qqfail_dns_name(msg, len, pos, &rr->owner, reason)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = *pos;

    if (len - p < 10) {
        *reason = "record out of the message";
        return NGX_ERROR;
    }

    rr->type = ngx_qqfail_dns_get16(&msg[p]);
    rr->class = ngx_qqfail_dns_get16(&msg[p + 2]);
    rr->ttl = ngx_qqfail_dns_get32(&msg[p + 4]);
    rr->rdlen = ngx_qqfail_dns_get16(&msg[p + 8]);
    rr->rdata = p + 10;

    /* RFC 2181, section 8: a TTL with the top bit set is zero */

    if (rr->ttl & 0x80000000) {
        rr->ttl = 0;
    }

    if (len - rr->rdata < rr->rdlen) {
        *reason = "record data out of the message";
        return NGX_ERROR;
    }

    *pos = rr->rdata + rr->rdlen;

    return NGX_OK;
}


static ngx_uint_t
ngx_qqfail_dns_same(ngx_qqfail_dns_name_t *a,
    ngx_qqfail_dns_name_t *b)
{
    return a->len == b->len && ngx_memcmp(a->name, b->name, a->len) == 0;
}


/*
 * The data of an SRV record: priority, weight, port, and a target that is
 * a host name (RFC 2782: letters, digits, '-', and '_' as nginx takes
 * them), its name filling the rest of the data.  With srv NULL, only the
 * check.  NGX_DECLINED: the target is the root ("."), no service.
 */

static ngx_int_t
ngx_qqfail_dns_srv(u_char *msg, ngx_qqfail_dns_rr_t *rr,
    ngx_qqfail_dns_srv_t *srv, const char **reason)
{
    size_t                  pos, n;
    ngx_qqfail_dns_name_t   target;

    if (rr->rdlen < 7) {
        *reason = "SRV data shorter than a record";
        return NGX_ERROR;
    }

    pos = rr->rdata + 6;

    if (ngx_qqfail_dns_name(msg, rr->rdata + rr->rdlen, &pos, &target,
                            reason)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (pos != rr->rdata + rr->rdlen) {
        *reason = "SRV data longer than its target";
        return NGX_ERROR;
    }

    if (target.len == 1) {
        return NGX_DECLINED;
    }

    /* the labels as text, checked: a target is looked up in its turn */

    if (ngx_qqfail_dns_text(&target, srv ? srv->target : NULL, &n)
        != NGX_OK)
    {
        *reason = "SRV target is not a host name";
        return NGX_ERROR;
    }

    if (srv) {
        srv->priority = ngx_qqfail_dns_get16(&msg[rr->rdata]);
        srv->weight = ngx_qqfail_dns_get16(&msg[rr->rdata + 2]);
        srv->port = (in_port_t) ngx_qqfail_dns_get16(&msg[rr->rdata + 4]);
        srv->len = n;
    }

    return NGX_OK;
}



/*
 * A host name's labels as text, checked (RFC 2782 and RFC 1123: letters,
 * digits, '-', and '_' as nginx takes them), with t NULL only the check;
 * the root is no host name
 */

static ngx_int_t
ngx_qqfail_dns_text(ngx_qqfail_dns_name_t *name, u_char *t, size_t *len)
{
    u_char  *p;
    size_t   n, l;

    if (name->len < 2) {
        return NGX_ERROR;
    }

    p = name->name;
    n = 0;

    while (*p) {
        l = *p++;

        if (n) {
            if (t) {
                t[n] = '.';
            }

            n++;
        }

        while (l--) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                  || *p == '-' || *p == '_'))
            {
                return NGX_ERROR;
            }

            if (t) {
                t[n] = *p;
            }

            n++;
            p++;
        }
    }

    *len = n;

    return NGX_OK;
}


/*
 * The data of an NS record (with name: its target, filling the data) or
 * of an SOA record (name NULL: MNAME, RNAME, then serial, refresh,
 * retry, expire and minimum, RFC 1035, section 3.3.13, exactly)
 */

static ngx_int_t
ngx_qqfail_dns_data(u_char *msg, ngx_qqfail_dns_rr_t *rr,
    ngx_qqfail_dns_name_t *name, const char **reason)
{
    size_t                  pos, end;
    ngx_qqfail_dns_name_t   tmp;

    pos = rr->rdata;
    end = rr->rdata + rr->rdlen;

    if (name) {
        if (ngx_qqfail_dns_name(msg, end, &pos, name, reason) != NGX_OK) {
            return NGX_ERROR;
        }

        if (pos != end) {
            *reason = "NS data longer than its name";
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_qqfail_dns_name(msg, end, &pos, &tmp, reason) != NGX_OK
        || ngx_qqfail_dns_name(msg, end, &pos, &tmp, reason) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (end - pos != 20) {
        *reason = "SOA data of a wrong length";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* is "name" the zone's apex or a name in it, on a label boundary */

static ngx_uint_t
ngx_qqfail_dns_under(ngx_qqfail_dns_name_t *name,
    ngx_qqfail_dns_name_t *zone)
{
    size_t  o;

    for (o = 0; o < name->len; o += 1 + name->name[o]) {
        if (name->len - o == zone->len
            && ngx_memcmp(&name->name[o], zone->name, zone->len) == 0)
        {
            return 1;
        }

        if (name->name[o] == 0) {
            break;
        }
    }

    return 0;
}


/*
 * The zone of "cur" (the end of the chain): an SOA record of that name
 * in the answer, else the SOA of the authority section whose owner is
 * that name or one of its ancestors; every authority record must be
 * well formed.  The root zone is no answer.
 */

static ngx_int_t
ngx_qqfail_dns_soa(u_char *msg, size_t len, size_t pos,
    ngx_uint_t ancount, ngx_qqfail_dns_name_t *cur,
    ngx_qqfail_dns_answer_t *ans)
{
    uint32_t               ttl;
    ngx_int_t              found;
    ngx_uint_t             i, nscount;
    ngx_qqfail_dns_rr_t    rr;
    ngx_qqfail_dns_name_t  zone;

    nscount = ngx_qqfail_dns_get16(&msg[8]);
    found = 0;
    ttl = 0;

    for (i = 0; i < ancount; i++) {
        (void) ngx_qqfail_dns_rr(msg, len, &pos, &rr, &ans->reason);

        if (!found && rr.type == NGX_QQFAIL_DNS_SOA
            && rr.class == NGX_QQFAIL_DNS_IN
            && ngx_qqfail_dns_same(&rr.owner, cur))
        {
            zone = rr.owner;
            ttl = rr.ttl;
            found = 1;
        }
    }

    for (i = 0; i < nscount; i++) {
        if (ngx_qqfail_dns_rr(msg, len, &pos, &rr, &ans->reason) != NGX_OK) {
            return NGX_QQFAIL_DNS_MALFORMED;
        }

        if (rr.type != NGX_QQFAIL_DNS_SOA || rr.class != NGX_QQFAIL_DNS_IN) {
            continue;
        }

        if (ngx_qqfail_dns_data(msg, &rr, NULL, &ans->reason) != NGX_OK) {
            return NGX_QQFAIL_DNS_MALFORMED;
        }

        if (!found && ngx_qqfail_dns_under(cur, &rr.owner)) {
            zone = rr.owner;
            ttl = rr.ttl;
            found = 1;
        }
    }

    ans->reason = NULL;

    if (!found || ans->max == 0) {
        return NGX_QQFAIL_DNS_NODATA;
    }

    if (ngx_qqfail_dns_text(&zone, ans->hosts[0].text, &ans->hosts[0].len)
        != NGX_OK)
    {
        /* the root, or a zone that is no host name */
        return NGX_QQFAIL_DNS_NODATA;
    }

    ans->naddrs = 1;
    ans->ttl = ttl;

    return NGX_QQFAIL_DNS_OK;
}
