#!/usr/bin/env bash
# make fresh-check: the README's two commands on a fresh Debian 12, where nothing was installed
# by hand. A minimal bookworm root (debootstrap --variant=minbase, plus only python3, g++, make,
# git and ca-certificates) gets the host's rustup toolchain mounted read-only, the host's CA
# certificates and pip configuration (so downloads work as on the host), and a clone of this
# checkout's HEAD (commit first: uncommitted changes are not in it). Then, in a chroot:
#
#   plain          as root: `make demo`, then `make test` must pass
#   libclang-cpp   the same with libclang-cpp14 preinstalled (a libclang that is not libclang)
#   nonroot        as a user without sudo: `make demo` must end in setup's one message
#
#   scripts/fresh-check.sh [VARIANT...]      default: all three, in that order
#
# Needs root (debootstrap, chroot, mounts); installs debootstrap with apt-get when missing.
# The base root is cached as a tarball in $FRESH_CACHE (default ~/.cache/bpr_ops-fresh-check) and
# every variant starts from a pristine copy of it. A full variant downloads TensorFlow and builds
# the serving host in the root: 30 minutes or more on 2 cores. Logs: $FRESH_CACHE/<variant>.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache="${FRESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bpr_ops-fresh-check}"
suite=bookworm
packages=python3,g++,make,git,ca-certificates

say() { printf '[fresh-check] %s\n' "$*"; }
die() { printf '[fresh-check] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and bind mounts)"
variants=("$@")
[ "${#variants[@]}" -gt 0 ] || variants=(plain libclang-cpp nonroot)
for v in "${variants[@]}"; do
  case "$v" in plain | libclang-cpp | nonroot) ;; *) die "unknown variant '$v' (plain, libclang-cpp, nonroot)" ;; esac
done

# The host's rustup toolchain, mounted read-only into the root.
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
[ -d "$rustup_home/toolchains" ] && [ -x "$cargo_bin/cargo" ] ||
  die "no rustup toolchain at $rustup_home and $cargo_bin (the root uses the host's)"

# The Debian mirror this machine's apt uses (deb822 .sources or one-line .list entries).
host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      /^$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0 }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$suite" '$1 == "deb" && $0 ~ " " suite " " { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
}
mirror=$( (host_mirror || true) | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

# --- The base root, made once. ----------------------------------------------------------------------
mkdir -p "$cache"
base="$cache/$suite-minbase-$(printf '%s %s' "$packages" "$mirror" | sha256sum | cut -c1-12).tar"
if [ ! -f "$base" ]; then
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
  fi
  say "debootstrap $suite (minbase + $packages) from $mirror"
  tmp="$cache/base.tmp"
  rm -rf "$tmp"
  start=$SECONDS
  debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    die "debootstrap failed: see $cache/debootstrap.log"
  tar -C "$tmp" -cpf "$base.part" . && mv "$base.part" "$base"
  rm -rf "$tmp"
  say "base root cached: $base ($((SECONDS - start)) s)"
fi

# --- One variant in a pristine copy. ------------------------------------------------------------------
root=""
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[i]}" 2>/dev/null || umount -lR "${mounted[i]}" 2>/dev/null || true
  done
  mounted=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

remove_root() { # never through a mount that is still there (/dev, /sys, the toolchain)
  cleanup
  if grep -q " $1/" /proc/mounts; then die "mounts remain under $1: not removing it"; fi
  rm -rf "$1"
}

bind() { # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --rbind "$1" "$2"
  mount --make-rslave "$2"
  mounted+=("$2")
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}

prepare_root() { # prepare_root VARIANT: unpack, configure, mount, clone
  root="$cache/root-$1"
  grep " $root/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  remove_root "$root"
  mkdir -p "$root"
  tar -C "$root" -xpf "$base"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # debootstrap writes no /etc/hosts; every installed Debian (and every container) has one, and
  # without it `localhost` does not resolve (the tf.data service test hung on it once).
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  # apt as on the host: its Debian sources and its Acquire settings.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
    : >"$root/etc/apt/sources.list"
  fi
  { grep -l '^Acquire::' /etc/apt/apt.conf.d/* 2>/dev/null || true; } | xargs -r cp -t "$root/etc/apt/apt.conf.d/"
  # The host's extra CA certificates (an egress proxy's, for one) in the root's trust store.
  if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
    cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1
  fi
  # pip's configuration: every setting `pip config list` shows on the host (files and PIP_*
  # variables), written as the root's /etc/pip.conf; find-links folders are copied in.
  {
    echo "[global]"
    { python3 -m pip config list 2>/dev/null || true; } | sed -n "s/^[^.]*\.\([a-z-]*\)='\(.*\)'$/\1 = \2/p" | sort -u -t= -k1,1
  } >"$root/etc/pip.conf"
  sed -n 's/^find-links = //p' "$root/etc/pip.conf" | while read -r dir; do
    [ ! -d "$dir" ] || { mkdir -p "$root$dir" && cp -r "$dir/." "$root$dir/"; }
  done

  mkdir -p "$root/proc" "$root/sys" "$root/dev"
  mount -t proc proc "$root/proc" && mounted+=("$root/proc")
  bind /sys "$root/sys"
  bind /dev "$root/dev"
  bind "$rustup_home" "$root/opt/rust/rustup" ro
  bind "$cargo_bin" "$root/opt/rust/cargo-bin" ro
}

in_root() { # in_root USER HOME COMMAND: a login-like clean environment
  local spec=()
  [ "$1" = root ] || spec=(--userspec="$1:$1")
  chroot "${spec[@]}" "$root" /usr/bin/env -i HOME="$2" USER="$1" LANG=C.UTF-8 TERM=dumb \
    PATH=/opt/rust/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/opt/rust/rustup CARGO_HOME="$2/.cargo" \
    /bin/bash -c "$3"
}

clone_into() { # clone_into HOME OWNER: a clone of this checkout's HEAD at HOME/bpr_ops
  local head
  head=$(git -C "$repo" rev-parse HEAD)
  git -C "$repo" diff --quiet HEAD -- 2>/dev/null || say "note: uncommitted changes in $repo are not in the clone (HEAD $head)"
  mkdir -p "$root$1"
  git clone -q --no-local "$repo" "$root$1/bpr_ops"
  git -C "$root$1/bpr_ops" checkout -q --detach "$head"
  [ "$2" = root ] || chroot "$root" chown -R "$2:$2" "$1"
}

results=()
run_variant() {
  local v=$1 start=$SECONDS status=0 log="$cache/$1.log"
  say "variant $v: preparing a pristine root (log: $log)"
  prepare_root "$v"
  case "$v" in
    plain | libclang-cpp)
      if [ "$v" = libclang-cpp ]; then
        in_root root /root 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libclang-cpp14' >"$log" 2>&1 ||
          die "could not preinstall libclang-cpp14 (see $log)"
      fi
      clone_into /root root
      say "variant $v: make demo && make test, as root"
      in_root root /root 'cd ~/bpr_ops && make demo && make test' >>"$log" 2>&1 || status=$?
      if [ "$status" = 0 ]; then results+=("$v: PASS in $((SECONDS - start)) s (make demo and make test)")
      else results+=("$v: FAIL (exit $status) after $((SECONDS - start)) s: see $log"); fi
      ;;
    nonroot)
      in_root root /root 'useradd --create-home --uid 1000 --shell /bin/bash user' >"$log" 2>&1
      clone_into /home/user 1000
      say "variant $v: make demo as a user without sudo (setup must stop with its message)"
      in_root 1000 /home/user 'cd ~/bpr_ops && make demo' >>"$log" 2>&1 || status=$?
      local problems=()
      [ "$status" != 0 ] || problems+=("make demo succeeded, though nothing could be installed")
      grep -q '^\[setup\] error: this machine lacks' "$log" || problems+=("no setup message")
      [ "$(grep -c '^\[setup\] error' "$log")" -le 1 ] || problems+=("more than one setup error")
      grep -q 'Debian/Ubuntu:  apt-get install' "$log" || problems+=("no Debian/Ubuntu command")
      grep -q 'Fedora/RHEL:    dnf install' "$log" || problems+=("no Fedora/RHEL command")
      ! grep -qE 'Traceback|command not found|panicked|No module named' "$log" || problems+=("a crash or a missing command in the output")
      if [ "${#problems[@]}" = 0 ]; then results+=("$v: PASS in $((SECONDS - start)) s (setup's message, exit $status)")
      else results+=("$v: FAIL after $((SECONDS - start)) s: $(IFS=';'; echo "${problems[*]}"): see $log"); fi
      sed -n '/^\[setup\]/,$p' "$log" | sed 's/^/    | /'
      ;;
  esac
  cleanup
  say "${results[-1]}"
  [ -n "${FRESH_KEEP:-}" ] || remove_root "$root"
}

for v in "${variants[@]}"; do run_variant "$v"; done
printf '\n'
for r in "${results[@]}"; do say "$r"; done
! printf '%s\n' "${results[@]}" | grep -q ': FAIL'
