#!/usr/bin/env bash
# Prepares a machine for building and testing, run by every make target. It checks each thing
# by what the build really does with it, installs what is missing with apt-get (as root, or
# through sudo), and where it cannot install stops with one message that lists everything to
# install. Idempotent: on a ready machine it only checks.
#
#   scripts/setup.sh            what `make build`, `make test` and `make demo` need
#   scripts/setup.sh lint       also rustfmt and clippy (`make lint`)
#   scripts/setup.sh memcheck   also valgrind (`make memcheck`)
#
# PYTHON_BOOT names the Python that creates .venv (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

want_lint=0 want_memcheck=0
for arg in "$@"; do
  case "$arg" in
    lint) want_lint=1 ;;
    memcheck) want_memcheck=1 ;;
    *) die "unknown argument '$arg' (expected: lint, memcheck)" ;;
  esac
done

PY_BOOT="${PYTHON_BOOT:-python3}"

# What is missing, as Debian and Fedora packages, and why; plus what no package manager fixes.
deb=() rpm=() why=() manual=()
need() { # need DEBIAN_PACKAGE FEDORA_PACKAGE REASON
  deb+=("$1")
  [ -z "$2" ] || rpm+=("$2")
  why+=("$1: $3")
}

# --- Rust: cargo, and a rustc at least as new as the locked dependencies need. ----------------
# Every package's rust-version counts (the host's and the tests' dependencies need a newer Rust
# than the library alone), found by file name so the crate layout does not matter here.
required_rust() {
  local files
  files=$(git ls-files -- 'Cargo.toml' '*/Cargo.toml' 2>/dev/null ||
    find . -name Cargo.toml -not -path './target/*' -not -path './.venv/*')
  # shellcheck disable=SC2086
  sed -n 's/^[[:space:]]*rust-version[[:space:]]*=[[:space:]]*"\([0-9.]*\)".*/\1/p' $files /dev/null |
    sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1
}
version_ge() { # version_ge A B: A >= B, dotted numbers
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t. -k1,1n -k2,2n -k3,3n | head -n 1)" = "$2" ]
}
rust_min=$(required_rust)
if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
  manual+=("Rust ${rust_min:+>= $rust_min }(cargo and rustc): install rustup from https://rustup.rs, then open a new shell")
else
  rustc_version=$(rustc --version 2>/dev/null | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
  if [ -z "$rustc_version" ]; then
    manual+=("a working rustc: \`rustc --version\` fails (with rustup: \`rustup default stable\`)")
  elif [ -n "$rust_min" ] && ! version_ge "$rustc_version" "$rust_min"; then
    if command -v rustup >/dev/null; then
      manual+=("Rust >= $rust_min (the locked dependencies need it; rustc $rustc_version found): run \`rustup update\`")
    else
      manual+=("Rust >= $rust_min (the locked dependencies need it; rustc $rustc_version found, not from rustup): install a newer Rust, e.g. with rustup from https://rustup.rs")
    fi
  fi
fi

# --- C++ compiler for the shim (the cc crate calls c++). ----------------------------------------
command -v c++ >/dev/null || need g++ gcc-c++ "a C++ compiler for the op registration shim (cpp_shim/)"

# --- Python with a working venv and pip. -----------------------------------------------------------
have_python=1
command -v "$PY_BOOT" >/dev/null || { have_python=0; need python3 python3 "Python 3 to create .venv"; }

venv_works() { [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; }
# Debian's python3 has no ensurepip (it is in python3-venv): `python3 -m venv` then fails, after
# it has made .venv/bin/python. So the check makes a throwaway venv, as the real one is made.
can_make_venv() {
  local tmp ok=1
  tmp=$(mktemp -d)
  "$PY_BOOT" -m venv "$tmp/venv" >/dev/null 2>&1 && "$tmp/venv/bin/python" -m pip --version >/dev/null 2>&1 || ok=0
  rm -rf "$tmp"
  [ "$ok" = 1 ]
}
if [ "$have_python" = 1 ] && ! venv_works && ! can_make_venv; then
  need python3-venv python3 "Python's venv and pip, to create .venv (\`$PY_BOOT -m venv\` fails without it)"
fi

# --- libclang for bindgen, with clang's own headers. ----------------------------------------------
# bindgen (clang-sys) loads the libclang it finds first by its own search, and that libclang
# must find clang's builtin headers (stddef.h) beside itself: libclang-cpp (llvm-*-dev,
# clang-*) is not libclang, and a runtime-only libclang1-* has no headers. The probe searches
# as clang-sys does and parses a header that includes stddef.h with the libclang it picks.
libclang_probe() {
  "$PY_BOOT" - <<'PY'
import ctypes, glob, os, subprocess, sys

PATTERNS = ["libclang.so", "libclang-*.so", "libclang.so.*", "libclang-*.so.*"]
LINUX_DIRS = ["/usr/local/llvm*/lib*", "/usr/local/lib*/*/*", "/usr/local/lib*/*", "/usr/local/lib*",
              "/usr/lib*/*/*", "/usr/lib*/*", "/usr/lib*"]

def in_dir(directory):
    found = []
    for pattern in PATTERNS:
        for path in sorted(glob.glob(os.path.join(glob.escape(directory), pattern))):
            if "-cpp." not in os.path.basename(path) and os.path.isfile(path):
                found.append(path)
    return found

def candidates():
    env = os.environ.get("LIBCLANG_PATH")
    if env:
        if os.path.isfile(env) and env in in_dir(os.path.dirname(env) or "."):
            return [env]
        return in_dir(env)
    found = []
    try:
        prefix = subprocess.run([os.environ.get("LLVM_CONFIG_PATH", "llvm-config"), "--prefix"],
                                capture_output=True, text=True).stdout.splitlines()
        if prefix:
            for sub in ("bin", "lib", "lib64"):
                found += in_dir(os.path.join(prefix[0], sub))
    except OSError:
        pass
    for variable in ("LD_LIBRARY_PATH", "LIBRARY_PATH"):
        for directory in filter(None, os.environ.get(variable, "").split(":")):
            found += in_dir(directory)
    for pattern in LINUX_DIRS:
        for directory in sorted(glob.glob(pattern)):
            if os.path.isdir(directory):
                found += in_dir(directory)
    return found

def is_elf64(path):
    with open(path, "rb") as f:
        head = f.read(5)
    return head[:4] == b"\x7fELF" and head[4:5] == b"\x02"

def version(name):  # clang-sys's parse_version: it takes the highest version it finds
    if name.startswith("libclang.so."):
        text = name[len("libclang.so."):]
    elif name.startswith("libclang-"):
        text = name[9:-3]
    else:
        return []
    return [int(s) if s.isdigit() else 0 for s in text.split(".")]

valid = [p for p in candidates() if is_elf64(p)]
if not valid:
    sys.exit("no libclang shared library where bindgen looks")
best = max(valid, key=lambda p: version(os.path.basename(p)))  # first of equals, as clang-sys

class Unsaved(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("contents", ctypes.c_char_p), ("length", ctypes.c_ulong)]

class CXString(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("flags", ctypes.c_uint)]

try:
    lib = ctypes.CDLL(best)
except OSError as e:
    sys.exit(f"{best} does not load: {e}")
lib.clang_createIndex.restype = ctypes.c_void_p
lib.clang_parseTranslationUnit.restype = ctypes.c_void_p
lib.clang_parseTranslationUnit.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
    ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.POINTER(Unsaved), ctypes.c_uint, ctypes.c_uint]
lib.clang_getDiagnostic.restype = ctypes.c_void_p
lib.clang_getDiagnostic.argtypes = [ctypes.c_void_p, ctypes.c_uint]
lib.clang_getNumDiagnostics.argtypes = [ctypes.c_void_p]
lib.clang_getDiagnosticSeverity.argtypes = [ctypes.c_void_p]
lib.clang_getDiagnosticSpelling.restype = CXString
lib.clang_getDiagnosticSpelling.argtypes = [ctypes.c_void_p]
lib.clang_getCString.restype = ctypes.c_char_p
lib.clang_getCString.argtypes = [CXString]
source = b"#include <stddef.h>\n#include <stdint.h>\n#include <stdbool.h>\n"
unsaved = Unsaved(b"probe.h", source, len(source))
args = (ctypes.c_char_p * 2)(b"-x", b"c")
index = lib.clang_createIndex(0, 0)
unit = lib.clang_parseTranslationUnit(index, b"probe.h", args, 2, ctypes.byref(unsaved), 1, 0)
if not unit:
    sys.exit(f"{best} could not parse a header")
errors = []
for i in range(lib.clang_getNumDiagnostics(unit)):
    diagnostic = lib.clang_getDiagnostic(unit, i)
    if lib.clang_getDiagnosticSeverity(diagnostic) >= 3:  # CXDiagnostic_Error, _Fatal
        errors.append(lib.clang_getCString(lib.clang_getDiagnosticSpelling(diagnostic)).decode())
if errors:
    sys.exit(f"{best}: {'; '.join(errors)}")
print(best)
PY
}
if [ "$have_python" = 1 ] && ! libclang_why=$(libclang_probe 2>&1); then
  need libclang-dev clang-devel "libclang with clang's headers, for bindgen ($libclang_why)"
elif [ "$have_python" = 0 ]; then
  need libclang-dev clang-devel "libclang with clang's headers, for bindgen (not checked: no Python)"
fi

# --- pkg-config and OpenSSL headers: openssl-sys, in the serving host's (host/) dependencies. ----
if ! command -v pkg-config >/dev/null; then
  need pkg-config pkgconf-pkg-config "pkg-config, which openssl-sys asks for OpenSSL"
fi
if ! { command -v pkg-config >/dev/null && pkg-config --exists openssl; }; then
  need libssl-dev openssl-devel "OpenSSL headers and openssl.pc, for openssl-sys"
fi

# --- Apache Thrift's compiler: the Rust tests decode our bytes with the structs it generates ------
# from thrift/*.thrift (protocol/thrift-gen/build.rs, when the tests build). It must be 0.17, the
# version of the `thrift` crate that generated code calls; Debian 12's thrift-compiler is 0.17.
THRIFT_WANT=0.17
thrift_version() { "${THRIFT:-thrift}" --version 2>/dev/null | head -n 1 | awk '{print $NF}'; }
if ! command -v "${THRIFT:-thrift}" >/dev/null; then
  need thrift-compiler thrift "Apache Thrift's compiler $THRIFT_WANT, for the structs the Rust tests decode with"
elif [[ "$(thrift_version)" != "$THRIFT_WANT".* ]]; then
  manual+=("Apache Thrift's compiler $THRIFT_WANT (\`${THRIFT:-thrift} --version\` says '$(thrift_version)', at $(command -v "${THRIFT:-thrift}")): the generated code must match the \`thrift\` crate 0.17; put a 0.17 compiler first on PATH or name it in THRIFT")
fi

# --- For make memcheck: valgrind. -----------------------------------------------------------------
[ "$want_memcheck" = 0 ] || command -v valgrind >/dev/null || need valgrind valgrind "valgrind, for make memcheck"

# --- Install what apt can, or say what to install. --------------------------------------------------
privilege() { # how to run apt-get: as root, through sudo, or not at all
  if [ "$(id -u)" = 0 ]; then echo root
  elif command -v sudo >/dev/null; then echo sudo
  else echo none
  fi
}
cannot() { # the one message: everything missing, and how to install it
  {
    printf '[setup] error: this machine lacks what the build needs, and %s:\n' "$1"
    local line
    for line in "${why[@]}" "${manual[@]}"; do printf '  - %s\n' "$line"; done
    if [ "${#deb[@]}" -gt 0 ]; then
      printf 'Install, as root, then run make again:\n'
      printf '  Debian/Ubuntu:  apt-get install %s\n' "${deb[*]}"
      [ "${#rpm[@]}" -eq 0 ] || printf '  Fedora/RHEL:    dnf install %s\n' "$(printf '%s\n' "${rpm[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//')"
    fi
  } >&2
  exit 1
}
# Rust is not the distribution's to install (Debian's is too old): nothing else helps without it.
[ "${#manual[@]}" -eq 0 ] || cannot "setup cannot install some of it (no package of this system does)"

if [ "${#deb[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || cannot "setup installs with apt-get only, which is not here"
  case "$(privilege)" in
    root) sudo=() ;;
    sudo) sudo=(sudo) ;;
    none) cannot "setup cannot install it (not root, and no sudo)" ;;
  esac
  say "installing ${deb[*]} (apt-get), for:"
  printf '[setup]   - %s\n' "${why[@]}"
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${deb[@]}"; } >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    rm -f "$log"
    cannot "apt-get failed (its last lines are above)"
  fi
  rm -f "$log"
  # Installed: the same checks again, so a package that did not bring what it should is named.
  if ! libclang_why=$(libclang_probe 2>&1); then
    die "libclang-dev is installed but bindgen would still fail: $libclang_why"
  fi
  command -v pkg-config >/dev/null && pkg-config --exists openssl || die "libssl-dev and pkg-config installed, but \`pkg-config --exists openssl\` fails"
  command -v c++ >/dev/null || die "g++ installed but no c++ on PATH"
  if command -v "${THRIFT:-thrift}" >/dev/null; then
    [[ "$(thrift_version)" == "$THRIFT_WANT".* ]] ||
      die "Apache Thrift's compiler installed, but \`${THRIFT:-thrift} --version\` says '$(thrift_version)', not $THRIFT_WANT (the \`thrift\` crate's version)"
  else
    die "thrift-compiler installed but no \`${THRIFT:-thrift}\` on PATH"
  fi
fi

# --- rustfmt and clippy for make lint (rustup's minimal profile has neither). ----------------------
if [ "$want_lint" = 1 ] && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  command -v rustup >/dev/null ||
    die "make lint needs rustfmt and clippy, and this Rust has no rustup to add them: install them with your Rust"
  say "adding rustfmt and clippy (rustup component add)"
  rustup component add rustfmt clippy
fi

# --- .venv with the pinned packages. ---------------------------------------------------------------
# requirements.txt (TensorFlow, the test packages) and requirements-docs.txt (MkDocs for make docs),
# installed again whenever either file changes.
stamp=.venv/.requirements
wanted_requirements=$(cat requirements.txt requirements-docs.txt)
if [ -e .venv ] && ! venv_works; then
  # A failed `python3 -m venv` leaves .venv/bin/python without pip; start it again.
  say "removing a half-made .venv (no working pip in it)"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ] || [ "$wanted_requirements" != "$(cat "$stamp" 2>/dev/null)" ]; then
  say "creating .venv with $("$PY_BOOT" --version 2>&1), requirements.txt and requirements-docs.txt"
  if [ ! -x .venv/bin/python ]; then
    "$PY_BOOT" -m venv .venv || { rm -rf .venv; die "\`$PY_BOOT -m venv .venv\` failed (output above)"; }
  fi
  # tf_keras without its dependencies: it requires the `tensorflow` distribution,
  # which would land next to tensorflow-cpu (one import package, two installs).
  grep -v -E '^\s*tf_keras' requirements.txt >.venv/.requirements-with-deps
  .venv/bin/python -m pip install -q --disable-pip-version-check -r .venv/.requirements-with-deps \
    -r requirements-docs.txt &&
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
      $(grep -E '^\s*tf_keras' requirements.txt) ||
    die "pip could not install requirements.txt and requirements-docs.txt into .venv (output above); run make again to retry"
  printf '%s' "$wanted_requirements" >"$stamp"
fi
