#!/usr/bin/env bash
# Builds packaging/Dockerfile without a Docker engine or registry access: buildah with vfs storage and
# chroot isolation (works as root in an unprivileged sandbox), on a Debian 12 base made here with
# debootstrap (python3 3.11 from Debian in place of python:3.11-slim-bookworm). Then measures the image
# (total, layers, what each part weighs), checks its OpenCV against the calls the station makes
# (packaging/cv2_check.py) and runs the station from it headless for 20 boards (`pcb-inspector soak`),
# then against Aravis's fake GigE camera on 127.0.0.1 (the ConfigMap's camera type, `aravis`).
# The first build compiles three wheels from their sdists (Dockerfile, opencv, numpy and pygobject stages:
# an hour, a quarter of an hour and about a minute on two busy cores); buildah keeps them in
# /var/tmp/buildah-cache/pcb-opencv-slim, pcb-numpy-noblas and pcb-pygobject and later builds take them from
# there (a few minutes in all).
#
#   sudo scripts/build_image.sh [WORKDIR]        (needs: apt-get install buildah debootstrap aravis-tools)
#
# Figures go to WORKDIR/image-report.txt; docs/deployment.md quotes them.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/pcb-image}
B=(buildah --storage-driver vfs)
BASE=localhost/debian-bookworm-python:12
TAG=localhost/pcb-inspector:dev
mkdir -p "$WORK"
REPORT=$WORK/image-report.txt
: >"$REPORT"

if ! "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  if [ ! -x "$WORK/rootfs/usr/bin/python3" ]; then
    # minbase + the interpreter; python-is-python3 because the Dockerfile calls `python`.
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,libgomp1,ca-certificates \
      bookworm "$WORK/rootfs" http://deb.debian.org/debian
  fi
  rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin
  # As Debian's slim images do: no manuals, docs or translations, now or from later apt installs.
  rm -rf "$WORK/rootfs/usr/share/"{doc,man,info,locale}/*
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\n' \
    >"$WORK/rootfs/etc/dpkg/dpkg.cfg.d/excludes"
  ctr=$("${B[@]}" from scratch)
  mnt=$("${B[@]}" mount "$ctr")
  cp -a "$WORK/rootfs/." "$mnt/"
  "${B[@]}" umount "$ctr"
  "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  "${B[@]}" commit --format docker "$ctr" "$BASE"
  "${B[@]}" rm "$ctr"
fi

# pip in the build stage trusts the host's CA bundle (a TLS-inspecting proxy's CA is in it, not in
# certifi's); mounted for the RUN steps only, nothing of it stays in the image.
printf '[global]\ncert = /etc/ssl/certs/host-ca.crt\n' >"$WORK/pip.conf"
start=$(date +%s)
"${B[@]}" bud --isolation chroot --format docker --layers=false \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro -v "$WORK/pip.conf:/etc/pip.conf:ro" \
  --build-arg PYTHON_IMAGE="$BASE" -f packaging/Dockerfile -t "$TAG" .
echo "build: $(($(date +%s) - start)) s" | tee -a "$REPORT"

{
  echo "== images (uncompressed, as buildah stores them)"
  "${B[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -E 'pcb-inspector|debian-bookworm-python'
  # The runtime stage starts from scratch: one layer, the base's files included (not shared with it).
  echo "layers: $("${B[@]}" inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$TAG")"
  echo "runtimes: $("${B[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "io.pcb-inspector.runtimes"}}' "$TAG")"
  echo "wheels built from sdists (cached): $(du -sh /var/tmp/buildah-cache/pcb-{opencv-slim,numpy-noblas,pygobject}/*/*.whl 2>/dev/null | sed 's#/var/tmp/buildah-cache/##' | tr '\n' ' ')"
  echo "== what each part of the image weighs (du -sm inside the image)"
} | tee -a "$REPORT"
ctr=$("${B[@]}" from "$TAG")
mnt=$("${B[@]}" mount "$ctr")
{
  du -sm "$mnt" | sed "s#$mnt#/ (whole image)#"
  du -sm "$mnt/usr" "$mnt/opt/venv" "$mnt/opt/pcb-inspector/models" "$mnt/var" 2>/dev/null | sed "s#$mnt##"
  echo "-- largest packages in /opt/venv"
  # sed -n, not head: head exits early, sort gets SIGPIPE and pipefail ended the script (seen once, rc 141).
  du -sm "$mnt"/opt/venv/lib/python3.11/site-packages/* | sort -rn | sed -n 1,15p | sed "s#$mnt/opt/venv/lib/python3.11/site-packages/##"
  echo "-- base system: largest in /usr"
  du -sm "$mnt"/usr/lib/* "$mnt"/usr/bin "$mnt"/usr/sbin "$mnt"/usr/share/* 2>/dev/null | sort -rn | sed -n 1,10p | sed "s#$mnt##"
  echo "-- Debian packages left: $(dpkg-query --admindir="$mnt/var/lib/dpkg" -W -f '${Package}\n' | wc -l)"
} | tee -a "$REPORT"
"${B[@]}" umount "$ctr"

echo "== OpenCV in the image against the calls the station makes (packaging/cv2_check.py)" | tee -a "$REPORT"
"${B[@]}" copy --chown 10001:10001 "$ctr" packaging/cv2_check.py /tmp/cv2_check.py
"${B[@]}" run --isolation chroot --user 10001:10001 "$ctr" -- python /tmp/cv2_check.py 2>&1 | tee -a "$REPORT"

echo "== headless run from the image: pcb-inspector soak --boards 20" | tee -a "$REPORT"
# The baked model, as the K3s ConfigMap points at it; the soak adds its own PLC simulator and storage.
printf '[detector]\nmodel = "/opt/pcb-inspector/models/pcb-defect-det.tflite"\n' >"$WORK/station.toml"
"${B[@]}" copy --chown 10001:10001 "$ctr" "$WORK/station.toml" /tmp/station.toml
# --user: the image's USER (10001); the soak writes its records under /tmp inside the container.
"${B[@]}" run --isolation chroot --user 10001:10001 "$ctr" -- \
  pcb-inspector soak --config /tmp/station.toml --boards 20 --data /tmp/soak 2>&1 | grep -v ' WARNING ' | tee -a "$REPORT"

echo "== the aravis camera from the image: Aravis's fake GigE camera on the host's 127.0.0.1" | tee -a "$REPORT"
# The ConfigMap's camera is `aravis`; this runs the image's Aravis + PyGObject against a real GVCP/GVSP peer:
# arv-fake-gv-camera-0.8 (Debian aravis-tools) bound to 127.0.0.1 only, opened by address (the station never
# runs discovery, which broadcasts). chroot isolation shares the host's network, so the container reaches it.
# The lock is the one tests/capture takes: the fake camera's UDP 3956 on 127.0.0.1 is one per machine.
# The fake camera's test pattern is not a board: every board is "not registered" to the reference (a plain
# gray image written in the container, as the model compares each board with one), which the station
# records as such; what this shows is frames arriving through Aravis, inspected, stored and acknowledged.
cat >"$WORK/station-aravis.toml" <<'TOML'
[camera]
type = "aravis"
address = "127.0.0.1"
trigger = "software"
pixel_format = "Mono8"
roi = { width = 640, height = 640 }

[detector]
model = "/opt/pcb-inspector/models/pcb-defect-det.tflite"

[[recipes]]
name = "demo"
reference = "/tmp/golden.png"
TOML
"${B[@]}" copy --chown 10001:10001 "$ctr" "$WORK/station-aravis.toml" /tmp/station-aravis.toml
exec 9>/tmp/pcb-inspector-fake-gv.lock
flock 9
arv-fake-gv-camera-0.8 -i 127.0.0.1 >"$WORK/fake-gv.log" 2>&1 &
fake=$!
trap 'kill "$fake" 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q ' 0100007F:0F74 ' /proc/net/udp && break; sleep 0.1; done
"${B[@]}" run --isolation chroot --user 10001:10001 "$ctr" -- sh -c '
  pcb-inspector camera probe --camera aravis:127.0.0.1 --roi 640x640 --pixel-format Mono8 --trigger software --frames 20 \
  && python -c "import numpy, cv2; cv2.imwrite(\"/tmp/golden.png\", numpy.full((640, 640), 128, numpy.uint8))" \
  && pcb-inspector soak --config /tmp/station-aravis.toml --boards 20 --data /tmp/soak-aravis' 2>&1 \
  | grep -v -e ' WARNING ' -e '^INFO: Created TensorFlow' | tee -a "$REPORT"
kill "$fake"
wait "$fake" 2>/dev/null || true
trap - EXIT
flock -u 9
"${B[@]}" rm "$ctr" >/dev/null
echo "report: $REPORT"
