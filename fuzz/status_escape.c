
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


/*
 * libFuzzer harness of the status page's escaping and of the cut of long
 * strings (ngx_qqfail_text.c): an input is a string as a name, a
 * path or an event message can hold.  For each format, the escaped string
 * must fit NGX_QQFAIL_ESCAPE_LEN(), be valid UTF-8 (checked strictly
 * here), hold nothing that ends or breaks the string or markup it goes
 * into, and decode to the input with each byte that does not start a
 * valid UTF-8 character replaced by U+FFFD.  A cut is never longer than
 * asked and never splits a character of valid UTF-8.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail_text.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t ngx_qqfail_fuzz_utf8(u_char *p, size_t len);
static u_char *ngx_qqfail_fuzz_sanitize(u_char *dst, u_char *s,
    size_t len);
static u_char *ngx_qqfail_fuzz_unjson(u_char *dst, u_char *s,
    size_t len);
static u_char *ngx_qqfail_fuzz_unhtml(u_char *dst, u_char *s,
    size_t len);
static u_char *ngx_qqfail_fuzz_unprom(u_char *dst, u_char *s,
    size_t len);
static ngx_uint_t ngx_qqfail_fuzz_valid(u_char *p, size_t len);
static void ngx_qqfail_fuzz_cut(u_char *s, size_t len, size_t max);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *s, *out, *end, *want, *wend, *got, *gend;
    size_t      bound;
    ngx_uint_t  how;

    /* exact copies and buffers: a byte too many is caught */

    bound = NGX_QQFAIL_ESCAPE_LEN(size);

    s = malloc(size ? size : 1);
    out = malloc(bound ? bound : 1);
    want = malloc(3 * size + 1);
    got = malloc(bound + 1);

    if (s == NULL || out == NULL || want == NULL || got == NULL) {
        abort();
    }

    ngx_memcpy(s, data, size);

    wend = ngx_qqfail_fuzz_sanitize(want, s, size);

    for (how = NGX_QQFAIL_ESC_JSON; how <= NGX_QQFAIL_ESC_PROM;
         how++)
    {
        end = ngx_qqfail_text_escape(out, how, s, size);

        if (end < out || (size_t) (end - out) > bound) {
            abort();
        }

        if (!ngx_qqfail_fuzz_valid(out, end - out)) {
            abort();
        }

        switch (how) {

        case NGX_QQFAIL_ESC_JSON:
            gend = ngx_qqfail_fuzz_unjson(got, out, end - out);
            break;

        case NGX_QQFAIL_ESC_HTML:
            gend = ngx_qqfail_fuzz_unhtml(got, out, end - out);
            break;

        default:
            gend = ngx_qqfail_fuzz_unprom(got, out, end - out);
        }

        if (gend - got != wend - want
            || ngx_memcmp(got, want, gend - got) != 0)
        {
            abort();
        }

        /* the input is left as it was */

        if (ngx_memcmp(s, data, size) != 0) {
            abort();
        }
    }

    /* cuts: everywhere for short strings, a few places for long ones */

    if (size <= 64) {
        for (bound = 0; bound <= size + 1; bound++) {
            ngx_qqfail_fuzz_cut(s, size, bound);
        }

    } else {
        ngx_qqfail_fuzz_cut(s, size, 0);
        ngx_qqfail_fuzz_cut(s, size, data[0]);
        ngx_qqfail_fuzz_cut(s, size, size / 2);
        ngx_qqfail_fuzz_cut(s, size, size - 1);
    }

    free(s);
    free(out);
    free(want);
    free(got);

    return 0;
}


/*
 * The length of the valid UTF-8 character at p, 0 if none: the shortest
 * form only, no surrogates, nothing above U+10FFFF (RFC 3629).
 */

static size_t
ngx_qqfail_fuzz_utf8(u_char *p, size_t len)
{
    size_t    n, i;
    uint32_t  u, min;

    if (p[0] < 0x80) {
        return 1;
    }

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        u = p[0] & 0x1f;
        min = 0x80;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        u = p[0] & 0x0f;
        min = 0x800;

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        u = p[0] & 0x07;
        min = 0x10000;

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


static ngx_uint_t
ngx_qqfail_fuzz_valid(u_char *p, size_t len)
{
    size_t  n;

    while (len) {
        n = ngx_qqfail_fuzz_utf8(p, len);

        if (n == 0) {
            return 0;
        }

        p += n;
        len -= n;
    }

    return 1;
}


/* what the page must show: each byte not starting a character is U+FFFD */

static u_char *
ngx_qqfail_fuzz_sanitize(u_char *dst, u_char *s, size_t len)
{
    size_t  n;

    while (len) {
        n = ngx_qqfail_fuzz_utf8(s, len);

        if (n == 0) {
            *dst++ = 0xef; *dst++ = 0xbf; *dst++ = 0xbd;
            s++;
            len--;
            continue;
        }

        dst = ngx_cpymem(dst, s, n);
        s += n;
        len -= n;
    }

    return dst;
}


/* the inside of a JSON string (RFC 8259): no raw '"', '\' or control */

static u_char *
ngx_qqfail_fuzz_unjson(u_char *dst, u_char *s, size_t len)
{
    u_char    c;
    size_t    i, k;
    uint32_t  u;

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c < 0x20 || c == '"') {
            abort();
        }

        if (c != '\\') {
            *dst++ = c;
            continue;
        }

        if (++i == len) {
            abort();
        }

        switch (s[i]) {
        case '"':
        case '\\':
        case '/':
            *dst++ = s[i];
            break;

        case 'b':
            *dst++ = '\b';
            break;

        case 'f':
            *dst++ = '\f';
            break;

        case 'n':
            *dst++ = '\n';
            break;

        case 'r':
            *dst++ = '\r';
            break;

        case 't':
            *dst++ = '\t';
            break;

        case 'u':
            if (len - i < 5) {
                abort();
            }

            for (u = 0, k = 1; k <= 4; k++) {
                c = s[i + k];

                if (c >= '0' && c <= '9') {
                    u = u * 16 + c - '0';

                } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                    u = u * 16 + (c | 0x20) - 'a' + 10;

                } else {
                    abort();
                }
            }

            /* only controls are written this way */

            if (u >= 0x20) {
                abort();
            }

            *dst++ = (u_char) u;
            i += 4;
            break;

        default:
            abort();
        }
    }

    return dst;
}


/* HTML text and attribute values: no raw '<', '>', '"'; '&' an entity */

static u_char *
ngx_qqfail_fuzz_unhtml(u_char *dst, u_char *s, size_t len)
{
    size_t      i, k;
    ngx_uint_t  e;
    static char *entity[] = { "&lt;", "&gt;", "&amp;", "&quot;" };
    static char  plain[] = { '<', '>', '&', '"' };

    for (i = 0; i < len; i++) {
        if (s[i] == '<' || s[i] == '>' || s[i] == '"') {
            abort();
        }

        if (s[i] != '&') {
            *dst++ = s[i];
            continue;
        }

        for (e = 0; e < 4; e++) {
            k = ngx_strlen(entity[e]);

            if (len - i >= k && ngx_strncmp(s + i, entity[e], k) == 0) {
                break;
            }
        }

        if (e == 4) {
            abort();
        }

        *dst++ = plain[e];
        i += k - 1;
    }

    return dst;
}


/* a Prometheus label value: '\\', '\"' and '\n' only, no raw newline */

static u_char *
ngx_qqfail_fuzz_unprom(u_char *dst, u_char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (s[i] == '\n' || s[i] == '"') {
            abort();
        }

        if (s[i] != '\\') {
            *dst++ = s[i];
            continue;
        }

        if (++i == len) {
            abort();
        }

        switch (s[i]) {
        case '\\':
        case '"':
            *dst++ = s[i];
            break;

        case 'n':
            *dst++ = '\n';
            break;

        default:
            abort();
        }
    }

    return dst;
}


static void
ngx_qqfail_fuzz_cut(u_char *s, size_t len, size_t max)
{
    size_t  n;

    n = ngx_qqfail_utf8_cut(s, len, max);

    if (n > max || n > len || (len <= max && n != len)) {
        abort();
    }

    /* valid UTF-8: a valid prefix, shorter by less than a character */

    if (ngx_qqfail_fuzz_valid(s, len)
        && (!ngx_qqfail_fuzz_valid(s, n)
            || (n < len && (s[n] & 0xc0) == 0x80)
            || (n < len && max - n > 3)))
    {
        abort();
    }
}
