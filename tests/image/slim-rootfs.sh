#!/bin/sh
# Run by the Dockerfile's build stage, as root, on that stage's whole root filesystem (a Debian
# bookworm with python3, git, ssh and CA certificates, the agent's venv in /opt/venv): removes what
# the agent never uses at run time, so that the final stage, a copy of this tree, holds only
#
#   python3.11 with the stdlib modules the agent and its dependencies import, the venv
#   git (the `git` command and its https remote helper) and ssh, for the config repository
#   /bin/sh (dash: git runs GIT_SSH_COMMAND through it) and CA certificates
#   the shared libraries those link (checked at the end: a missing one fails the build)
#
# Nothing here installs or downloads anything (binutils' strip must already be there).
set -eu

venv=/opt/venv
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stdlib=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
say() { echo "slim-rootfs: $*"; }
size() { du -sxm --apparent-size / 2>/dev/null | cut -f1; }  # MiB, as the end counts them (no du there)
say "rootfs before: $(size) MB"

# --- site-packages ---------------------------------------------------------------------------------
# pip and setuptools are not needed to run; the asyncio copy of the Kubernetes client is never imported
"$venv/bin/pip" uninstall --quiet --yes pip setuptools 2>/dev/null || true
rm -rf "$site/kubernetes/aio"
# the dependencies' own test suites and type stubs (py.typed markers stay)
find "$site" -depth -type d \( -name tests -o -name test \) -not -path '*/gitops_agent/*' -exec rm -rf {} +
find "$site" -name '*.pyi' -delete
# the wheels' extension modules carry their symbol tables and DWARF (debug only)
find "$site" -name '*.so' -type f -exec "${STRIP:-strip}" --strip-unneeded {} +

# --- stdlib ---------------------------------------------------------------------------------------
# no interactive tools, no packaging, no tests, no GUI, no 2to3, no help texts
for d in test idlelib tkinter turtledemo lib2to3 pydoc_data ensurepip distutils venv; do
  rm -rf "${stdlib:?}/$d"
done
rm -f "$stdlib"/lib-dynload/_test*.so "$stdlib"/lib-dynload/_ctypes_test*.so \
      "$stdlib"/lib-dynload/_xxtestfuzz*.so "$stdlib"/lib-dynload/xxlimited*.so
# modules for terminals and local databases, which neither the agent nor its dependencies import (a
# library each: ncurses, readline, Berkeley DB, SQLite, NIS, libcrypt; dbm keeps its pure fallback)
rm -rf "$stdlib/sqlite3" "$stdlib/curses"
rm -f "$stdlib"/lib-dynload/_sqlite3.*so "$stdlib"/lib-dynload/_curses*.so "$stdlib"/lib-dynload/readline.*so \
      "$stdlib"/lib-dynload/_dbm.*so "$stdlib"/lib-dynload/_gdbm.*so "$stdlib"/lib-dynload/nis.*so \
      "$stdlib"/lib-dynload/_crypt.*so "$stdlib"/crypt.py
find "$stdlib" -maxdepth 1 -name 'turtle.py' -delete

# --- bytecode -------------------------------------------------------------------------------------
# Compiled now, as the root filesystem is read-only at run time (unchecked: the image never changes
# under it). The agent keeps its sources beside its bytecode, so its tracebacks quote them; the
# dependencies and the stdlib keep only bytecode, in place of their sources (tracebacks still name
# file, line and function): that halves them, and kubectl and helm (120 MB) leave no room for both.
# Without sources a traceback has no columns to point at, so their bytecode leaves them out
# (no_debug_ranges), and the Kubernetes client's generated API and model classes (no asserts, no
# use of __doc__) are compiled without their docstrings (optimize=2): 6 MB of the 24.
"$venv/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$site/gitops_agent"
"$venv/bin/python" -X no_debug_ranges - "$site" "$stdlib" <<'PY'
import py_compile
import shutil
import sys
from pathlib import Path

for top in map(Path, sys.argv[1:]):
    for path in sorted(top.rglob("*"), reverse=True):  # children first
        if "gitops_agent" in path.relative_to(top).parts:
            continue
        if path.name == "__pycache__" and path.is_dir():
            shutil.rmtree(path)
        elif path.suffix == ".py" and path.is_file():
            generated = path.parent.parts[-3:] in {("kubernetes", "client", "api"), ("kubernetes", "client", "models")}
            try:
                py_compile.compile(str(path), cfile=str(path) + "c", doraise=True, optimize=2 if generated else 0,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError:
                continue  # not Python 3 (a template, a fixture): left as it is
            path.unlink()
PY

# --- the OS ---------------------------------------------------------------------------------------
# packages the agent never runs: the package manager, perl, login and disk tools, the build tools
# (binutils for the strip above), python's wheel caches for ensurepip, git's man pages and zoneinfo
# (the tzdata wheel is in the venv). dpkg's database records what stays, for scanners.
unneeded="apt libapt-pkg6.0 gpgv debian-archive-keyring adduser debconf perl-base
  login passwd libpam-modules libpam-modules-bin libpam-runtime libpam0g libsemanage2 libsemanage-common
  libsepol2 e2fsprogs libext2fs2 libss2 logsave util-linux util-linux-extra mount bsdutils
  libfdisk1 libsmartcols1 libmount1 libblkid1 libsystemd0 libgcrypt20
  ncurses-bin ncurses-base openssl git-man tzdata python3-pip-whl python3-setuptools-whl
  python3-venv python3.11-venv python3-lib2to3 python3-distutils
  binutils binutils-common binutils-x86-64-linux-gnu libbinutils libctf0 libctf-nobfd0 libgprofng0
  libjansson4 libsframe1
  libdb5.3 libsasl2-modules-db libsqlite3-0 libncursesw6 libreadline8 readline-common libedit2 libbsd0
  libfido2-1 libcbor0.8 libgdbm6 libgdbm-compat4 libaudit1 libaudit-common libseccomp2 liblz4-1 libxxhash0
  libgpg-error0 libtirpc3 libtirpc-common libnsl2 libcrypt1 libfile-find-rule-perl libnumber-compare-perl
  libtext-glob-perl"
installed=$(dpkg-query -W -f='${Package}\n' $unneeded 2>/dev/null || true)
for pkg in $installed; do  # their removal scripts would need the very tools removed with them
  rm -f "/var/lib/dpkg/info/$pkg.prerm" "/var/lib/dpkg/info/$pkg.postrm" \
        "/var/lib/dpkg/info/$pkg:"*.prerm "/var/lib/dpkg/info/$pkg:"*.postrm
done
# shellcheck disable=SC2086 # a word list
dpkg --purge --force-all $installed >/dev/null 2>&1

# git: only the `git` command and its http(s) remote helper; the daemon, shell, http backend,
# imap-send, scalar, the perl/tcl/web tools and the i18n helper are never run
cd /usr/lib/git-core
rm -rf git-daemon git-http-backend git-http-fetch git-http-push git-imap-send git-shell scalar \
  git-sh-i18n--envsubst git-instaweb git-web--browse mergetools git-mergetool* git-difftool* \
  git-credential-cache--daemon git-fsmonitor--daemon
cd /
rm -f /usr/bin/git-shell /usr/bin/scalar
# /usr/bin/git is its own copy of /usr/lib/git-core/git (Debian): one is enough
ln -sf ../lib/git-core/git /usr/bin/git
# ssh: only the client (no agent, keygen, sftp, scp)
rm -f /usr/bin/ssh-agent /usr/bin/ssh-add /usr/bin/ssh-keygen /usr/bin/ssh-keyscan /usr/bin/sftp \
  /usr/bin/scp /usr/bin/ssh-argv0 /usr/bin/ssh-copy-id /usr/lib/openssh/ssh-keysign \
  /usr/lib/openssh/ssh-pkcs11-helper /usr/lib/openssh/ssh-sk-helper
# glibc's iconv modules (Python has its own codecs; git runs with LC_ALL=C) and locale data
rm -rf /usr/lib/*-linux-gnu/gconv /usr/lib/locale/* /usr/share/i18n
# documentation (but the copyright files of what stays), completion, package manager leftovers,
# caches and logs
rm -rf /usr/share/man /usr/share/info /usr/share/locale /usr/share/lintian \
  /usr/share/bash-completion /usr/share/gitweb /usr/share/perl5 /usr/share/bug \
  /usr/share/python-wheels /usr/share/zoneinfo /usr/lib/apt /usr/lib/dpkg /etc/apt /var/lib/apt \
  /var/cache/* /var/log/* /wheels

# every ELF file that stays finds every library it links (ld.so resolves them as at run time)
ld_so=$(ls /lib64/ld-linux*.so.* /lib/ld-linux*.so.* 2>/dev/null | head -n 1)
missing=$(find / -xdev -type f \( -perm -u+x -o -name '*.so*' \) -size +1k 2>/dev/null | while read -r f; do
  [ "$(head -c 4 "$f" | tail -c 3)" = ELF ] || continue
  "$ld_so" --list "$f" 2>&1 | grep -E 'not found|error while loading' | sed "s|^|$f: |" || true
done)
if [ -n "$missing" ]; then
  say "libraries missing after pruning:"; echo "$missing"; exit 1
fi
# last, by dpkg (after them: shell builtins and Python): the everyday tools nothing in the agent
# runs (/bin/sh stays, dash: git runs GIT_SSH_COMMAND with it), then dpkg's file lists
tools="coreutils bash tar gzip diffutils findutils grep sed sysvinit-utils hostname mawk debianutils
  init-system-helpers libc-bin"
installed=$(dpkg-query -W -f='${Package}\n' $tools 2>/dev/null || true)
rm -f "$0"
for pkg in $installed; do
  rm -f "/var/lib/dpkg/info/$pkg.prerm" "/var/lib/dpkg/info/$pkg.postrm"
done
# shellcheck disable=SC2086 # a word list
dpkg --purge --force-all $installed >/dev/null 2>&1
"$venv/bin/python" - <<'PY'
import os
import shutil

shutil.rmtree("/var/lib/dpkg/info")
seen, total = set(), 0
for top, dirs, files in os.walk("/"):
    if top in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    for name in files:
        st = os.lstat(os.path.join(top, name))
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
print(f"slim-rootfs: rootfs after: {total // 2**20} MB")
PY
