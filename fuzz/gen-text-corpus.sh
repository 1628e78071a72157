#!/bin/sh
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
#
# Writes the seeds of fuzz/state_file.c and fuzz/status_escape.c:
# state files as the module writes them and as they go wrong, and strings
# as names, paths and messages hold them.  Run from the repository root.

set -e

s=fuzz/corpus/state_file
e=fuzz/corpus/status_escape
mkdir -p "$s" "$e"

# printf: %% for a percent sign, octal escapes for other bytes
seed() { printf "$2" > "$1"; }

H='qqfail-state 1\n'

# state files

seed $s/v4 "${H}s app server1.example.com:8080 0 1764400000 127.77.241.10:8080 127.77.241.11:8080\nend 1\n"
seed $s/v6 "${H}s app [2001:db8::1]:443,v6.example.com:443 1 1764400000 [2001:db8::10]:443 [::ffff:192.0.2.1]:443 [fe80::1:2:3:4]:443\nend 1\n"
seed $s/names "${H}s my%%20upstream%%0Aname a.test:80,b.test:81,c.test:82 2 1764400000 10.0.0.1:80\ns %%25%%C3%%A9t%%C3%%A9 x.test:80 0 0 10.0.0.2:80 [::1]:80\nend 2\n"
seed $s/comments "${H}# written by the leader\n\ns app a.test:80 0 1764400000 192.0.2.1:80\n\n# two\ns app b.test:80 0 1764400000 192.0.2.2:80\nend 2\n"
seed $s/empty "${H}end 0\n"
seed $s/max "${H}s u a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1 7 9223372036854775807 1.0.0.1:1 1.0.0.2:2 1.0.0.3:3 1.0.0.4:4 1.0.0.5:5 1.0.0.6:6 1.0.0.7:7 1.0.0.8:8 1.0.0.9:9 1.0.0.10:10 1.0.0.11:11 1.0.0.12:12 1.0.0.13:13 1.0.0.14:14 1.0.0.15:15 1.0.0.16:16 1.0.0.17:17 1.0.0.18:18 1.0.0.19:19 1.0.0.20:20 1.0.0.21:21 1.0.0.22:22 1.0.0.23:23 1.0.0.24:24 1.0.0.25:25 1.0.0.26:26 1.0.0.27:27 1.0.0.28:28 1.0.0.29:29 1.0.0.30:30 1.0.0.31:31 [ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535\nend 1\n"
seed $s/truncated "${H}s app server1.example.com:8080 0 1764400000 127.77.241.10:8080\ns app server2.example.com:8080 0 17644"
seed $s/no-end "${H}s app server1.example.com:8080 0 1764400000 127.77.241.10:8080\n"
seed $s/bad-version "qqfail-state 2\ns app a.test:80 0 1764400000 192.0.2.1:80\nend 1\n"
seed $s/not-state "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
seed $s/bad-count "${H}s app a.test:80 0 1764400000 192.0.2.1:80\nend 2\n"
seed $s/after-end "${H}end 0\ns app a.test:80 0 1764400000 192.0.2.1:80\n"
seed $s/bad-addrs "${H}s app a.test:80 0 1764400000 127.77.241.:8080 127...1:8080 .77.241.10:8080\nend 1\n"
seed $s/bad-port "${H}s app a.test:80 0 1764400000 192.0.2.1:0 192.0.2.1:65536 [::1]80\nend 1\n"
seed $s/bad-escape "${H}s app%%2 a.test:80 0 1764400000 192.0.2.1:80\nend 1\n"
seed $s/bad-index "${H}s app a.test:80 8 1764400000 192.0.2.1:80\nend 1\n"
seed $s/control "${H}s app a.test:80 0 1764400000\t192.0.2.1:80\nend 1\n"

# strings

seed $e/ascii 'backend-1.example.com:8080'
seed $e/utf8 'caf\303\251 \346\235\261\344\272\254 \360\237\230\200 \316\261\316\262'
seed $e/invalid 'a\200b\300\257c\355\240\200d\364\220\200\200e\377\303\303f\342\202'
seed $e/quotes 'say "hi" \\ back\\slash '"'"'single'"'"''
seed $e/newlines 'line 1\nline 2\r\n\ttab\001\037\177 end'
seed $e/tags '<script>alert("x")</script> &amp; &lt;b&gt; a&b'
seed $e/cut "$(printf '%060d' 0)\346\235\261\346\235\261\360\237\230\200"
seed $e/message 'resolver: provider "8.8.8.8:53" failed for name "\303\251t\303\251.test" (timed out)'
