
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


/*
 * libFuzzer harness of the state-file parser (ngx_qqfail_text.c):
 * an input is a whole file, as ngx_qqfail_state_load() reads it,
 * with the module's limits (8 names, 32 addresses a line).  Besides the
 * sanitizers, the harness checks each server line the parser hands over
 * and what it says about the file, and aborts when it does not hold.
 * Every line that is read is written again as the module writes it
 * (ngx_qqfail_state_escape(), an address as "ip:port" or
 * "[ip6]:port") and must read back as itself.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail_text.h"


#define NGX_QQFAIL_FUZZ_MAX_NAMES       8
#define NGX_QQFAIL_FUZZ_MAX_ADDRS       32


typedef struct {
    u_char                          *buf;
    size_t                           len;
    ngx_uint_t                       lines;      /* "s" lines handed over */
    ngx_uint_t                       last_line;
    ngx_uint_t                       nl;         /* newlines in the file */
    ngx_uint_t                       again;      /* a second reading */
    ngx_qqfail_state_line_t         *first;      /* what it must read */
} ngx_qqfail_fuzz_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ngx_int_t ngx_qqfail_fuzz_line(ngx_qqfail_state_parser_t *sp,
    ngx_qqfail_state_line_t *sl);
static ngx_int_t ngx_qqfail_fuzz_again(
    ngx_qqfail_state_parser_t *sp, ngx_qqfail_state_line_t *sl);
static void ngx_qqfail_fuzz_within(ngx_qqfail_fuzz_t *fz,
    ngx_str_t *s);
static size_t ngx_qqfail_fuzz_addr_text(u_char *p,
    ngx_qqfail_state_addr_t *addr);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    *buf, *p;
    size_t                     i;
    uint64_t                   n;
    ngx_int_t                  rc;
    ngx_qqfail_fuzz_t          fz;
    ngx_qqfail_state_parser_t  sp;
    ngx_qqfail_state_addr_t    addrs[NGX_QQFAIL_FUZZ_MAX_ADDRS];

    /* a copy of exactly the file: a read past it is caught */

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }

    ngx_memcpy(buf, data, size);

    ngx_memzero(&fz, sizeof(ngx_qqfail_fuzz_t));
    fz.buf = buf;
    fz.len = size;

    for (i = 0; i < size; i++) {
        if (data[i] == '\n') {
            fz.nl++;
        }
    }

    ngx_memzero(&sp, sizeof(ngx_qqfail_state_parser_t));
    sp.max_names = NGX_QQFAIL_FUZZ_MAX_NAMES;
    sp.max_addrs = NGX_QQFAIL_FUZZ_MAX_ADDRS;
    sp.addrs = addrs;
    sp.handler = ngx_qqfail_fuzz_line;
    sp.data = &fz;

    rc = ngx_qqfail_state_parse(buf, size, &sp);

    if (rc == NGX_OK) {

        /* a whole file: no error, one line per newline, "end N" last */

        if (sp.err != NULL || sp.line != fz.nl || size == 0
            || data[size - 1] != '\n')
        {
            abort();
        }

        for (p = (u_char *) data + size - 1;
             p > (u_char *) data && p[-1] != '\n';
             p--)
        {
            /* void */
        }

        /*
         * words are separated by one space or more, and a line may start
         * with spaces, as the parser reads every line
         */

        while (*p == ' ') {
            p++;
        }

        if ((size_t) ((u_char *) data + size - p) < sizeof("end 0\n") - 1
            || ngx_strncmp(p, "end ", 4) != 0)
        {
            abort();
        }

        for (p += 4; *p == ' '; p++) { /* void */ }

        for (n = 0; *p != '\n'; p++) {
            if (*p < '0' || *p > '9') {
                abort();
            }

            n = n * 10 + (*p - '0');

            if (n > fz.lines) {
                abort();
            }
        }

        if (n != fz.lines) {
            abort();
        }

    } else if (rc == NGX_ERROR) {

        /* one reason and its line: one past the last if it is cut short */

        if (sp.err == NULL || sp.line == 0 || sp.line > fz.nl + 1) {
            abort();
        }

    } else {
        abort();
    }

    free(buf);

    return 0;
}


static ngx_int_t
ngx_qqfail_fuzz_line(ngx_qqfail_state_parser_t *sp,
    ngx_qqfail_state_line_t *sl)
{
    u_char                    *file, *p;
    size_t                     size;
    ngx_uint_t                 i;
    ngx_qqfail_fuzz_t         *fz, again;
    struct sockaddr_in        *sin;
    struct sockaddr_in6       *sin6;
    ngx_qqfail_state_parser_t  sp2;
    ngx_qqfail_state_addr_t    addrs[NGX_QQFAIL_FUZZ_MAX_ADDRS];

    fz = sp->data;

    /* lines in order, each in the file, its strings too */

    if (sp->line <= fz->last_line || sp->line < 2 || sp->line > fz->nl) {
        abort();
    }

    fz->last_line = sp->line;
    fz->lines++;

    ngx_qqfail_fuzz_within(fz, &sl->upstream);
    ngx_qqfail_fuzz_within(fz, &sl->names);

    if (sl->names.len == 0 || sl->active >= sp->max_names
        || sl->last_success < 0
        || sl->naddrs == 0 || sl->naddrs > sp->max_addrs
        || sl->addrs != sp->addrs)
    {
        abort();
    }

    for (i = 0; i < sl->naddrs; i++) {
        ngx_qqfail_fuzz_within(fz, &sl->addrs[i].text);

        switch (sl->addrs[i].sockaddr.sockaddr.sa_family) {

        case AF_INET:
            sin = &sl->addrs[i].sockaddr.sockaddr_in;

            if (sl->addrs[i].socklen != sizeof(struct sockaddr_in)
                || ntohs(sin->sin_port) == 0)
            {
                abort();
            }

            break;

        case AF_INET6:
            sin6 = &sl->addrs[i].sockaddr.sockaddr_in6;

            if (sl->addrs[i].socklen != sizeof(struct sockaddr_in6)
                || ntohs(sin6->sin6_port) == 0)
            {
                abort();
            }

            break;

        default:
            abort();
        }
    }

    if (fz->again) {
        return ngx_qqfail_fuzz_again(sp, sl);
    }

    /* the line as the module writes it reads back as itself */

    size = sizeof(NGX_QQFAIL_STATE_HEADER) + 3 * sl->upstream.len
           + sl->names.len + 2 * NGX_INT_T_LEN + 16
           + sl->naddrs * (NGX_INET6_ADDRSTRLEN + 10)
           + sizeof("end 1\n");

    file = malloc(size);
    if (file == NULL) {
        abort();
    }

    p = ngx_cpymem(file, NGX_QQFAIL_STATE_HEADER,
                   sizeof(NGX_QQFAIL_STATE_HEADER) - 1);
    p = ngx_cpymem(p, "s ", 2);
    p = ngx_qqfail_state_escape(p, sl->upstream.data, sl->upstream.len);
    *p++ = ' ';
    p = ngx_cpymem(p, sl->names.data, sl->names.len);
    p += snprintf((char *) p, 2 * NGX_INT_T_LEN + 4, " %lu %lld",
                  (unsigned long) sl->active, (long long) sl->last_success);

    for (i = 0; i < sl->naddrs; i++) {
        *p++ = ' ';
        p += ngx_qqfail_fuzz_addr_text(p, &sl->addrs[i]);
    }

    p = ngx_cpymem(p, "\nend 1\n", 7);

    if ((size_t) (p - file) > size) {
        abort();
    }

    ngx_memzero(&again, sizeof(ngx_qqfail_fuzz_t));
    again.buf = file;
    again.len = p - file;
    again.nl = 3;          /* the line is line 2 */
    again.again = 1;
    again.first = sl;

    ngx_memzero(&sp2, sizeof(ngx_qqfail_state_parser_t));
    sp2.max_names = sp->max_names;
    sp2.max_addrs = sp->max_addrs;
    sp2.addrs = addrs;
    sp2.handler = ngx_qqfail_fuzz_line;
    sp2.data = &again;

    if (ngx_qqfail_state_parse(file, p - file, &sp2) != NGX_OK
        || again.lines != 1)
    {
        abort();
    }

    free(file);

    return NGX_OK;
}


/* the second reading: the same line */

static ngx_int_t
ngx_qqfail_fuzz_again(ngx_qqfail_state_parser_t *sp,
    ngx_qqfail_state_line_t *sl)
{
    ngx_uint_t                i;
    ngx_qqfail_fuzz_t        *fz;
    ngx_qqfail_state_line_t  *first;

    fz = sp->data;
    first = fz->first;

    if (sl->upstream.len != first->upstream.len
        || ngx_memcmp(sl->upstream.data, first->upstream.data,
                      sl->upstream.len) != 0
        || sl->names.len != first->names.len
        || ngx_memcmp(sl->names.data, first->names.data, sl->names.len) != 0
        || sl->active != first->active
        || sl->last_success != first->last_success
        || sl->naddrs != first->naddrs)
    {
        abort();
    }

    for (i = 0; i < sl->naddrs; i++) {
        if (sl->addrs[i].socklen != first->addrs[i].socklen
            || ngx_memcmp(&sl->addrs[i].sockaddr, &first->addrs[i].sockaddr,
                          sl->addrs[i].socklen) != 0)
        {
            abort();
        }
    }

    return NGX_OK;
}


static void
ngx_qqfail_fuzz_within(ngx_qqfail_fuzz_t *fz, ngx_str_t *s)
{
    if (s->data < fz->buf || s->data > fz->buf + fz->len
        || s->len > (size_t) (fz->buf + fz->len - s->data))
    {
        abort();
    }
}


/* as ngx_sock_ntop() with its port */

static size_t
ngx_qqfail_fuzz_addr_text(u_char *p, ngx_qqfail_state_addr_t *addr)
{
    char                  text[NGX_INET6_ADDRSTRLEN + 1];
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    if (addr->sockaddr.sockaddr.sa_family == AF_INET) {
        sin = &addr->sockaddr.sockaddr_in;

        if (inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) == NULL) {
            abort();
        }

        return sprintf((char *) p, "%s:%u", text, ntohs(sin->sin_port));
    }

    sin6 = &addr->sockaddr.sockaddr_in6;

    if (inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)) == NULL) {
        abort();
    }

    return sprintf((char *) p, "[%s]:%u", text, ntohs(sin6->sin6_port));
}
