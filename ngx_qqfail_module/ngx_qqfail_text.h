
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#ifndef _NGX_QQFAIL_TEXT_H_INCLUDED_
#define _NGX_QQFAIL_TEXT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Text the module reads and writes: the state file's lines and the status
 * page's strings.  nginx core headers only, no nginx object, no pool, no
 * http types, so that it can be fuzzed alone (fuzz/state_file.c,
 * fuzz/status_escape.c).
 */

#define NGX_QQFAIL_STATE_HEADER        "qqfail-state 1\n"

/* how ngx_qqfail_text_escape() escapes */
#define NGX_QQFAIL_ESC_JSON            0     /* inside a JSON string */
#define NGX_QQFAIL_ESC_HTML            1     /* HTML text or attribute */
#define NGX_QQFAIL_ESC_PROM            2     /* a Prometheus label value */

/*
 * The most ngx_qqfail_text_escape() writes for "len" bytes: 6 per byte
 * ("\u001F" in JSON, "&quot;" in HTML; an invalid byte takes 3, U+FFFD).
 */
#define NGX_QQFAIL_ESCAPE_LEN(len)       (6 * (len))


/*
 * What an SRV record gives an address, kept with it in its slot and the
 * state file: its weight (0 to 65535, 0 taken as 1), and "backup" for a
 * priority after the lowest; 0: the address is not from an SRV record,
 * the server's own weight and backup apply.
 */

#define NGX_QQFAIL_SRV                   0x20000
#define NGX_QQFAIL_SRV_BACKUP            0x10000
#define ngx_qqfail_srv_weight(srv)       ((srv) & 0xffff ? (srv) & 0xffff : 1)


typedef struct {
    ngx_sockaddr_t                   sockaddr;   /* with the file's port */
    socklen_t                        socklen;
    ngx_str_t                        text;       /* the word, in the file */
    uint32_t                         srv;        /* "/WEIGHT[b]": from SRV */
} ngx_qqfail_state_addr_t;


/* one "s" line; its strings point into the file's buffer */

typedef struct {
    ngx_str_t                        upstream;   /* unescaped, in place */
    ngx_str_t                        names;      /* "NAME:PORT,..." */
    ngx_uint_t                       active;     /* below max_names */
    time_t                           last_success;   /* not checked */
    ngx_uint_t                       naddrs;     /* 1 to max_addrs */
    ngx_qqfail_state_addr_t         *addrs;
} ngx_qqfail_state_line_t;


typedef struct ngx_qqfail_state_parser_s       ngx_qqfail_state_parser_t;

/* NGX_OK: next line; else the file is refused, for the reason in sp->err */
typedef ngx_int_t (*ngx_qqfail_state_line_pt)(
    ngx_qqfail_state_parser_t *sp, ngx_qqfail_state_line_t *sl);

struct ngx_qqfail_state_parser_s {
    /* the caller's */
    ngx_uint_t                       max_names;
    ngx_uint_t                       max_addrs;
    ngx_qqfail_state_addr_t         *addrs;      /* room for max_addrs */
    ngx_qqfail_state_line_pt         handler;    /* each "s" line */
    void                            *data;

    /* the parser's: where it stopped and why */
    ngx_uint_t                       line;
    const char                      *err;
};


ngx_int_t ngx_qqfail_state_parse(u_char *buf, size_t len,
    ngx_qqfail_state_parser_t *sp);
u_char *ngx_qqfail_state_escape(u_char *p, u_char *s, size_t len);

u_char *ngx_qqfail_text_escape(u_char *dst, ngx_uint_t how, u_char *s,
    size_t len);
size_t ngx_qqfail_utf8_cut(u_char *p, size_t len, size_t max);


extern ngx_str_t  ngx_qqfail_methods[];
extern ngx_str_t  ngx_qqfail_sources[];
extern ngx_str_t  ngx_qqfail_errors[];
extern ngx_str_t  ngx_qqfail_refusals[];


#endif /* _NGX_QQFAIL_TEXT_H_INCLUDED_ */
