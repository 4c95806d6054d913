#!/usr/bin/env bash
# Install NVIDIA's perf_analyzer (the C++ load generator) into a cache outside the clone and print the path of a
# wrapper that runs it. Used by the compatibility test and by hand: "$(bash hack/install-perf-analyzer.sh)" -m M -u H:P
#
# Recent tritonclient wheels no longer ship the binary; 2.41.0 (x86_64) is the newest that does. It needs libb64
# (Debian's libb64-0d, unpacked here without root) and libcudart.so.12 (NVIDIA's CUDA runtime wheel; it is only
# linked, no GPU is used for HTTP/gRPC measurements).
set -euo pipefail
VERSION=2.41.0
CUDART=12.4.127
root="${MODELYARD_CACHE:-$HOME/.cache/modelyard}/perf_analyzer/$VERSION"
wrapper="$root/perf_analyzer"
if [[ -x "$wrapper" ]]; then echo "$wrapper"; exit 0; fi
[[ "$(uname -m)" == x86_64 ]] || { echo "perf_analyzer $VERSION is built for x86_64 only" >&2; exit 1; }
here="$(cd "$(dirname "$0")/.." && pwd)"
pip=("${PYTHON:-$here/.venv/bin/python}" -m pip)
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
echo "installing perf_analyzer $VERSION into $root" >&2
"${pip[@]}" download -q --no-deps --only-binary=:all: -d "$tmp" "tritonclient==$VERSION" "nvidia-cuda-runtime-cu12==$CUDART" >&2
(cd "$tmp" && apt-get download -q libb64-0d >/dev/null 2>&1) || { echo "apt-get download libb64-0d failed" >&2; exit 1; }
mkdir -p "$tmp/out/lib"
python3 - "$tmp" <<'PY'
import sys, zipfile, glob, os
tmp = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tmp}/tritonclient-*.whl")[0]) as z:
    data = z.read(next(n for n in z.namelist() if n.endswith("/bin/perf_analyzer")))
open(f"{tmp}/out/perf_analyzer.bin", "wb").write(data)
with zipfile.ZipFile(glob.glob(f"{tmp}/nvidia_cuda_runtime*.whl")[0]) as z:
    name = next(n for n in z.namelist() if n.endswith("/libcudart.so.12"))
    open(f"{tmp}/out/lib/libcudart.so.12", "wb").write(z.read(name))
PY
dpkg -x "$tmp"/libb64-0d_*.deb "$tmp/deb"
cp "$tmp"/deb/usr/lib/*/libb64.so.0d "$tmp/out/lib/"
chmod +x "$tmp/out/perf_analyzer.bin"
cat > "$tmp/out/perf_analyzer" <<'SH'
#!/usr/bin/env bash
here="$(dirname "$(readlink -f "$0")")"
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/perf_analyzer.bin" "$@"
SH
chmod +x "$tmp/out/perf_analyzer"
mkdir -p "$(dirname "$root")"
rm -rf "$root.partial"; mv "$tmp/out" "$root.partial"; mv "$root.partial" "$root"  # publish whole or not at all
echo "$wrapper"
