#!/usr/bin/env bash
# Packaging checks (run by CI): builds the .deb with plain `cargo deb`, checks its files
# (config, man page, shell completions) and control data, installs,
# upgrades and purges it in a throwaway root, smoke-runs the installed binary with the
# installed config the way systemd would, and holds the unit to `systemd-analyze verify`
# (silent) and `systemd-analyze security --offline=true` (exposure <= 2.0).
#
# Usage: packaging/check.sh   (as root on Debian/Ubuntu; installs systemd, dpkg-dev and
# cargo-deb when missing). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=2.0
WORK=$(mktemp -d /tmp/gatehouse-pkg.XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "  ok: $*"; }

echo "== packaging prerequisites"
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v dpkg-architecture >/dev/null 2>&1 || missing+=(dpkg-dev)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked --version '^3.8'
fi
systemd-analyze --version | sed -n 1p
cargo deb --version

echo "== build the .deb (plain cargo deb, as on a fresh clone)"
# cargo-deb prints the path of the .deb as the last line of its standard output.
BUILT=$(cargo deb --locked | tail -n 1)
[ -f "$BUILT" ] || fail "cargo deb did not produce a .deb (got '$BUILT')"
ok "$BUILT"
# A copy: building the upgrade package below makes cargo-deb delete other versions in target/debian.
DEB="$WORK/$(basename "$BUILT")"
cp "$BUILT" "$DEB"

echo "== control data (dpkg-deb -I / -f)"
ARCH=$(dpkg --print-architecture)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
field() { dpkg-deb -f "$DEB" "$1"; }
expect_field() {
  local got
  got=$(field "$1")
  [ "$got" = "$2" ] || fail "control field $1 is '$got', expected '$2'"
  ok "$1: $got"
}
expect_field Package gatehouse
expect_field Version "$VERSION-1"
expect_field Architecture "$ARCH"
expect_field Section net
expect_field Priority optional
[[ "$(field Depends)" == *libc6* ]] || fail "Depends lacks libc6: $(field Depends)"
ok "Depends: $(field Depends)"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ -n "$(field Description)" ] || fail "no Description"
info=$(dpkg-deb -I "$DEB")
for script in postinst prerm postrm conffiles; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$script\b" <<<"$info" || fail "control member $script missing"
done
ok "control members postinst prerm postrm conffiles"
[ "$(dpkg-deb -I "$DEB" conffiles)" = /etc/gatehouse/config.toml ] ||
  fail "conffiles is '$(dpkg-deb -I "$DEB" conffiles)', expected /etc/gatehouse/config.toml"
ok "conffiles: /etc/gatehouse/config.toml"

echo "== files (dpkg-deb -c)"
contents=$(dpkg-deb -c "$DEB")
expect_file() { # mode path
  grep -qE "^$1 0/0 +[0-9]+ .* \./$2\$" <<<"$contents" ||
    fail "the package lacks $2 with mode $1; contents:
$contents"
  ok "$1 /$2"
}
expect_file -rwxr-xr-x usr/bin/gatehouse
expect_file -rw-r--r-- lib/systemd/system/gatehouse.service
expect_file -rw-r--r-- usr/lib/sysusers.d/gatehouse.conf
expect_file -rw-r--r-- usr/lib/tmpfiles.d/gatehouse.conf
expect_file -rw-r--r-- etc/gatehouse/config.toml
expect_file -rw-r--r-- usr/share/doc/gatehouse/copyright
for page in packaging/man/*.1; do
  expect_file -rw-r--r-- "usr/share/man/man1/$(basename "$page").gz"
done
expect_file -rw-r--r-- usr/share/bash-completion/completions/gatehouse
expect_file -rw-r--r-- usr/share/zsh/vendor-completions/_gatehouse
expect_file -rw-r--r-- usr/share/fish/vendor_completions.d/gatehouse.fish
for path in etc/gatehouse/jwt_secret var/lib/gatehouse; do
  if grep -q " \./$path" <<<"$contents"; then fail "the package ships $path (postinst makes it)"; fi
done
ok "no jwt_secret or data dir in the package"

echo "== packaged config"
# Unpacked once into a directory and read from files: a reader that stops early
# (head, grep -q) on a pipe from dpkg-deb kills it with SIGPIPE, which pipefail
# turns into a failure that comes and goes with timing.
dpkg-deb -x "$DEB" "$WORK/unpacked"
cp "$WORK/unpacked/etc/gatehouse/config.toml" "$WORK/config.toml"
grep -qx 'data_dir = "/var/lib/gatehouse"' "$WORK/config.toml" || fail "packaged config: data_dir is not /var/lib/gatehouse"
grep -qx 'listen = "127.0.0.1:8080"' "$WORK/config.toml" || fail "packaged config: listen is not 127.0.0.1:8080"
# Apart from its header and data_dir it is the project's documented config.toml.
diff <(grep -v '^data_dir = ' config.toml) <(sed '1,/^#$/d' "$WORK/config.toml" | grep -v '^data_dir = ') >/dev/null ||
  fail "packaged config differs from config.toml beyond data_dir"
ok "data_dir /var/lib/gatehouse, listen 127.0.0.1:8080, otherwise config.toml"
cmp -s "$WORK/config.toml" packaging/config.toml || fail "packaged config is not packaging/config.toml"
ok "packaged config is packaging/config.toml"

echo "== man page and shell completions"
extract() { cat "$WORK/unpacked/$1"; }
for page in packaging/man/*.1; do
  name=$(basename "$page")
  [ "$(extract "usr/share/man/man1/$name.gz" | gzip -dc)" = "$(cat "$page")" ] ||
    fail "the packaged $name is not $page"
done
ok "man pages: $(cd packaging/man && echo *.1)"
man_page=$(cat packaging/man/gatehouse.1)
grep -q '^\.TH gatehouse 1 ' <<<"$man_page" || fail "gatehouse.1 has no .TH gatehouse 1 header"
for sub in serve check-config user ban backup restore; do
  # roff escapes every hyphen: gatehouse\-check\-config(1).
  grep -qF "gatehouse\-${sub//-/\\-}(1)" <<<"$man_page" || fail "gatehouse.1 does not refer to gatehouse-$sub(1)"
done
ok "gatehouse(1) refers to gatehouse-{serve,check-config,user,ban,backup,restore}(1)"
if command -v man >/dev/null 2>&1; then
  extract usr/share/man/man1/gatehouse.1.gz >"$WORK/gatehouse.1.gz"
  rendered=$(MANWIDTH=80 man -l "$WORK/gatehouse.1.gz" 2>&1) || fail "man -l: $rendered"
  [[ "$rendered" == *"single-binary authentication server"* ]] || fail "man -l rendered: $rendered"
  ok "man -l renders it"
fi
extract usr/share/bash-completion/completions/gatehouse >"$WORK/gatehouse.bash"
bash -n "$WORK/gatehouse.bash" || fail "the bash completion does not parse"
out=$(bash -c 'source "$1"; COMP_WORDS=(gatehouse us); COMP_CWORD=1; _gatehouse gatehouse us gatehouse; printf "%s\n" "${COMPREPLY[@]}"' _ "$WORK/gatehouse.bash") ||
  fail "the bash completion failed to run"
[ "$out" = user ] || fail "bash completion of 'gatehouse us' gave '$out', expected 'user'"
ok "bash: parses, completes 'gatehouse us' to 'user'"
[ "$(sed -n 1p "$WORK/unpacked/usr/share/zsh/vendor-completions/_gatehouse")" = "#compdef gatehouse" ] ||
  fail "the zsh completion does not start with #compdef gatehouse"
ok "zsh: #compdef gatehouse"
grep -q '^complete -c gatehouse ' "$WORK/unpacked/usr/share/fish/vendor_completions.d/gatehouse.fish" ||
  fail "the fish completion has no 'complete -c gatehouse' line"
ok "fish: complete -c gatehouse"

echo "== install into a throwaway root (dpkg --root, chrootless maintainer scripts)"
# dpkg --root alone would chroot into the root to run the maintainer scripts, which needs a
# whole Debian inside. --force-script-chrootless runs them on the host with DPKG_ROOT set
# to the root instead; the scripts put every path (and systemd-sysusers, systemd-tmpfiles and
# deb-systemd-helper) under it. --force-depends: the root has no libc6 package to satisfy
# Depends. The scripts find no systemd running there, as in a chroot or an image build.
R="$WORK/root"
mkdir -p "$R/etc" "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
rdpkg() { dpkg --root="$R" --force-script-chrootless --force-depends "$@"; }
rdpkg -i "$DEB" >"$WORK/dpkg-install.log" 2>&1 || {
  cat "$WORK/dpkg-install.log" >&2
  fail "dpkg -i into the throwaway root"
}
status=$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Status} ${Version}' gatehouse)
[ "$status" = "install ok installed $VERSION-1" ] || fail "package status: $status"
ok "dpkg: $status"

user=$(grep '^gatehouse:' "$R/etc/passwd") || fail "postinst created no user gatehouse"
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
[ "$home" = /var/lib/gatehouse ] && [ "$shell" = /usr/sbin/nologin ] || fail "user: $user"
[ "$uid" -lt 1000 ] || fail "gatehouse is not a system user: $user"
grep -q "^gatehouse:x:$gid:" "$R/etc/group" || fail "no group gatehouse with gid $gid"
ok "system user: $user"

expect_stat() { # path "uid:gid:mode" what
  local got
  got=$(stat -c %u:%g:%a "$R$1") || fail "$1 missing ($3)"
  [ "$got" = "$2" ] || fail "$1 is $got, expected $2 ($3)"
  ok "$1 $2 ($3)"
}
expect_stat /etc/gatehouse/jwt_secret "$uid:$gid:600" "generated secret"
expect_stat /etc/gatehouse/config.toml "0:$gid:640" "config readable by the service's group"
expect_stat /var/lib/gatehouse "$uid:$gid:700" "data dir"
expect_stat /usr/bin/gatehouse "0:0:755" "binary"
secret=$(cat "$R/etc/gatehouse/jwt_secret")
[[ "$secret" =~ ^[0-9a-f]{64}$ ]] || fail "the generated secret is not 64 hex digits"
ok "secret: 64 hex digits (256 bits)"
[ "$(readlink "$R/etc/systemd/system/multi-user.target.wants/gatehouse.service")" = /lib/systemd/system/gatehouse.service ] ||
  fail "gatehouse.service is not enabled (no multi-user.target.wants link)"
ok "enabled: multi-user.target.wants/gatehouse.service"

echo "== the installed binary with the installed config, as systemd would run it"
"$R/usr/bin/gatehouse" --version >/dev/null || fail "gatehouse --version"
out=$(JWT_SECRET_FILE="$R/etc/gatehouse/jwt_secret" "$R/usr/bin/gatehouse" check-config --config "$R/etc/gatehouse/config.toml") ||
  fail "check-config rejects the packaged config or the generated secret"
[[ "$out" == *"data dir /var/lib/gatehouse"* ]] || fail "check-config: $out"
ok "check-config: $out"
# Like the unit: the secret as a credential, the data dir its own; only the listen address is
# changed (a free port) and the data dir is a scratch one.
mkdir -p "$WORK/creds" "$WORK/data"
cp "$R/etc/gatehouse/jwt_secret" "$WORK/creds/jwt_secret"
env -i PATH=/usr/bin:/bin CREDENTIALS_DIRECTORY="$WORK/creds" \
  GATEHOUSE_LISTEN=127.0.0.1:0 GATEHOUSE_DATA_DIR="$WORK/data" \
  "$R/usr/bin/gatehouse" serve --config "$R/etc/gatehouse/config.toml" 2>"$WORK/serve.log" &
SERVER_PID=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*listening.*addr=\([0-9.:]*\).*/\1/p' "$WORK/serve.log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || fail "the installed binary did not start: $(cat "$WORK/serve.log")"
exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
read -r statusline <&3 || true
exec 3<&-
[[ "$statusline" == "HTTP/1.1 200"* ]] || fail "GET /healthz answered '$statusline'"
[ -S "$WORK/data/admin.sock" ] || fail "no admin socket in the data dir"
[ ! -e "$WORK/data/jwt_secret" ] || fail "the server generated a secret instead of using the credential"
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
[ "$rc" = 0 ] || fail "gatehouse exited with $rc on SIGTERM: $(cat "$WORK/serve.log")"
SERVER_PID=
ok "served /healthz on $addr with the credential secret and the admin socket; clean exit on SIGTERM"

echo "== upgrade keeps an edited config and the secret"
sed -i 's/^registration = "open"$/registration = "closed"/' "$R/etc/gatehouse/config.toml"
grep -qx 'registration = "closed"' "$R/etc/gatehouse/config.toml" || fail "could not edit the config"
cargo deb --no-build --deb-version "$VERSION-2" --output "$WORK/" >/dev/null 2>&1 || fail "building the upgrade .deb"
UPGRADE="$WORK/gatehouse_${VERSION}-2_$ARCH.deb"
[ -f "$UPGRADE" ] || fail "no $UPGRADE"
cp "$DEB" "$BUILT"
rdpkg -i "$UPGRADE" >"$WORK/dpkg-upgrade.log" 2>&1 || {
  cat "$WORK/dpkg-upgrade.log" >&2
  fail "upgrade in the throwaway root"
}
status=$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Status} ${Version}' gatehouse)
[ "$status" = "install ok installed $VERSION-2" ] || fail "after the upgrade: $status"
grep -qx 'registration = "closed"' "$R/etc/gatehouse/config.toml" || fail "the upgrade overwrote the edited config"
[ "$(cat "$R/etc/gatehouse/jwt_secret")" = "$secret" ] || fail "the upgrade changed the secret"
[ "$(grep -c '^gatehouse:' "$R/etc/passwd")" = 1 ] || fail "the upgrade duplicated the user"
expect_stat /etc/gatehouse/jwt_secret "$uid:$gid:600" "secret after the upgrade"
ok "$status; edited config kept, secret and user unchanged"

echo "== purge"
rdpkg --purge gatehouse >"$WORK/dpkg-purge.log" 2>&1 || {
  cat "$WORK/dpkg-purge.log" >&2
  fail "purge in the throwaway root"
}
for path in /usr/bin/gatehouse /lib/systemd/system/gatehouse.service /etc/gatehouse/config.toml \
  /etc/gatehouse/jwt_secret /etc/systemd/system/multi-user.target.wants/gatehouse.service \
  /usr/share/man/man1/gatehouse.1.gz /usr/share/bash-completion/completions/gatehouse; do
  [ ! -e "$R$path" ] && [ ! -L "$R$path" ] || fail "$path is left after purge"
done
[ -d "$R/var/lib/gatehouse" ] || fail "purge removed the data dir (the accounts)"
ok "binary, unit, config, secret, enablement, man page and completion gone; data dir kept"

echo "== systemd-analyze verify (must be silent)"
# Offline verify resolves ExecStart= and the unit's dependencies inside --root: a root with
# the host's units plus the packaged unit and binary.
V="$WORK/verify"
mkdir -p "$V/lib/systemd/system" "$V/usr/bin"
cp -a /lib/systemd/system/. "$V/lib/systemd/system/"
dpkg-deb -x "$DEB" "$WORK/extracted"
cp "$WORK/extracted/lib/systemd/system/gatehouse.service" "$V/lib/systemd/system/gatehouse.service"
cp "$WORK/extracted/usr/bin/gatehouse" "$V/usr/bin/gatehouse"
verify_out=$(systemd-analyze verify --root="$V" gatehouse.service 2>&1) || fail "systemd-analyze verify failed: $verify_out"
[ -z "$verify_out" ] || fail "systemd-analyze verify printed:
$verify_out"
ok "silent"

echo "== systemd-analyze security --offline=true (exposure <= $MAX_EXPOSURE)"
security=$(systemd-analyze security --offline=true --no-pager "$WORK/extracted/lib/systemd/system/gatehouse.service" 2>&1) ||
  fail "systemd-analyze security failed: $security"
exposure=$(sed -n 's/.*Overall exposure level for gatehouse\.service: \([0-9.]*\).*/\1/p' <<<"$security")
[ -n "$exposure" ] || fail "no exposure level in: $security"
awk -v e="$exposure" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(e <= max) }' ||
  fail "exposure $exposure > $MAX_EXPOSURE:
$(grep -v '^✓' <<<"$security")"
ok "exposure $exposure"

echo "packaging checks passed (exposure $exposure)"
