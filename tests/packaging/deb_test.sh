#!/usr/bin/env bash
# Builds the Debian package with CPack, inspects it, installs it, checks the installed files, unit, user and
# config, then purges it and checks that everything is gone (a lockwatch package installed before the test is
# purged too). Needs root (dpkg), dpkg-dev (dpkg-shlibdeps), systemd (systemd-analyze), groff-base, file,
# man-db. Never starts the service. Usage: deb_test.sh SOURCE_DIR BUILD_DIR VERSION
set -uo pipefail

readonly src=$1 build=$2 version=$3
readonly pkg=lockwatch
failures=0
checks=0

pass() { checks=$((checks + 1)); echo "ok   - $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL - $*"; }
check() {  # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then pass "${what}"; else fail "${what}"; fi
}
die() { echo "FAIL - $*"; exit 1; }

((EUID == 0)) || die "must run as root (dpkg -i / --purge); run the packaging tests as root"
for tool in cpack dpkg dpkg-deb dpkg-shlibdeps systemd-analyze groff gzip file setpriv; do
  command -v "${tool}" >/dev/null || die "${tool} not found (packages: cmake dpkg-dev systemd groff-base gzip)"
done
[[ -x ${build}/lockwatch ]] || die "${build}/lockwatch is not built"

work=$(mktemp -d /tmp/lockwatch-deb-test.XXXXXX)
# dpkg does not wait for its lock (apt may be running elsewhere on the machine): retry for up to 60 s.
dpkg_locked() {
  local i
  for i in $(seq 1 60); do
    timeout 120 dpkg "$@" && return 0
    local status=$?
    fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1 || return "${status}"
    echo "# dpkg is locked by another process; retrying (${i})" >&2
    sleep 1
  done
  return 1
}
purge() { dpkg_locked --purge "${pkg}" >/dev/null 2>&1 || true; }
cleanup() {
  purge
  rm -rf "${work}"
}
trap cleanup EXIT

# A previous run may have left the package installed.
purge

# --- build ------------------------------------------------------------------------------------------------------
echo "# cpack -G DEB"
if ! (cd "${build}" && timeout 300 cpack -G DEB -B "${work}/out" >"${work}/cpack.log" 2>&1); then
  cat "${work}/cpack.log"
  die "cpack -G DEB failed"
fi
mapfile -t debs < <(find "${work}/out" -maxdepth 1 -name '*.deb')
((${#debs[@]} == 1)) || die "expected one .deb, found ${#debs[@]}: ${debs[*]}"
deb=${debs[0]}
arch=$(dpkg --print-architecture)
[[ $(basename "${deb}") == "${pkg}_${version}_${arch}.deb" ]] && pass "file name ${pkg}_${version}_${arch}.deb" ||
  fail "file name: $(basename "${deb}")"

# --- control data ---------------------------------------------------------------------------------------------
info=$(dpkg-deb --info "${deb}")
field() { dpkg-deb --field "${deb}" "$1"; }
[[ $(field Package) == "${pkg}" ]] && pass "Package: ${pkg}" || fail "Package: $(field Package)"
[[ $(field Version) == "${version}" ]] && pass "Version: ${version}" || fail "Version: $(field Version)"
[[ $(field Architecture) == "${arch}" ]] && pass "Architecture: ${arch}" || fail "Architecture: $(field Architecture)"
[[ -n $(field Maintainer) ]] && pass "Maintainer set" || fail "no Maintainer"
[[ -n $(field Description) ]] && pass "Description set" || fail "no Description"
depends=$(field Depends)
echo "# Depends: ${depends}"
# shlibdeps found the runtime libraries of the binary.
for lib in libc6 libstdc++6 libpq5 libpqxx-6.4 passwd; do
  tr ',' '\n' <<<"${depends}" | awk '{print $1}' | grep -qxF "${lib}" && pass "Depends on ${lib}" ||
    fail "Depends lacks ${lib}"
done
for script in postinst prerm postrm conffiles; do
  grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +[*]? *${script}( |$)" <<<"${info}" && pass "control member ${script}" ||
    fail "control member ${script} missing"
done
dpkg-deb --ctrl-tarfile "${deb}" | tar -tvf - >"${work}/ctrl.txt"
for script in postinst prerm postrm; do
  grep -Eq "^-rwxr-xr-x .* \./${script}$" "${work}/ctrl.txt" && pass "${script} is 0755" ||
    fail "${script} mode: $(grep "${script}" "${work}/ctrl.txt")"
done
mkdir -p "${work}/ctrl"
dpkg-deb --control "${deb}" "${work}/ctrl"
[[ $(cat "${work}/ctrl/conffiles") == "/etc/lockwatch/lockwatch.yaml" ]] &&
  pass "conffiles lists /etc/lockwatch/lockwatch.yaml" || fail "conffiles: $(cat "${work}/ctrl/conffiles")"
for script in postinst prerm postrm; do
  check "${script} is valid sh" sh -n "${work}/ctrl/${script}"
done

# --- contents -----------------------------------------------------------------------------------------------------
dpkg-deb --contents "${deb}" >"${work}/contents.txt"
has() {  # has PATH [MODE]: the archive holds PATH (as ./PATH), owned root/root, with MODE if given
  local path=$1 mode=${2:-}
  local line
  line=$(awk -v p="./${path#/}" '$6 == p' "${work}/contents.txt")
  if [[ -z ${line} ]]; then
    fail "package contains ${path}"
  elif [[ $(awk '{print $2}' <<<"${line}") != root/root ]]; then
    fail "${path} owned by $(awk '{print $2}' <<<"${line}")"
  elif [[ -n ${mode} && $(awk '{print $1}' <<<"${line}") != "${mode}" ]]; then
    fail "${path} mode $(awk '{print $1}' <<<"${line}"), expected ${mode}"
  else
    pass "package contains ${path}${mode:+ (${mode})}"
  fi
}
has /usr/bin/lockwatch -rwxr-xr-x
has /usr/lib/systemd/system/lockwatch.service -rw-r--r--
has /etc/lockwatch/lockwatch.yaml -rw-r--r--
has /usr/share/man/man1/lockwatch.1.gz -rw-r--r--
has /usr/share/lockwatch/sql/roles.sql
has /usr/share/lockwatch/examples/lockwatch.yaml
has /usr/share/doc/lockwatch/README.md
has /usr/share/doc/lockwatch/README-roles.md
has /usr/share/doc/lockwatch/examples/container/Containerfile
# Every documentation page, dashboard and rule file of the source tree ships (empty folders do not ship).
while IFS= read -r -d '' f; do has "/usr/share/doc/lockwatch/${f#"${src}/agent/docs/"}"; done \
  < <(find "${src}/agent/docs" -name '*.md' -type f -print0)
while IFS= read -r -d '' f; do has "/usr/share/doc/lockwatch/examples/kubernetes/${f#"${src}/packaging/kubernetes/"}"; done \
  < <(find "${src}/packaging/kubernetes" -type f -print0)
for dir in dashboards rules; do
  while IFS= read -r -d '' f; do has "/usr/share/lockwatch/${dir}/${f#"${src}/${dir}/"}"; done \
    < <(find "${src}/${dir}/" -type f -print0)
done
# Nothing outside the package's own places.
stray=$(awk '{print $6}' "${work}/contents.txt" | grep -Ev \
  '^\./((usr/?|usr/bin/?|usr/lib/?|usr/share/?|usr/share/man/?|usr/share/man/man1/?|usr/share/doc/?)|usr/bin/lockwatch|usr/lib/systemd/(system/(lockwatch\.service)?)?|etc/(lockwatch/(lockwatch\.yaml)?)?|usr/share/lockwatch/.*|usr/share/doc/lockwatch/.*|usr/share/man/man1/lockwatch\.1\.gz)?$')
[[ -z ${stray} ]] && pass "no files outside the package's paths" || fail "unexpected paths: ${stray}"
dpkg-deb --extract "${deb}" "${work}/root"
check "the packaged binary is stripped" bash -c "! file '${work}/root/usr/bin/lockwatch' | grep -q 'not stripped'"
check "man page is valid gzip" gzip -t "${work}/root/usr/share/man/man1/lockwatch.1.gz"
man_warnings=$(gzip -dc "${work}/root/usr/share/man/man1/lockwatch.1.gz" | groff -man -ww -z -t 2>&1)
[[ -z ${man_warnings} ]] && pass "man page renders without groff warnings" || fail "groff: ${man_warnings}"
man_text=$(gzip -dc "${work}/root/usr/share/man/man1/lockwatch.1.gz")
grep -q "^\.TH LOCKWATCH 1 .*\"lockwatch ${version}\"" <<<"${man_text}" && pass "man page version ${version}" ||
  fail "man page .TH: $(grep '^\.TH' <<<"${man_text}")"
for section in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "EXIT STATUS" ENVIRONMENT FILES; do
  grep -q "^\.SH \"\?${section}\"\?$" <<<"${man_text}" && pass "man page section ${section}" ||
    fail "man page lacks section ${section}"
done
# Every long flag the binary's commands accept is documented (man escapes '-' as '\-').
for cmd in "" tree run dump analyze report "rules check" "rules test" top; do
  # shellcheck disable=SC2086 # "rules check" is two words
  help=$("${build}/lockwatch" ${cmd} --help 2>&1)
  [[ -z ${cmd} ]] || grep -q "^Usage: lockwatch ${cmd}" <<<"${help}" ||
    { fail "\`lockwatch ${cmd}\` does not exist (its --help prints the top-level usage)"; continue; }
  for flag in $(grep -oE -- '--[a-z][a-z.-]*' <<<"${help}" | sort -u); do
    grep -qF -- "${flag//-/\\-}" <<<"${man_text}" && pass "man page documents ${cmd:-global} ${flag}" ||
      fail "man page lacks ${cmd:-global} ${flag}"
  done
done

# --- install (twice: the second run exercises postinst on an existing user) -------------------------------------
echo "# dpkg -i"
for round in 1 2; do
  if dpkg_locked -i "${deb}" >"${work}/install.log" 2>&1; then
    pass "dpkg -i (round ${round})"
  else
    cat "${work}/install.log"
    die "dpkg -i failed (round ${round})"
  fi
done
[[ $(dpkg-query -W -f='${db:Status-Abbrev}' "${pkg}") == "ii " ]] && pass "package state ii" ||
  fail "package state: $(dpkg-query -W -f='${db:Status-Abbrev}' "${pkg}")"
out=$(/usr/bin/lockwatch --version 2>&1)
[[ ${out} == "lockwatch ${version} "* ]] && pass "/usr/bin/lockwatch --version: ${out}" || fail "--version: ${out}"
out=$(/usr/bin/lockwatch --help 2>&1) && pass "lockwatch --help exits 0" || fail "lockwatch --help exit status"
for cmd in tree run; do
  grep -Eq "^  ${cmd} " <<<"${out}" && pass "lockwatch --help lists ${cmd}" || fail "lockwatch --help lacks ${cmd}"
done

# --- user, permissions ------------------------------------------------------------------------------------------
if entry=$(getent passwd lockwatch); then
  pass "user lockwatch exists"
  IFS=: read -r _ _ uid gid _ home shell <<<"${entry}"
  ((uid < 1000)) && pass "lockwatch is a system user (uid ${uid})" || fail "uid ${uid} is not a system uid"
  [[ ${shell} == /usr/sbin/nologin ]] && pass "shell nologin" || fail "shell ${shell}"
  [[ ${home} == /var/lib/lockwatch ]] && pass "home /var/lib/lockwatch" || fail "home ${home}"
  [[ $(getent group lockwatch | cut -d: -f3) == "${gid}" ]] && pass "primary group lockwatch" ||
    fail "primary group gid ${gid}"
else
  fail "user lockwatch exists"
fi
[[ $(stat -c '%U:%G %a' /etc/lockwatch/lockwatch.yaml) == "root:lockwatch 640" ]] &&
  pass "config root:lockwatch 0640" || fail "config $(stat -c '%U:%G %a' /etc/lockwatch/lockwatch.yaml)"
[[ $(stat -c '%U:%G %a' /etc/lockwatch) == "root:lockwatch 750" ]] && pass "/etc/lockwatch root:lockwatch 0750" ||
  fail "/etc/lockwatch $(stat -c '%U:%G %a' /etc/lockwatch)"
[[ $(stat -c '%U:%G %a' /var/lib/lockwatch 2>&1) == "lockwatch:lockwatch 750" ]] &&
  pass "/var/lib/lockwatch lockwatch:lockwatch 0750" || fail "/var/lib/lockwatch $(stat -c '%U:%G %a' /var/lib/lockwatch 2>&1)"

# The installed default config is accepted, and readable by the service user: the agent starts with it (exit
# 2 would be a config error) and stops cleanly (0) on SIGTERM. The configured server need not exist.
# setpriv execs the agent as the user (runuser would stay in between and die of the signal itself).
timeout --preserve-status -s TERM 3 setpriv --reuid=lockwatch --regid=lockwatch --init-groups /usr/bin/lockwatch run \
  --config /etc/lockwatch/lockwatch.yaml --listen 127.0.0.1:0 >"${work}/run.log" 2>&1
status=$?
if ((status == 0)); then
  pass "the service user runs the agent with the default config (exit 0 on SIGTERM)"
else
  fail "lockwatch run --config /etc/lockwatch/lockwatch.yaml as lockwatch: exit ${status}: $(head -c 600 "${work}/run.log")"
fi

# --- systemd unit -------------------------------------------------------------------------------------------------
unit=/usr/lib/systemd/system/lockwatch.service
verify=$(cd / && timeout 60 systemd-analyze verify "${unit}" 2>&1)
status=$?
((status == 0)) && [[ -z ${verify} ]] && pass "systemd-analyze verify: clean" ||
  fail "systemd-analyze verify (exit ${status}): ${verify}"
security=$(cd / && timeout 60 systemd-analyze security --offline=yes --no-pager "${unit}" 2>&1)
score=$(grep -oE 'Overall exposure level for lockwatch\.service: [0-9]+\.[0-9]+' <<<"${security}" | awk '{print $NF}')
if [[ -z ${score} ]]; then
  fail "systemd-analyze security: no overall exposure level: ${security}"
elif awk -v s="${score}" 'BEGIN { exit !(s < 2.0) }'; then
  pass "systemd-analyze security --offline=yes: exposure ${score} < 2"
else
  fail "systemd-analyze security exposure ${score} >= 2"
  grep '✗' <<<"${security}"
fi
grep -q '^User=lockwatch$' "${unit}" && pass "unit runs as User=lockwatch" || fail "unit lacks User=lockwatch"
grep -q '^ExecStart=/usr/bin/lockwatch run --config /etc/lockwatch/lockwatch.yaml$' "${unit}" &&
  pass "unit ExecStart uses the packaged binary and config" || fail "unit ExecStart: $(grep ExecStart= "${unit}")"
# Packaging never enables or starts the service by itself.
[[ ! -e /etc/systemd/system/multi-user.target.wants/lockwatch.service ]] && pass "service not enabled by install" ||
  fail "install enabled the service"

# --- purge --------------------------------------------------------------------------------------------------------
echo "# dpkg --purge"
if dpkg_locked --purge "${pkg}" >"${work}/purge.log" 2>&1; then pass "dpkg --purge"; else
  cat "${work}/purge.log"
  fail "dpkg --purge"
fi
dpkg-query -W -f='${db:Status-Abbrev}' "${pkg}" 2>/dev/null | grep -q '^ii' && fail "package still installed" ||
  pass "package no longer installed"
check "user lockwatch removed" bash -c '! getent passwd lockwatch'
check "group lockwatch removed" bash -c '! getent group lockwatch'
for path in /usr/bin/lockwatch "${unit}" /etc/lockwatch /var/lib/lockwatch /usr/share/lockwatch \
  /usr/share/doc/lockwatch /usr/share/man/man1/lockwatch.1.gz; do
  [[ ! -e ${path} ]] && pass "${path} removed" || fail "${path} still exists"
done

echo "# ${checks} checks, ${failures} failed"
((failures == 0))
