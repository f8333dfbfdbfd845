#!/usr/bin/env bash
# Run edge-ser's runtime on aarch64 under qemu user-mode emulation and compare it with x86.
#
#   sudo scripts/aarch64/run.sh            (root: debootstrap, chroot, binfmt; slow: tens of minutes)
#
# 1. installs debootstrap, qemu-user-static, binfmt-support (apt) and registers qemu-aarch64 with binfmt_misc;
# 2. builds a Debian bookworm arm64 rootfs (Python 3.11, libsndfile, PortAudio) in $WORK/rootfs (cached);
# 3. downloads the runtime's cp311 aarch64 wheels on the host (pip download --platform, binary only) plus an
#    edge-ser wheel of this checkout, installs them in a venv inside the rootfs (pip --no-index: only those wheels);
# 4. runs the runtime's tests inside the rootfs: every test file of the checkout (RUNTIME_TESTS=all) with the tiny
#    models committed in tests/fixtures/models/ (no training, no TensorFlow/scikit-learn anywhere); the training
#    tests skip themselves (edge_ser_train is not installed there), librosa's parity tests too (no librosa);
# 5. classifies the same clips with every shipped model and format on x86 and on aarch64 and compares
#    (same top-1 label, max |score difference|).
# Result: $WORK/result.json and the log.  Not part of CI.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${WORK:-/tmp/edge-ser-aarch64}"
ROOTFS="$WORK/rootfs"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
HOST_PY="${HOST_PY:-$REPO/.venv/bin/python}"
DATA="${EDGE_SER_DATA:-$REPO/../shared/data}"
# "all": every tests/test_*.py; or a list of file names (e.g. RUNTIME_TESTS="test_models.py test_fixtures.py")
RUNTIME_TESTS="${RUNTIME_TESTS:-all}"

log() { echo "[aarch64 $(date -u +%H:%M:%S)] $*"; }
mkdir -p "$WORK"

# --- 1. tools -------------------------------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
    log "installing debootstrap qemu-user-static binfmt-support"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap qemu-user-static binfmt-support
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64

# --- 2. rootfs -------------------------------------------------------------------------------------------------
if [ ! -e "$ROOTFS/.edge-ser-rootfs-ok" ]; then
    log "debootstrap $SUITE arm64 -> $ROOTFS"
    rm -rf "$ROOTFS"
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,libsndfile1,libportaudio2,ca-certificates \
        "$SUITE" "$ROOTFS" "$MIRROR"
    touch "$ROOTFS/.edge-ser-rootfs-ok"
fi
log "rootfs: $(chroot "$ROOTFS" /usr/bin/env -i /usr/bin/python3 -c 'import platform; print(platform.machine(), platform.python_version(), platform.libc_ver())')"

cleanup() { for m in proc sys dev; do umount "$ROOTFS/$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
# (no /sys: onnxruntime's cpuinfo parses it and crashes on the x86 host's CPU topology under emulation; without it
#  it warns "cpuinfo_initialize failed" and runs)
mountpoint -q "$ROOTFS/dev" || mount --bind /dev "$ROOTFS/dev"
# A clean environment inside the rootfs (the host's PIP_*, PYTHONPATH, ... do not apply there).
in_rootfs() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# --- 3. wheels --------------------------------------------------------------------------------------------------
WHEELS="$ROOTFS/wheels"
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
log "downloading cp311 aarch64 wheels"
"$HOST_PY" -m pip download -q --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_26_aarch64 \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    -d "$WHEELS" numpy soundfile soxr onnxruntime ai-edge-litert sounddevice typer pytest hypothesis 2>&1 \
    | grep -v '^WARNING: Location' || true
ls "$WHEELS" | sed 's/^/    /'
log "building the edge-ser wheel of $REPO"
"$HOST_PY" -m pip wheel -q --no-deps -w "$WHEELS" "$REPO" 2>&1 | grep -v '^WARNING: Location' || true

# A copy of the tracked tree (tests, sample clip) and a few real clips for the comparison.
rm -rf "$ROOTFS/src" && mkdir -p "$ROOTFS/src/clips"
(cd "$REPO" && git ls-files -z | xargs -0 cp -P --parents -t "$ROOTFS/src" 2>/dev/null || true)  # -P: keep symlinks
CLIPS=("$REPO/edge_ser/assets/sample.wav")
if [ -d "$DATA/cremad/AudioWAV" ]; then
    for n in 1001_IEO_ANG_HI 1012_IEO_HAP_HI 1015_IEO_SAD_LO 1020_DFA_NEU_XX 1033_ITS_FEA_XX 1050_TIE_DIS_XX; do
        for ext in flac wav; do [ -f "$DATA/cremad/AudioWAV/$n.$ext" ] && CLIPS+=("$DATA/cremad/AudioWAV/$n.$ext"); done
    done
fi
for c in "${CLIPS[@]}"; do [ -f "$c" ] && cp "$c" "$ROOTFS/src/clips/"; done

# --- install in the rootfs ------------------------------------------------------------------------------------
if [ "${REUSE_VENV:-0}" = 1 ] && [ -x "$ROOTFS/opt/venv/bin/python" ]; then
    log "reusing the arm64 venv (REUSE_VENV=1)"
    in_rootfs /opt/venv/bin/pip install -q --no-index --find-links /wheels sounddevice
else
    log "installing the runtime in the arm64 venv (pip --no-index: the downloaded wheels only)"
    in_rootfs /bin/sh -c 'rm -rf /opt/venv && python3 -m venv /opt/venv &&
        /opt/venv/bin/pip install -q --no-index --find-links /wheels "edge-ser[tflite,mic]" pytest hypothesis'
fi
in_rootfs /opt/venv/bin/pip list 2>/dev/null | grep -iE 'edge|numpy|onnxruntime|litert|soundfile|typer' \
    | sed 's/^/    /'

# --- 4. the runtime's tests (the checkout's tests against the checkout's edge_ser/, with the arm64 wheels) -------------------------------------------------------------------------------------
TESTS=""
if [ "$RUNTIME_TESTS" = all ]; then
    for t in "$ROOTFS"/src/tests/test_*.py; do TESTS="$TESTS tests/$(basename "$t")"; done
else
    for t in $RUNTIME_TESTS; do [ -f "$ROOTFS/src/tests/$t" ] && TESTS="$TESTS tests/$t"; done
fi
# The tests' tiny models are committed (tests/fixtures/models/, made by scripts/make_test_models.py): nothing is
# trained on the host or in the rootfs.  Refuse to go on without them (a partial copy would only skip silently).
for m in "$REPO"/tests/fixtures/models/*/; do
    m="$(basename "$m")"
    [ -f "$ROOTFS/src/tests/fixtures/models/$m/manifest.json" ] \
        || { log "test fixture tests/fixtures/models/$m is not committed (the rootfs gets tracked files only)"; exit 1; }
done
if in_rootfs /opt/venv/bin/python -c 'import edge_ser_train' 2>/dev/null; then
    log "the arm64 venv has edge_ser_train: it must be the runtime only"; exit 1
fi
log "pytest under qemu-aarch64:$TESTS"
set +e
in_rootfs /bin/sh -c "cd /src && EDGE_SER_DATA=/nonexistent /opt/venv/bin/python -m pytest -q -rs $TESTS" \
    > "$WORK/pytest.log" 2>&1
PYTEST_RC=$?
set -e
tail -15 "$WORK/pytest.log" | sed 's/^/    /'
PYTEST_SUMMARY="$(grep -E '(passed|failed|error)' "$WORK/pytest.log" | tail -1)"

# --- 5. classify comparison -------------------------------------------------------------------------------------
CLIP_ARGS=""
for c in "$ROOTFS"/src/clips/*; do CLIP_ARGS="$CLIP_ARGS /src/clips/$(basename "$c")"; done
# the models as they are now in the checkout (the same files on both sides)
rm -rf "$ROOTFS/src/models" && cp -r "$REPO/edge_ser/assets/models" "$ROOTFS/src/models"
log "models compared: $(ls "$ROOTFS/src/models" | tr '\n' ' ')"
log "classify on x86"
(cd "$REPO" && "$HOST_PY" scripts/aarch64/classify_all.py "$ROOTFS/src/models" \
    $(for c in $CLIP_ARGS; do echo "$ROOTFS$c"; done)) > "$WORK/x86.jsonl"
log "classify on aarch64 (qemu)"
in_rootfs /bin/sh -c "cd /src && PYTHONPATH=/src /opt/venv/bin/python /src/scripts/aarch64/classify_all.py /src/models $CLIP_ARGS" \
    > "$WORK/aarch64.jsonl" 2> "$WORK/aarch64.stderr" || true
set +e
"$HOST_PY" "$REPO/scripts/aarch64/compare.py" "$WORK/x86.jsonl" "$WORK/aarch64.jsonl" --out "$WORK/compare.json"
CMP_RC=$?
set -e

"$HOST_PY" - "$WORK" "$PYTEST_RC" "$PYTEST_SUMMARY" "$CMP_RC" "$REPO" <<'EOF'
import json, pathlib, subprocess, sys
work, rc, summary, cmp_rc = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
root = work / "rootfs"
wheels = sorted(p.name for p in (root / "wheels").glob("*.whl"))
py = subprocess.run(["chroot", str(root), "/usr/bin/env", "-i", "/opt/venv/bin/python", "-c",
                     "import platform,sys; print(platform.machine(), sys.version.split()[0])"],
                    capture_output=True, text=True).stdout.strip()
import time
key = ("onnxruntime", "ai_edge_litert", "numpy", "soundfile", "soxr", "sounddevice", "typer")
result = {"recorded_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
          "rootfs": "Debian bookworm arm64 (debootstrap) under qemu-aarch64 user-mode emulation", "python": py,
          "key_wheels": [w for w in wheels if w.split("-")[0].lower() in key], "wheels": wheels, "pytest_rc": rc, "pytest_summary": summary,
          "classify_compare_rc": cmp_rc,
          "classify_compare": json.loads((work / "compare.json").read_text()) if (work / "compare.json").exists() else None}
(work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
repo_copy = pathlib.Path(sys.argv[5]) / "benchmarks" / "results" / "aarch64-qemu.json"
repo_copy.parent.mkdir(parents=True, exist_ok=True)
repo_copy.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps({k: v for k, v in result.items() if k != "wheels"}, indent=2))
EOF
log "done: $WORK/result.json"
