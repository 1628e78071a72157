
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail_text.h"


/*
 * The words the status page, the log and the state file use, by the
 * constants of ngx_qqfail.h and ngx_qqfail_policy.h: where a server's
 * addresses come from (NGX_QQFAIL_SOURCE_*), why a lookup failed
 * (NGX_QQFAIL_ERR_*), why an address was refused (NGX_QQFAIL_REFUSED_*)
 */

/* by NGX_QQFAIL_METHOD_*, as the directives are written */

ngx_str_t  ngx_qqfail_methods[] = {
    ngx_string("round_robin"),
    ngx_string("hash"),
    ngx_string("hash consistent"),
    ngx_string("ip_hash"),
    ngx_string("least_conn"),
    ngx_string("random"),
    ngx_string("random two")
};


ngx_str_t  ngx_qqfail_sources[] = {
    ngx_string("none"),
    ngx_string("live"),
    ngx_string("stale"),
    ngx_string("state_file"),
    ngx_string("literal")
};


ngx_str_t  ngx_qqfail_errors[] = {
    ngx_string("timeout"),
    ngx_string("servfail"),
    ngx_string("nxdomain"),
    ngx_string("refused"),
    ngx_string("other"),
    ngx_string("bad_answer"),
    ngx_string("unvalidated")
};


ngx_str_t  ngx_qqfail_refusals[] = {
    ngx_null_string,
    ngx_string("an IPv6 address while \"qqfail_ipv6\" is off"),
    ngx_string("an address no backend can have (unspecified, broadcast, "
               "multicast or link-local)"),
    ngx_string("a cloud metadata service address, which only a "
               "\"qqfail_allow\" rule naming it lets through"),
    ngx_string("one of this nginx's own listen sockets (a request loop)"),
    ngx_string("outside every \"qqfail_allow\" rule")
};


/*
 * The state file, version 1: text, one line per server.
 *
 *     qqfail-state 1
 *     s UPSTREAM NAME,NAME,... ACTIVE LAST_SUCCESS ADDRESS ...
 *     end COUNT
 *
 * NAME and ADDRESS carry their port; ACTIVE is the index of the name the
 * addresses came from.  A file without its "end" line is truncated.
 *
 * Numbers, %XX and escaping are done here rather than with ngx_atoi(),
 * ngx_hextoi() or ngx_escape_json(), with the same results: this file
 * needs no nginx object, and the fuzzers test what the module runs.
 */


static ngx_int_t ngx_qqfail_state_word(u_char **pos, u_char *last,
    ngx_str_t *word);
static ngx_int_t ngx_qqfail_state_unescape(ngx_str_t *s);
static ngx_int_t ngx_qqfail_state_addr(ngx_str_t *word,
    ngx_qqfail_state_addr_t *addr);
static ngx_int_t ngx_qqfail_text_number(u_char *p, size_t len,
    uint64_t max, uint64_t *value);
static ngx_int_t ngx_qqfail_text_hex(u_char c);
static size_t ngx_qqfail_utf8_len(u_char *p, size_t len);
static u_char *ngx_qqfail_text_escape_run(u_char *p, ngx_uint_t how,
    u_char *s, size_t len);


/*
 * On an error, sp->line and sp->err say where and why; the first error
 * refuses the whole file.
 */

ngx_int_t
ngx_qqfail_state_parse(u_char *buf, size_t len,
    ngx_qqfail_state_parser_t *sp)
{
    u_char                  *p, *eol, *last;
    uint64_t                 n;
    ngx_int_t                rc;
    ngx_str_t                word;
    ngx_uint_t               count, ended;
    ngx_qqfail_state_line_t  sl;

    last = buf + len;

    if (len < sizeof(NGX_QQFAIL_STATE_HEADER) - 1
        || ngx_strncmp(buf, "qqfail-state ", 13) != 0)
    {
        sp->line = 1;
        sp->err = "not a qqfail state file";
        return NGX_ERROR;
    }

    if (ngx_strncmp(buf, NGX_QQFAIL_STATE_HEADER,
                    sizeof(NGX_QQFAIL_STATE_HEADER) - 1)
        != 0)
    {
        sp->line = 1;
        sp->err = "unsupported version";
        return NGX_ERROR;
    }

    p = buf + sizeof(NGX_QQFAIL_STATE_HEADER) - 1;
    sp->line = 1;
    count = 0;
    ended = 0;

    while (p < last) {
        sp->line++;

        eol = ngx_strlchr(p, last, '\n');

        if (eol == NULL) {
            sp->err = "unterminated line (truncated file)";
            return NGX_ERROR;
        }

        if (ended) {
            sp->err = "data after the end line";
            return NGX_ERROR;
        }

        if (eol == p || *p == '#') {
            p = eol + 1;
            continue;
        }

        if (ngx_qqfail_state_word(&p, eol, &word) != NGX_OK) {
            sp->err = "invalid characters";
            return NGX_ERROR;
        }

        if (word.len == 3 && ngx_strncmp(word.data, "end", 3) == 0) {
            if (ngx_qqfail_state_word(&p, eol, &word) != NGX_OK) {
                sp->err = "invalid end line";
                return NGX_ERROR;
            }

            if (ngx_qqfail_text_number(word.data, word.len,
                                       NGX_MAX_INT_T_VALUE, &n)
                != NGX_OK
                || n != count || p != eol)
            {
                sp->err = "wrong count in the end line";
                return NGX_ERROR;
            }

            ended = 1;
            p = eol + 1;
            continue;
        }

        if (word.len != 1 || word.data[0] != 's') {
            sp->err = "unknown line type";
            return NGX_ERROR;
        }

        count++;

        if (ngx_qqfail_state_word(&p, eol, &sl.upstream) != NGX_OK
            || ngx_qqfail_state_word(&p, eol, &sl.names) != NGX_OK)
        {
            sp->err = "invalid server line";
            return NGX_ERROR;
        }

        if (ngx_qqfail_state_unescape(&sl.upstream) != NGX_OK) {
            sp->err = "invalid upstream name";
            return NGX_ERROR;
        }

        if (ngx_qqfail_state_word(&p, eol, &word) != NGX_OK
            || ngx_qqfail_text_number(word.data, word.len,
                                      NGX_MAX_INT_T_VALUE, &n)
               != NGX_OK
            || n >= sp->max_names)
        {
            sp->err = "invalid name index";
            return NGX_ERROR;
        }

        sl.active = (ngx_uint_t) n;

        if (ngx_qqfail_state_word(&p, eol, &word) != NGX_OK
            || ngx_qqfail_text_number(word.data, word.len,
                                      NGX_MAX_TIME_T_VALUE, &n)
               != NGX_OK)
        {
            sp->err = "invalid time";
            return NGX_ERROR;
        }

        sl.last_success = (time_t) n;
        sl.naddrs = 0;
        sl.addrs = sp->addrs;

        for ( ;; ) {
            rc = ngx_qqfail_state_word(&p, eol, &word);

            if (rc == NGX_DECLINED) {
                break;
            }

            if (rc != NGX_OK || sl.naddrs == sp->max_addrs
                || ngx_qqfail_state_addr(&word, &sl.addrs[sl.naddrs])
                   != NGX_OK)
            {
                sp->err = "invalid address";
                return NGX_ERROR;
            }

            sl.naddrs++;
        }

        if (sl.naddrs == 0) {
            sp->err = "server without addresses";
            return NGX_ERROR;
        }

        sp->err = NULL;

        if (sp->handler(sp, &sl) != NGX_OK) {
            if (sp->err == NULL) {
                sp->err = "out of memory";
            }

            return NGX_ERROR;
        }

        p = eol + 1;
    }

    if (!ended) {
        sp->line++;
        sp->err = "no end line (truncated file)";
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_qqfail_state_word(u_char **pos, u_char *last, ngx_str_t *word)
{
    u_char  *p;

    p = *pos;

    while (p < last && *p == ' ') {
        p++;
    }

    word->data = p;

    while (p < last && *p != ' ') {
        if (*p < 0x21 || *p > 0x7e) {
            return NGX_ERROR;
        }

        p++;
    }

    word->len = p - word->data;
    *pos = p;

    return word->len ? NGX_OK : NGX_DECLINED;
}


/*
 * An upstream name may hold any byte nginx accepts, a space or a newline
 * among them: in the file, every byte outside "!" to "~", and "%" itself,
 * is written as %XX, so that a name is one word on one line.
 */

u_char *
ngx_qqfail_state_escape(u_char *p, u_char *s, size_t len)
{
    size_t         i;
    u_char         c;
    static u_char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c < 0x21 || c > 0x7e || c == '%') {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];

        } else {
            *p++ = c;
        }
    }

    return p;
}


/* in place: the name only gets shorter */

static ngx_int_t
ngx_qqfail_state_unescape(ngx_str_t *s)
{
    u_char    *p;
    size_t     i;
    ngx_int_t  hi, lo;

    p = s->data;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] != '%') {
            *p++ = s->data[i];
            continue;
        }

        if (s->len - i < 3) {
            return NGX_ERROR;
        }

        hi = ngx_qqfail_text_hex(s->data[i + 1]);
        lo = ngx_qqfail_text_hex(s->data[i + 2]);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_ERROR;
        }

        *p++ = (u_char) (hi * 16 + lo);
        i += 2;
    }

    s->len = p - s->data;

    return NGX_OK;
}


/*
 * An address exactly as ngx_sock_ntop() writes it with its port:
 * "192.0.2.1:80" or "[2001:db8::1]:80".  inet_pton() is strict where
 * ngx_parse_addr_port() is not: "127.77.241.:80" or "127...1:80" are not
 * read as some other address.  An address from an SRV record has its
 * weight after it, and "b" if it is a backup: "192.0.2.1:8080/5b".
 */

static ngx_int_t
ngx_qqfail_state_addr(ngx_str_t *word,
    ngx_qqfail_state_addr_t *addr)
{
    u_char              *p, *host, *last;
    size_t               len;
    uint64_t             port;
    struct sockaddr_in  *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif
    u_char                text[NGX_INET6_ADDRSTRLEN + 1];
    uint64_t              weight;
    u_char               *slash;

    last = word->data + word->len;
    addr->srv = 0;

    slash = ngx_strlchr(word->data, last, '/');

    if (slash) {
        p = last;

        if (p[-1] == 'b') {
            addr->srv |= NGX_QQFAIL_SRV_BACKUP;
            p--;
        }

        if (ngx_qqfail_text_number(slash + 1, p - slash - 1, 65535, &weight)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        addr->srv |= NGX_QQFAIL_SRV | (uint32_t) weight;
        last = slash;
    }

    if (word->len && word->data[0] == '[') {
        host = word->data + 1;
        p = ngx_strlchr(host, last, ']');

        if (p == NULL || p + 1 == last || p[1] != ':') {
            return NGX_ERROR;
        }

        len = p - host;
        p += 2;

    } else {
        host = word->data;
        p = ngx_strlchr(host, last, ':');

        if (p == NULL || ngx_strlchr(p + 1, last, ':') != NULL) {
            return NGX_ERROR;
        }

        len = p - host;
        p++;
    }

    if (ngx_qqfail_text_number(p, last - p, 65535, &port) != NGX_OK
        || port < 1 || len == 0 || len > NGX_INET6_ADDRSTRLEN)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(text, host, len);
    text[len] = '\0';

    ngx_memzero(&addr->sockaddr, sizeof(ngx_sockaddr_t));

    if (host == word->data) {
        sin = &addr->sockaddr.sockaddr_in;

        if (inet_pton(AF_INET, (char *) text, &sin->sin_addr) != 1) {
            return NGX_ERROR;
        }

        sin->sin_family = AF_INET;
        sin->sin_port = htons((in_port_t) port);
        addr->socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else {
        sin6 = &addr->sockaddr.sockaddr_in6;

        if (inet_pton(AF_INET6, (char *) text, &sin6->sin6_addr) != 1) {
            return NGX_ERROR;
        }

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((in_port_t) port);
        addr->socklen = sizeof(struct sockaddr_in6);
#else
    } else {
        return NGX_ERROR;
#endif
    }

    addr->text = *word;

    return NGX_OK;
}


/* as ngx_atoi() and ngx_atotm(): decimal digits only, "max" at most */

static ngx_int_t
ngx_qqfail_text_number(u_char *p, size_t len, uint64_t max,
    uint64_t *value)
{
    uint64_t  n, d;

    if (len == 0) {
        return NGX_ERROR;
    }

    for (n = 0; len; len--, p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        d = *p - '0';

        if (n > (max - d) / 10) {
            return NGX_ERROR;
        }

        n = n * 10 + d;
    }

    *value = n;

    return NGX_OK;
}


static ngx_int_t
ngx_qqfail_text_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return NGX_ERROR;
}


/*
 * Names come from the configuration and the databases as bytes: every run
 * of valid UTF-8 is escaped for the format, every other byte becomes
 * U+FFFD, so that each format stays valid UTF-8.  "dst" has room for
 * NGX_QQFAIL_ESCAPE_LEN(len) bytes; returns the end of the output.
 */

u_char *
ngx_qqfail_text_escape(u_char *dst, ngx_uint_t how, u_char *s,
    size_t len)
{
    u_char  *p, *run, *last;
    size_t   n;

    p = dst;
    last = s + len;

    while (s < last) {

        for (run = s; run < last; run += n) {
            n = ngx_qqfail_utf8_len(run, last - run);

            if (n == 0) {
                break;
            }
        }

        p = ngx_qqfail_text_escape_run(p, how, s, run - s);

        if (run < last) {
            *p++ = 0xef; *p++ = 0xbf; *p++ = 0xbd;
            run++;
        }

        s = run;
    }

    return p;
}


/*
 * The length of the UTF-8 character at p, 0 if none starts there: the
 * shortest form only, no surrogates, nothing above U+10FFFF (RFC 3629).
 * Stricter than ngx_utf8_decode(), which takes any byte from 0x80 up as
 * a continuation ("\xC3\xC3", found by fuzz/status_escape.c) and the
 * surrogates U+D800 to U+DFFF, neither of them UTF-8.
 */

static size_t
ngx_qqfail_utf8_len(u_char *p, size_t len)
{
    size_t    n, i;
    uint32_t  u, min;

    u = p[0];

    if (u < 0x80) {
        return 1;
    }

    if (u >= 0xc2 && u <= 0xdf) {
        u &= 0x1f;
        min = 0x80;
        n = 2;

    } else if (u >= 0xe0 && u <= 0xef) {
        u &= 0x0f;
        min = 0x800;
        n = 3;

    } else if (u >= 0xf0 && u <= 0xf4) {
        u &= 0x07;
        min = 0x10000;
        n = 4;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    return n;
}


static u_char *
ngx_qqfail_text_escape_run(u_char *p, ngx_uint_t how, u_char *s,
    size_t len)
{
    u_char  c;
    size_t  i;

    for (i = 0; i < len; i++) {
        c = s[i];

        switch (how) {

        case NGX_QQFAIL_ESC_JSON:

            /* as ngx_escape_json() */

            if (c > 0x1f) {
                if (c == '\\' || c == '"') {
                    *p++ = '\\';
                }

                *p++ = c;
                break;
            }

            *p++ = '\\';

            switch (c) {
            case '\n':
                *p++ = 'n';
                break;

            case '\r':
                *p++ = 'r';
                break;

            case '\t':
                *p++ = 't';
                break;

            case '\b':
                *p++ = 'b';
                break;

            case '\f':
                *p++ = 'f';
                break;

            default:
                *p++ = 'u'; *p++ = '0'; *p++ = '0';
                *p++ = '0' + (c >> 4);
                *p++ = "0123456789ABCDEF"[c & 0xf];
            }

            break;

        case NGX_QQFAIL_ESC_HTML:

            /* as ngx_escape_html() */

            switch (c) {
            case '<':
                p = ngx_cpymem(p, "&lt;", 4);
                break;

            case '>':
                p = ngx_cpymem(p, "&gt;", 4);
                break;

            case '&':
                p = ngx_cpymem(p, "&amp;", 5);
                break;

            case '"':
                p = ngx_cpymem(p, "&quot;", 6);
                break;

            default:
                *p++ = c;
            }

            break;

        default: /* NGX_QQFAIL_ESC_PROM: a label value */

            if (c == '\\' || c == '"') {
                *p++ = '\\';
                *p++ = c;

            } else if (c == '\n') {
                *p++ = '\\';
                *p++ = 'n';

            } else {
                *p++ = c;
            }
        }
    }

    return p;
}


/*
 * The longest prefix of at most "max" bytes that does not end inside a
 * UTF-8 character.
 */

size_t
ngx_qqfail_utf8_cut(u_char *p, size_t len, size_t max)
{
    size_t  n;

    if (len <= max) {
        return len;
    }

    /*
     * p[max] is the first byte left out: when it continues a character,
     * the whole character is left out (not UTF-8 at all: cut at max)
     */

    for (n = max; n > 0 && max - n < 4 && (p[n] & 0xc0) == 0x80; n--) {
        /* void */
    }

    return (max - n < 4) ? n : max;
}
