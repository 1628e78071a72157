
/*
 * Copyright (C) ngx_qqfail_module authors
 * Distributed under the 2-clause BSD license, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_qqfail.h"


/* the state file's format: ngx_qqfail_text.c */


#define NGX_QQFAIL_STATE_MAX           (1024 * 1024)

/* the longest line of a server: upstream, names, addresses */
#define NGX_QQFAIL_STATE_LINE                                                 \
    (3 * 256 + NGX_QQFAIL_MAX_NAMES * 300 + 64                                \
     + NGX_QQFAIL_MAX_ADDRS * (NGX_QQFAIL_ADDR_STRLEN + 1 + 7))
#define NGX_QQFAIL_STATE_OWNER         64


/* nginx defines them only where it has openat() */

#ifndef NGX_FILE_NOFOLLOW
#define NGX_FILE_NOFOLLOW              O_NOFOLLOW
#endif

#ifndef NGX_FILE_DIRECTORY
#define NGX_FILE_DIRECTORY             O_DIRECTORY
#endif


typedef struct {
    ngx_qqfail_server_t             *server;
    ngx_uint_t                       active;
    ngx_uint_t                       rank;       /* 0: the same names */
    time_t                           last_success;
    ngx_uint_t                       naddrs;
    ngx_addr_t                       addrs[NGX_QQFAIL_MAX_ADDRS];
    uint32_t                         srv[NGX_QQFAIL_MAX_ADDRS];
} ngx_qqfail_state_entry_t;


/*
 * The configured servers by upstream and text, for the lines of a file
 * being read: a server's key ("name:port,..."; rank 0) and each of its
 * names (rank: its index + 1), so that a line finds its server in time
 * independent of the number of servers
 */

typedef struct {
    ngx_qqfail_server_t             *server;
    ngx_qqfail_srv_conf_t           *upstream;
    ngx_str_t                       *text;
    uint64_t                         hash;
    ngx_uint_t                       rank;
    ngx_uint_t                       next;       /* + 1, 0: none */
} ngx_qqfail_state_index_t;


/* a file being read */

typedef struct {
    ngx_qqfail_main_conf_t          *qmcf;
    ngx_array_t                     *entries;
    ngx_qqfail_state_index_t        *index;
    ngx_uint_t                      *buckets;    /* + 1, 0: none */
    ngx_uint_t                       mask;
} ngx_qqfail_state_read_t;


/* the user that writes the state file */

typedef struct {
    ngx_uid_t                        uid;
    ngx_gid_t                        gid;
    char                            *name;
    gid_t                           *groups;     /* supplementary */
    int                              ngroups;
} ngx_qqfail_state_user_t;


static ngx_int_t ngx_qqfail_state_user(ngx_core_conf_t *ccf,
    ngx_qqfail_state_user_t *user, ngx_log_t *log);
static ngx_int_t ngx_qqfail_state_may(u_char *path,
    ngx_qqfail_state_user_t *user, ngx_uint_t want,
    ngx_file_info_t *fi);
static void ngx_qqfail_state_mode(ngx_file_info_t *fi, u_char *mode,
    u_char *owner);
static u_char *ngx_qqfail_state_format(u_char *p,
    ngx_qqfail_srv_conf_t *qscf, ngx_qqfail_server_t *server,
    ngx_qqfail_server_copy_t *copy);
static ngx_int_t ngx_qqfail_state_line(
    ngx_qqfail_state_parser_t *sp, ngx_qqfail_state_line_t *sl);
static ngx_int_t ngx_qqfail_state_index(
    ngx_qqfail_state_read_t *rd, ngx_pool_t *pool);
static uint64_t ngx_qqfail_state_hash(ngx_str_t *upstream,
    ngx_str_t *text);
static ngx_int_t ngx_qqfail_state_server(
    ngx_qqfail_state_read_t *rd, ngx_str_t *upstream, ngx_str_t *names,
    ngx_qqfail_state_entry_t *e);
static ngx_int_t ngx_qqfail_state_rank(const void *one,
    const void *two);
static void ngx_qqfail_state_timer(ngx_event_t *ev);


static ngx_event_t  ngx_qqfail_state_ev;
static ngx_uint_t   ngx_qqfail_state_failed;


/*
 * In the master, once the whole configuration is known (init_module, also
 * for "nginx -t"), as nginx does for its own paths (ngx_create_paths()):
 * a missing directory of the state file is created and given to the user
 * that writes the file, the workers' user.  An existing directory is never
 * changed: if that user cannot write into it, one line says what to do.
 * Nothing here stops nginx, which proxies without a state file too.
 */

void
ngx_qqfail_state_check(ngx_cycle_t *cycle,
    ngx_qqfail_main_conf_t *qmcf)
{
    u_char                  *p, *dir, *file;
    ngx_int_t                rc;
    ngx_err_t                err;
    ngx_file_info_t          fi, ffi;
    ngx_core_conf_t         *ccf;
    ngx_qqfail_state_user_t  user;
    u_char                   mode[8];
    u_char                   owner[NGX_QQFAIL_STATE_OWNER];
    u_char                   errstr[NGX_QQFAIL_ERRLEN * 2];

    if (!qmcf->state_file_set) {
        return;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ngx_qqfail_state_user(ccf, &user, cycle->log) != NGX_OK) {
        return;
    }

    /* the path is absolute (ngx_conf_full_name) and ends in a file name */

    file = qmcf->state_file.data;

    dir = ngx_pnalloc(cycle->pool, qmcf->state_file.len + 1);
    if (dir == NULL) {
        goto done;
    }

    ngx_memcpy(dir, file, qmcf->state_file.len);

    for (p = dir + qmcf->state_file.len - 1; p > dir && *p != '/'; p--) {
        /* void */
    }

    *(p == dir ? p + 1 : p) = '\0';

    if (ngx_file_info(dir, &fi) == NGX_FILE_ERROR) {
        err = ngx_errno;

        /* the error inside the line: the place of the directive ends it */

        *ngx_strerror(err, errstr, sizeof(errstr) - 1) = '\0';

        if (err != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "qqfail: cannot check the state file directory "
                          "\"%s\": " ngx_file_info_n " failed (%d: %s): "
                          "choose another \"qqfail_state_file\" in %s:%ui",
                          dir, err, errstr, qmcf->state_file_where.file,
                          qmcf->state_file_where.line);
            goto done;
        }

        if (ngx_create_dir(dir, 0700) == NGX_FILE_ERROR) {
            err = ngx_errno;
            *ngx_strerror(err, errstr, sizeof(errstr) - 1) = '\0';

            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "qqfail: cannot create the state file directory "
                          "\"%s\": " ngx_create_dir_n " failed (%d: %s): "
                          "create it for the worker user \"%s\" or choose "
                          "another \"qqfail_state_file\" in %s:%ui",
                          dir, err, errstr, user.name,
                          qmcf->state_file_where.file,
                          qmcf->state_file_where.line);
            goto done;
        }

        if (user.uid != geteuid()
            && chown((char *) dir, user.uid, user.gid) == -1)
        {
            ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                          "qqfail: chown(\"%s\", %s) failed", dir,
                          user.name);
        }

        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "qqfail: created the state file directory \"%s\" "
                      "for the worker user \"%s\"", dir, user.name);

        if (ngx_file_info(dir, &fi) == NGX_FILE_ERROR) {
            goto done;
        }
    }

    if (!ngx_is_dir(&fi)) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "qqfail: \"%s\" is not a directory: choose another "
                      "\"qqfail_state_file\" in %s:%ui",
                      dir, qmcf->state_file_where.file,
                      qmcf->state_file_where.line);
        goto done;
    }

    if (user.uid == 0) {
        goto done;
    }

    /* every directory on the way needs search permission */

    for (p = dir + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }

        *p = '\0';
        rc = ngx_qqfail_state_may(dir, &user, 1, &ffi);

        if (rc == NGX_DECLINED) {
            ngx_qqfail_state_mode(&ffi, mode, owner);

            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "qqfail: the worker user \"%s\" cannot reach "
                          "state files in \"%s/%s\": \"%s\" (owner %s, mode "
                          "%s) denies it search permission: choose another "
                          "\"qqfail_state_file\" in %s:%ui",
                          user.name, dir, p + 1, dir, owner, mode,
                          qmcf->state_file_where.file,
                          qmcf->state_file_where.line);
        }

        *p = '/';

        if (rc != NGX_OK) {
            goto done;
        }
    }

    /* the directory itself: temporary file and rename */

    ngx_qqfail_state_mode(&fi, mode, owner);

    if (ngx_qqfail_state_may(dir, &user, 3, &fi) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "qqfail: the worker user \"%s\" cannot write state "
                      "files in \"%s\" (owner %s, mode %s): make the "
                      "directory that user's (\"chown %s %s\") or choose "
                      "another \"qqfail_state_file\" in %s:%ui",
                      user.name, dir, owner, mode, user.name, dir,
                      qmcf->state_file_where.file,
                      qmcf->state_file_where.line);
        goto done;
    }

    /* in a sticky directory (/tmp) only its owner replaces a file */

    if ((fi.st_mode & S_ISVTX)
        && fi.st_uid != user.uid
        && ngx_file_info(file, &ffi) != NGX_FILE_ERROR
        && ffi.st_uid != user.uid)
    {
        ngx_qqfail_state_mode(&ffi, mode, owner);

        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "qqfail: the worker user \"%s\" cannot replace the "
                      "state file \"%s\" (owner %s) in the sticky directory "
                      "\"%s\": make the file that user's (\"chown %s %s\") "
                      "or choose another \"qqfail_state_file\" in %s:%ui",
                      user.name, file, owner, dir, user.name, file,
                      qmcf->state_file_where.file,
                      qmcf->state_file_where.line);
    }

done:

    if (user.groups) {
        ngx_free(user.groups);
    }
}


/*
 * The user that writes the state file: the workers' (nginx drops to it
 * when the master runs as root), otherwise nginx's own.  Its groups as
 * initgroups() gives them to a worker.
 */

static ngx_int_t
ngx_qqfail_state_user(ngx_core_conf_t *ccf,
    ngx_qqfail_state_user_t *user, ngx_log_t *log)
{
    int             n;
    struct passwd  *pwd;

    ngx_memzero(user, sizeof(ngx_qqfail_state_user_t));

    if (ccf->master
        && geteuid() == 0
        && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT)
    {
        user->uid = ccf->user;
        user->gid = ccf->group;
        user->name = ccf->username;

    } else {
        user->uid = geteuid();
        user->gid = getegid();

        pwd = getpwuid(user->uid);
        user->name = pwd ? pwd->pw_name : "?";
    }

    if (user->uid == 0) {
        return NGX_OK;
    }

    n = 32;

    for ( ;; ) {
        user->groups = ngx_alloc(n * sizeof(gid_t), log);
        if (user->groups == NULL) {
            return NGX_ERROR;
        }

        user->ngroups = n;

        if (getgrouplist(user->name, user->gid, user->groups,
                         &user->ngroups)
            != -1)
        {
            return NGX_OK;
        }

        ngx_free(user->groups);
        user->groups = NULL;

        if (user->ngroups <= n) {
            /* unknown user: its primary group only */
            user->ngroups = 0;
            return NGX_OK;
        }

        n = user->ngroups;
    }
}


/* stat() and the permission bits that apply to the user; want: 1 x, 3 wx */

static ngx_int_t
ngx_qqfail_state_may(u_char *path, ngx_qqfail_state_user_t *user,
    ngx_uint_t want, ngx_file_info_t *fi)
{
    int         i;
    ngx_uint_t  bits;

    if (ngx_file_info(path, fi) == NGX_FILE_ERROR) {
        return NGX_ERROR;
    }

    if (fi->st_uid == user->uid) {
        bits = fi->st_mode >> 6;

    } else {
        bits = fi->st_mode;

        if (fi->st_gid == user->gid) {
            bits = fi->st_mode >> 3;
        }

        for (i = 0; i < user->ngroups; i++) {
            if (fi->st_gid == user->groups[i]) {
                bits = fi->st_mode >> 3;
            }
        }
    }

    return ((bits & want) == want) ? NGX_OK : NGX_DECLINED;
}


/* "0755" and the owner's name, for messages */

static void
ngx_qqfail_state_mode(ngx_file_info_t *fi, u_char *mode, u_char *owner)
{
    ngx_uint_t      i, m;
    struct passwd  *pwd;

    m = fi->st_mode & 07777;

    for (i = 4; i > 0; i--) {
        mode[i - 1] = (u_char) ('0' + (m & 7));
        m >>= 3;
    }

    mode[4] = '\0';

    pwd = getpwuid(fi->st_uid);

    if (pwd) {
        ngx_cpystrn(owner, (u_char *) pwd->pw_name,
                    NGX_QQFAIL_STATE_OWNER);

    } else {
        *ngx_sprintf(owner, "%uD", (uint32_t) fi->st_uid) = '\0';
    }
}


/*
 * Read at configuration time, in the master, before any lookup: servers
 * that have no addresses yet get the file's, if younger than
 * qqfail_max_stale.  Any problem with the file is logged once and the
 * file ignored as a whole; nginx starts anyway.
 */

ngx_int_t
ngx_qqfail_state_load(ngx_qqfail_main_conf_t *qmcf, ngx_log_t *log)
{
    u_char                    *buf;
    off_t                      max;
    time_t                     now;
    ssize_t                    n;
    ngx_fd_t                   fd;
    ngx_err_t                  err;
    uint32_t                   srv[NGX_QQFAIL_MAX_ADDRS];
    ngx_uint_t                 i, j, k, m, used;
    ngx_pool_t                *pool;
    ngx_array_t                entries;
    ngx_file_info_t            fi;
    struct sockaddr           *sa[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_name_t         *name;
    ngx_qqfail_server_sh_t    *ssh;
    ngx_qqfail_state_read_t    rd;
    ngx_qqfail_state_entry_t  *e;
    ngx_qqfail_state_parser_t  sp;
    ngx_qqfail_geo_t           geo[NGX_QQFAIL_MAX_ADDRS];
    ngx_qqfail_state_addr_t    addrs[NGX_QQFAIL_MAX_ADDRS];

    if (!qmcf->state_file_set) {
        return NGX_OK;
    }

    fd = ngx_open_file(qmcf->state_file.data,
                       NGX_FILE_RDONLY|NGX_FILE_NONBLOCK|NGX_FILE_NOFOLLOW,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err != NGX_ENOENT) {
            ngx_qqfail_event(qmcf, NGX_LOG_WARN, log, err, NULL,
                             "state file \"%V\" ignored: "
                             ngx_open_file_n " failed",
                             &qmcf->state_file);
        }

        return NGX_OK;
    }

    pool = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_qqfail_event(qmcf, NGX_LOG_WARN, log, ngx_errno, NULL,
                         "state file \"%V\" ignored: "
                         ngx_fd_info_n " failed",
                         &qmcf->state_file);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_qqfail_event(qmcf, NGX_LOG_WARN, log, 0, NULL,
                         "state file \"%V\" ignored: not a regular file",
                         &qmcf->state_file);
        goto done;
    }

    /*
     * the limit grows with the configuration: no file the module writes
     * for it can reach it, a planted 10 MB file for a small one does
     */

    max = ngx_max(NGX_QQFAIL_STATE_MAX,
                  (off_t) qmcf->nservers * NGX_QQFAIL_STATE_LINE);

    if (ngx_file_size(&fi) > max) {
        ngx_qqfail_event(qmcf, NGX_LOG_WARN, log, 0, NULL,
                         "state file \"%V\" ignored: %O bytes, more "
                         "than the limit of %O for this configuration",
                         &qmcf->state_file, ngx_file_size(&fi), max);
        goto done;
    }

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        goto done;
    }

    buf = ngx_pnalloc(pool, (size_t) ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, buf, (size_t) ngx_file_size(&fi));

    if (n == -1) {
        ngx_qqfail_event(qmcf, NGX_LOG_WARN, log, ngx_errno, NULL,
                         "state file \"%V\" ignored: "
                         ngx_read_fd_n " failed",
                         &qmcf->state_file);
        goto done;
    }

    buf[n] = '\0';

    if (ngx_array_init(&entries, pool, 8,
                       sizeof(ngx_qqfail_state_entry_t))
        != NGX_OK)
    {
        goto done;
    }

    rd.qmcf = qmcf;
    rd.entries = &entries;

    if (ngx_qqfail_state_index(&rd, pool) != NGX_OK) {
        goto done;
    }

    ngx_memzero(&sp, sizeof(ngx_qqfail_state_parser_t));

    sp.max_names = NGX_QQFAIL_MAX_NAMES;
    sp.max_addrs = NGX_QQFAIL_MAX_ADDRS;
    sp.addrs = addrs;
    sp.handler = ngx_qqfail_state_line;
    sp.data = &rd;

    if (ngx_qqfail_state_parse(buf, (size_t) n, &sp) != NGX_OK) {
        ngx_qqfail_event(qmcf, NGX_LOG_WARN, log, 0, NULL,
                         "state file \"%V\" ignored: %s in line %ui",
                         &qmcf->state_file, sp.err, sp.line);
        goto done;
    }

    now = ngx_time();
    used = 0;
    e = entries.elts;

    /* a line of the same server first, then one sharing its best name */

    ngx_sort(e, entries.nelts, sizeof(ngx_qqfail_state_entry_t),
             ngx_qqfail_state_rank);

    for (i = 0; i < entries.nelts; i++) {
        ssh = e[i].server->sh;

        if (ssh->source != NGX_QQFAIL_SOURCE_NONE) {
            /* a reused zone, or a better line, knows better */
            continue;
        }

        if (e[i].server->upstream->max_stale != NGX_QQFAIL_STALE_FOREVER
            && now - e[i].last_success > e[i].server->upstream->max_stale)
        {
            continue;
        }

        /*
         * the port is configuration, not state, but for a name with
         * "service=", whose ports and weights are its SRV records'
         */

        name = &((ngx_qqfail_name_t *)
                 e[i].server->names.elts)[e[i].active];

        for (k = 0; k < e[i].naddrs; k++) {
            if (!name->srv) {
                ngx_inet_set_port(e[i].addrs[k].sockaddr, name->port);
                e[i].srv[k] = 0;

            } else if (e[i].srv[k] == 0) {
                break;
            }

            sa[k] = e[i].addrs[k].sockaddr;
        }

        if (k < e[i].naddrs) {
            /* an SRV name's addresses all carry their records */
            continue;
        }

        /* a planted file must not get around qqfail_allow */

        m = ngx_qqfail_filter(e[i].server->upstream, e[i].addrs, geo,
                              e[i].naddrs, NULL);

        if (m == 0) {
            continue;
        }

        /* what the records gave the addresses the filter kept */

        for (k = 0; k < m; k++) {
            for (j = 0; sa[j] != e[i].addrs[k].sockaddr; j++) { /* void */ }
            srv[k] = e[i].srv[j];
        }

        if (ngx_qqfail_zone_publish(qmcf, e[i].server, e[i].active,
                                    e[i].addrs, geo, srv, m,
                                    NGX_QQFAIL_SOURCE_STATE, log)
            == NGX_ERROR)
        {
            continue;
        }

        ngx_qqfail_zone_loaded(qmcf, ssh, e[i].last_success);

        used++;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "qqfail: state file \"%V\": addresses of %ui server(s) "
                  "loaded", &qmcf->state_file, used);

done:

    if (pool) {
        ngx_destroy_pool(pool);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &qmcf->state_file);
    }

    return NGX_OK;
}


/* a server line: kept for the configured server it belongs to, if any */

static ngx_int_t
ngx_qqfail_state_line(ngx_qqfail_state_parser_t *sp,
    ngx_qqfail_state_line_t *sl)
{
    ngx_uint_t                 i;
    ngx_array_t               *entries;
    ngx_qqfail_state_read_t   *rd;
    ngx_qqfail_state_entry_t  *e;

    rd = sp->data;
    entries = rd->entries;

    e = ngx_array_push(entries);
    if (e == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(e, sizeof(ngx_qqfail_state_entry_t));

    e->active = sl->active;
    e->last_success = ngx_min(sl->last_success, ngx_time());
    e->naddrs = sl->naddrs;

    for (i = 0; i < sl->naddrs; i++) {
        e->addrs[i].sockaddr = ngx_palloc(entries->pool,
                                          sl->addrs[i].socklen);
        if (e->addrs[i].sockaddr == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(e->addrs[i].sockaddr, &sl->addrs[i].sockaddr,
                   sl->addrs[i].socklen);
        e->addrs[i].socklen = sl->addrs[i].socklen;
        e->addrs[i].name = sl->addrs[i].text;
        e->srv[i] = sl->addrs[i].srv;
    }

    if (ngx_qqfail_state_server(rd, &sl->upstream, &sl->names, e)
        != NGX_OK)
    {
        /* no configured server has its names any more: dropped */
        entries->nelts--;
    }

    return NGX_OK;
}


/*
 * The configured server a line belongs to: the one with the same names
 * (rank 0), else one of the same upstream that has the name the line's
 * addresses came from, the best such name first (rank 1 + its index).
 * An edited server line keeps its addresses across a restart.
 */

static uint64_t
ngx_qqfail_state_hash(ngx_str_t *upstream, ngx_str_t *text)
{
    return ngx_qqfail_zone_name_hash(upstream->data, upstream->len)
           ^ (ngx_qqfail_zone_name_hash(text->data, text->len) * 31);
}


static ngx_int_t
ngx_qqfail_state_index(ngx_qqfail_state_read_t *rd,
    ngx_pool_t *pool)
{
    ngx_uint_t                 i, j, k, n, size, b;
    ngx_qqfail_name_t         *name;
    ngx_qqfail_server_t       *server;
    ngx_qqfail_srv_conf_t    **qscfp;
    ngx_qqfail_state_index_t  *x;

    qscfp = rd->qmcf->upstreams.elts;
    n = 0;

    for (i = 0; i < rd->qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            n += 1 + server[j].names.nelts;
        }
    }

    for (size = 16; size < 2 * n; size *= 2) { /* void */ }

    rd->mask = size - 1;
    rd->buckets = ngx_pcalloc(pool, size * sizeof(ngx_uint_t));
    rd->index = ngx_palloc(pool, (n ? n : 1)
                                 * sizeof(ngx_qqfail_state_index_t));

    if (rd->buckets == NULL || rd->index == NULL) {
        return NGX_ERROR;
    }

    /*
     * in the order of nginx.conf, each entry at the head of its chain:
     * a chain is walked newest first, and a match keeps the last one seen
     * of equal rank, the first in nginx.conf
     */

    n = 0;

    for (i = 0; i < rd->qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        for (j = 0; j < qscfp[i]->servers->nelts; j++) {
            name = server[j].names.elts;

            for (k = 0; k <= server[j].names.nelts; k++) {
                x = &rd->index[n];

                x->server = &server[j];
                x->upstream = qscfp[i];
                x->text = k ? &name[k - 1].key : &server[j].key;
                x->rank = k;
                x->hash = ngx_qqfail_state_hash(
                                              &qscfp[i]->id,
                                              x->text);

                b = x->hash & rd->mask;
                x->next = rd->buckets[b];
                rd->buckets[b] = ++n;
            }
        }
    }

    return NGX_OK;
}


/*
 * The configured server a line's addresses belong to: the server with the
 * same names, or else the server that has the line's active name among
 * its names, the earliest such name first (a reload that added an alias,
 * or removed the primary, keeps the addresses)
 */

static ngx_int_t
ngx_qqfail_state_server(ngx_qqfail_state_read_t *rd,
    ngx_str_t *upstream, ngx_str_t *names, ngx_qqfail_state_entry_t *e)
{
    u_char                    *p, *last;
    uint64_t                   hash;
    ngx_str_t                  active, *want;
    ngx_uint_t                 n, i, pass;
    ngx_qqfail_state_index_t  *x;

    /* the name of the line's addresses */

    p = names->data;
    last = names->data + names->len;

    for (n = e->active; n; n--) {
        p = ngx_strlchr(p, last, ',');

        if (p == NULL) {
            return NGX_DECLINED;
        }

        p++;
    }

    active.data = p;
    p = ngx_strlchr(p, last, ',');
    active.len = (p ? p : last) - active.data;

    e->server = NULL;
    e->rank = NGX_MAX_UINT32_VALUE;

    /* the same names first (rank 0), then the active name (rank >= 1) */

    for (pass = 0; pass < 2 && e->server == NULL; pass++) {
        want = pass ? &active : names;
        hash = ngx_qqfail_state_hash(upstream, want);

        for (i = rd->buckets[hash & rd->mask]; i; i = x->next) {
            x = &rd->index[i - 1];

            if (x->hash != hash
                || (pass == 0) != (x->rank == 0)
                || x->rank > e->rank
                || x->text->len != want->len
                || ngx_strncmp(x->text->data, want->data, want->len) != 0
                || x->upstream->id.len != upstream->len
                || ngx_strncmp(x->upstream->id.data,
                               upstream->data, upstream->len) != 0)
            {
                continue;
            }

            e->server = x->server;
            e->rank = x->rank;
        }
    }

    if (e->server == NULL) {
        return NGX_DECLINED;
    }

    e->active = e->rank ? e->rank - 1 : e->active;

    return NGX_OK;
}


static ngx_int_t
ngx_qqfail_state_rank(const void *one, const void *two)
{
    const ngx_qqfail_state_entry_t  *a = one;
    const ngx_qqfail_state_entry_t  *b = two;

    return (ngx_int_t) (a->rank > b->rank) - (ngx_int_t) (a->rank < b->rank);
}


/* the lookup leader: addresses changed, save them within a second */

void
ngx_qqfail_state_changed(ngx_qqfail_main_conf_t *qmcf,
    ngx_log_t *log)
{
    if (!qmcf->state_file_set || ngx_qqfail_state_ev.timer_set) {
        return;
    }

    if (ngx_event_timer_rbtree.root == NULL) {
        /* no event loop (the master): the leader saves when it starts */
        return;
    }

    ngx_qqfail_state_ev.handler = ngx_qqfail_state_timer;
    ngx_qqfail_state_ev.data = qmcf;
    ngx_qqfail_state_ev.log = log;

    /* not cancelable: an exiting leader saves before it goes */
    ngx_qqfail_state_ev.cancelable = 0;

    ngx_add_timer(&ngx_qqfail_state_ev, 1000);
}


/* a leader that lost its lease: the new leader writes from now on */

void
ngx_qqfail_state_cancel(void)
{
    if (ngx_qqfail_state_ev.timer_set) {
        ngx_del_timer(&ngx_qqfail_state_ev);
    }
}


void
ngx_qqfail_state_flush(void)
{
    if (ngx_qqfail_state_ev.timer_set) {
        ngx_del_timer(&ngx_qqfail_state_ev);
        ngx_qqfail_state_timer(&ngx_qqfail_state_ev);
    }
}


static void
ngx_qqfail_state_timer(ngx_event_t *ev)
{
    ngx_qqfail_main_conf_t *qmcf = ev->data;

    (void) ngx_qqfail_state_save(qmcf, ev->log);
}


/*
 * Write temp file, fsync, rename, fsync the directory: a crash at any
 * moment leaves either the old file or the new one.
 *
 * The lines are written through a buffer of NGX_QQFAIL_STATE_BUF
 * bytes, whatever the number of servers; the zone copies
 * NGX_QQFAIL_STATE_BATCH servers at a time under its lock
 * (ngx_qqfail_zone_copy), never the whole zone: each line is one server
 * as it was at that moment, written after the lock is released.
 */

#define NGX_QQFAIL_STATE_BUF         65536
#define NGX_QQFAIL_STATE_BATCH       64


/* the longest line a server of this upstream can take */

static size_t
ngx_qqfail_state_line_max(ngx_qqfail_srv_conf_t *qscf)
{
    return 3 * qscf->id.len + NGX_QQFAIL_MAX_NAMES * 300 + 64
           + NGX_QQFAIL_MAX_ADDRS * (NGX_QQFAIL_ADDR_STRLEN + 1 + 7);
}


/* one server's line, from its copy */

static u_char *
ngx_qqfail_state_format(u_char *p, ngx_qqfail_srv_conf_t *qscf,
    ngx_qqfail_server_t *server, ngx_qqfail_server_copy_t *copy)
{
    ngx_uint_t  k;

    p = ngx_cpymem(p, "s ", 2);
    p = ngx_qqfail_state_escape(p, qscf->id.data, qscf->id.len);
    p = ngx_sprintf(p, " %V", &server->key);
    p = ngx_sprintf(p, " %ui %T", copy->active, copy->last_success);

    for (k = 0; k < copy->nslots; k++) {
        *p++ = ' ';
        p += ngx_qqfail_slot_text(&copy->slots[k], p);

        /* from an SRV record: its weight, "b" for a backup ("/5b") */

        if (copy->slots[k].srv) {
            p = ngx_sprintf(p, "/%uD%s", copy->slots[k].srv & 0xffff,
                            (copy->slots[k].srv & NGX_QQFAIL_SRV_BACKUP)
                            ? "b" : "");
        }
    }

    *p++ = '\n';

    return p;
}


static ngx_int_t
ngx_qqfail_state_write(ngx_fd_t fd, u_char *buf, size_t size)
{
    ssize_t  n;

    for ( /* void */ ; size; size -= n, buf += n) {
        n = ngx_write_fd(fd, buf, size);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                n = 0;
                continue;
            }

            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_qqfail_state_save(ngx_qqfail_main_conf_t *qmcf, ngx_log_t *log)
{
    u_char                    *p, *buf, *dir, *last, *end;
    size_t                     size, line;
    ngx_fd_t                   fd, dfd;
    ngx_err_t                  err;
    ngx_uint_t                 i, j, k, count, batch;
    ngx_pool_t                *pool;
    const char                *op;
    ngx_qqfail_server_t       *server;
    ngx_qqfail_srv_conf_t    **qscfp;
    ngx_qqfail_server_copy_t  *copy;
    u_char                     tmp[NGX_MAX_PATH];
    u_char                     msg[NGX_QQFAIL_ERRLEN * 2];

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    /* room for two of the longest lines at least */

    size = NGX_QQFAIL_STATE_BUF;
    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        size = ngx_max(size, 2 * ngx_qqfail_state_line_max(qscfp[i]));
    }

    buf = ngx_pnalloc(pool, size);
    copy = ngx_palloc(pool, NGX_QQFAIL_STATE_BATCH
                            * sizeof(ngx_qqfail_server_copy_t));

    if (buf == NULL || copy == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    end = buf + size;

    ngx_snprintf(tmp, sizeof(tmp) - 1, "%V.%P.tmp%Z", &qmcf->state_file,
                 ngx_pid);
    tmp[sizeof(tmp) - 1] = '\0';

    dfd = NGX_INVALID_FILE;
    op = ngx_open_file_n;

    /* a temp file left by a killed leader with the same pid goes first */

    (void) ngx_delete_file(tmp);

    /* addresses and names are nobody else's business */

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY|NGX_FILE_NOFOLLOW,
                       NGX_FILE_CREATE_OR_OPEN|O_EXCL, NGX_FILE_OWNER_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        goto failed;
    }

    op = ngx_write_fd_n;

    p = ngx_cpymem(buf, NGX_QQFAIL_STATE_HEADER,
                   sizeof(NGX_QQFAIL_STATE_HEADER) - 1);
    count = 0;

    qscfp = qmcf->upstreams.elts;

    for (i = 0; i < qmcf->upstreams.nelts; i++) {
        server = qscfp[i]->servers->elts;

        line = ngx_qqfail_state_line_max(qscfp[i]);

        for (j = 0; j < qscfp[i]->servers->nelts; j += batch) {
            batch = ngx_min(NGX_QQFAIL_STATE_BATCH,
                            qscfp[i]->servers->nelts - j);

            /* the records, copied under the zone's lock; written after */

            ngx_qqfail_zone_copy(qmcf, &server[j], batch, copy);

            for (k = 0; k < batch; k++) {

                if (copy[k].naddrs == 0
                    || copy[k].source == NGX_QQFAIL_SOURCE_NONE
                    || copy[k].source == NGX_QQFAIL_SOURCE_LITERAL)
                {
                    continue;
                }

                if ((size_t) (end - p) < line) {
                    if (ngx_qqfail_state_write(fd, buf, p - buf) != NGX_OK) {
                        goto failed;
                    }

                    p = buf;
                }

                p = ngx_qqfail_state_format(p, qscfp[i], &server[j + k],
                                            &copy[k]);
                count++;
            }
        }
    }

    p = ngx_sprintf(p, "end %ui\n", count);

    if (ngx_qqfail_state_write(fd, buf, p - buf) != NGX_OK) {
        goto failed;
    }

    op = "fsync()";

    if (fsync(fd) == -1) {
        goto failed;
    }

    op = ngx_close_file_n;

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        fd = NGX_INVALID_FILE;
        goto failed;
    }

    fd = NGX_INVALID_FILE;

    op = ngx_rename_file_n;

    if (ngx_rename_file(tmp, qmcf->state_file.data) == NGX_FILE_ERROR) {
        goto failed;
    }

    /* the rename itself must reach the disk */

    dir = ngx_pnalloc(pool, qmcf->state_file.len + 2);
    if (dir != NULL) {
        ngx_memcpy(dir, qmcf->state_file.data, qmcf->state_file.len);

        for (p = dir + qmcf->state_file.len - 1; p > dir && *p != '/'; p--) {
            /* void */
        }

        /* the path is absolute (ngx_conf_full_name), p is at a slash */

        *(p == dir ? p + 1 : p) = '\0';

        dfd = ngx_open_file(dir, NGX_FILE_RDONLY|NGX_FILE_DIRECTORY,
                            NGX_FILE_OPEN, 0);

        if (dfd != NGX_INVALID_FILE) {
            (void) fsync(dfd);
            (void) ngx_close_file(dfd);
        }
    }

    ngx_qqfail_zone_state_saved(qmcf, NULL, 0);

    if (ngx_qqfail_state_failed) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "qqfail: state file \"%V\" written again",
                      &qmcf->state_file);
        ngx_qqfail_state_failed = 0;
    }

    ngx_destroy_pool(pool);

    return NGX_OK;

failed:

    err = ngx_errno;

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
    }

    (void) ngx_delete_file(tmp);

    /* for the status page: the path is shown beside it */

    last = msg + sizeof(msg) - 2;
    p = ngx_slprintf(msg, last, "%s failed (%d: ", op, err);
    p = ngx_strerror(err, p, last - p);
    *p++ = ')';
    *p = '\0';

    ngx_qqfail_zone_state_saved(qmcf, msg, p - msg);

    if (!ngx_qqfail_state_failed) {
        ngx_qqfail_event(qmcf, NGX_LOG_WARN, log, err, NULL,
                         "cannot write state file \"%V\": %s \"%s\" "
                         "failed; addresses will not survive a restart "
                         "during a DNS outage", &qmcf->state_file, op,
                         tmp);
        ngx_qqfail_state_failed = 1;
    }

    ngx_destroy_pool(pool);

    return NGX_ERROR;
}
