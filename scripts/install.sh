#!/bin/sh
# Install scx_pilot as a systemd service: the binary, the unit, the flags file.
# Idempotent: running it again replaces the binary and the unit, keeps an
# existing /etc/default/scx_pilot (the operator's flags), and restarts nothing.
#
#   scripts/install.sh [BINARY]        # default: target/release/scx_pilot
#
# Environment: DESTDIR (staging root, for packaging and tests), PREFIX
# (default /usr/local), SYSTEMD_UNIT_DIR (default /etc/systemd/system).
# After installing: systemctl enable --now scx_pilot
set -eu
root=$(cd -- "$(dirname -- "$0")/.." && pwd -P)
bin=${1:-$root/target/release/scx_pilot}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSTEMD_UNIT_DIR=${SYSTEMD_UNIT_DIR:-/etc/systemd/system}

[ -x "$bin" ] || { echo "install.sh: $bin is not built (run: cargo build --release)" >&2; exit 1; }

install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR$SYSTEMD_UNIT_DIR" "$DESTDIR/etc/default" \
	"$DESTDIR$PREFIX/share/doc/scx_pilot"
# Through a temporary name and a rename: a running agent keeps its old inode.
install -m 0755 "$bin" "$DESTDIR$PREFIX/bin/.scx_pilot.new"
mv -f "$DESTDIR$PREFIX/bin/.scx_pilot.new" "$DESTDIR$PREFIX/bin/scx_pilot"
sed -e "s#/usr/local/bin/scx_pilot#$PREFIX/bin/scx_pilot#g" \
	-e "s#/usr/local/share/doc/scx_pilot#$PREFIX/share/doc/scx_pilot#g" \
	"$root/systemd/scx_pilot.service" >"$DESTDIR$SYSTEMD_UNIT_DIR/.scx_pilot.service.new"
chmod 0644 "$DESTDIR$SYSTEMD_UNIT_DIR/.scx_pilot.service.new"
mv -f "$DESTDIR$SYSTEMD_UNIT_DIR/.scx_pilot.service.new" "$DESTDIR$SYSTEMD_UNIT_DIR/scx_pilot.service"
if [ -e "$DESTDIR/etc/default/scx_pilot" ]; then
	echo "install.sh: keeping $DESTDIR/etc/default/scx_pilot"
else
	install -m 0644 "$root/systemd/scx_pilot.default" "$DESTDIR/etc/default/scx_pilot"
fi
[ -f "$root/README.md" ] && install -m 0644 "$root/README.md" "$DESTDIR$PREFIX/share/doc/scx_pilot/README.md"

echo "install.sh: installed $DESTDIR$PREFIX/bin/scx_pilot and $DESTDIR$SYSTEMD_UNIT_DIR/scx_pilot.service"
# Reload only a live systemd, and only for a real install.
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	echo "install.sh: enable and start with: systemctl enable --now scx_pilot"
fi
