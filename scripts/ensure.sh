#!/usr/bin/env bash
# Installs what Polydev needs on this machine, then builds it. Safe to run again: each step
# checks first. Used by both `npm start` and `npm test`, so a fresh machine needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'polydev setup: %s\n' "$*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "Node.js 20 or newer is required (found $(node -v))"; exit 1
fi

# System packages: bubblewrap (sandboxes), slirp4netns (sandbox egress), nftables (allow-list
# sandboxes), xfsprogs and e2fsprogs (the storage pool: XFS with reflinks for layers and clones,
# one ext4 volume per sandbox disk), mmdebstrap (builds the default image from Debian's packages)
# patchelf (points the toolbox's node at its own C runtime), runsc (gVisor, the gvisor
# driver's sandboxes), and for the microvm driver QEMU (qemu-system-x86, qemu-utils),
# busybox-static and cpio (its guest's initramfs). Installed with apt when we may;
# otherwise we say exactly what to install.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
[ -x /usr/sbin/nft ] || missing+=(nftables)
[ -x /usr/sbin/mkfs.xfs ] || missing+=(xfsprogs)
[ -x /usr/sbin/resize2fs ] || missing+=(e2fsprogs)
[ -x /usr/bin/mmdebstrap ] || missing+=(mmdebstrap)
[ -x /usr/bin/patchelf ] || missing+=(patchelf)
[ -x /usr/bin/runsc ] || missing+=(runsc)
[ -x /usr/bin/qemu-system-x86_64 ] || missing+=(qemu-system-x86)
[ -x /usr/bin/qemu-img ] || missing+=(qemu-utils)
[ -x /bin/busybox ] || missing+=(busybox-static)
[ -x /usr/bin/cpio ] || missing+=(cpio)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing system packages: ${missing[*]}"
    say "install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run this again"
    exit 1
  fi
fi

# npm dependencies: reinstall only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  # `npm install` rather than `npm ci`: the registry mirror records no download URLs, so the
  # lockfile lacks the optional per-platform entries `npm ci` insists on.
  npm install --no-audit --no-fund --loglevel=error
fi

# The agent CLIs, once per host, in a shared read-only place every sandbox sees (/usr is bound
# into each sandbox): pinned to the versions that run on Node 20.
CLI_DIR=/usr/local/lib/polydev/agent-clis
CLI_PACKAGES="@anthropic-ai/claude-code@2.1.197 @openai/codex@0.169.0 @google/gemini-cli@0.61.0"
if [ "$(id -u)" = 0 ]; then
  if [ "$(cat "$CLI_DIR/.installed" 2>/dev/null)" != "$CLI_PACKAGES" ]; then
    say "installing the agent CLIs into $CLI_DIR"
    mkdir -p "$CLI_DIR"
    # npm 11 runs no dependency install scripts unless approved; the CLIs work without them.
    npm install --prefix "$CLI_DIR" --no-audit --no-fund --loglevel=error $CLI_PACKAGES
    for cli in claude codex gemini; do ln -sf "$CLI_DIR/node_modules/.bin/$cli" "/usr/local/bin/$cli"; done
    echo "$CLI_PACKAGES" > "$CLI_DIR/.installed"
  fi
else
  say "not root: skipping the agent CLIs (install them as root: npm install -g $CLI_PACKAGES)"
fi

# The namespace driver's exec server (each sandbox's init; every process in a sandbox is started
# by it). Rebuilt when any of its sources is newer than the binary; the driver refuses to run
# without it.
EXEC_SERVER_DIR=packages/driver-namespace/native
EXEC_SERVER_BIN=packages/driver-namespace/dist/polydev-exec-server
if [ ! -x "$EXEC_SERVER_BIN" ] || [ -n "$(find "$EXEC_SERVER_DIR" -newer "$EXEC_SERVER_BIN" -print -quit)" ]; then
  if ! command -v cc >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing gcc with apt-get (to build the exec server)"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq gcc >/dev/null
    else
      say "missing a C compiler: install gcc (Debian/Ubuntu: sudo apt-get install gcc) and run this again"
      exit 1
    fi
  fi
  say "building the exec server"
  mkdir -p "$(dirname "$EXEC_SERVER_BIN")"
  # Static when the C library allows it: it starts (twice per sandbox create) without the
  # dynamic loader. Built under a temporary name and moved into place.
  cc -O2 -Wall -static -o "$EXEC_SERVER_BIN.tmp" "$EXEC_SERVER_DIR"/*.c 2>/dev/null ||
    cc -O2 -Wall -o "$EXEC_SERVER_BIN.tmp" "$EXEC_SERVER_DIR"/*.c
  mv "$EXEC_SERVER_BIN.tmp" "$EXEC_SERVER_BIN"
fi

# TypeScript project references build incrementally: a no-op when nothing changed.
npx tsc -b packages/*/tsconfig.json

# The `polydev` command on the PATH: a link to this checkout's CLI (root: /usr/local/bin;
# otherwise ~/.local/bin, which most shells put on the PATH when it exists).
POLYDEV_BIN="$PWD/packages/cli/dist/main.js"
chmod +x "$POLYDEV_BIN"
if [ "$(id -u)" = 0 ]; then link_dir=/usr/local/bin; else link_dir="$HOME/.local/bin"; fi
mkdir -p "$link_dir"
if [ "$(readlink "$link_dir/polydev" 2>/dev/null)" != "$POLYDEV_BIN" ]; then
  ln -sfn "$POLYDEV_BIN" "$link_dir/polydev"
  say "linked $link_dir/polydev to this checkout's CLI"
fi
case ":$PATH:" in
  *":$link_dir:"*) ;;
  *) say "add $link_dir to your PATH to run polydev from anywhere" ;;
esac

# The dashboard: Vite bundles packages/web (and the SDK's source) into packages/web/dist, which
# the server serves at /. Rebuilt only when a source is newer than the last build.
WEB_BUILT=packages/web/dist/index.html
if [ ! -f "$WEB_BUILT" ] || [ -n "$(find packages/web/src packages/web/index.html packages/web/vite.config.ts \
  packages/web/package.json packages/sdk/src -newer "$WEB_BUILT" -print -quit)" ]; then
  say "building the dashboard"
  # NODE_ENV pinned: an inherited "test" or "development" would bundle React's development build.
  (cd packages/web && NODE_ENV=production npx vite build --logLevel warn)
fi

# The default image and the toolbox of image sandboxes (root only; once per host, then cached).
node scripts/prepare-images.mjs
