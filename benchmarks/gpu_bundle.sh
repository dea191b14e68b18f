#!/usr/bin/env bash
# Build .gpu/, what benchmarks/gpu_check.sh needs on a GPU machine that has no package index (the
# workplace's H200 image: Python 3.12 with torch, NumPy, SciPy, scikit-image, PyYAML, pytest,
# threadpoolctl, but none of the packages below). Run here, where PyPI is reachable (~6 min, most
# of it xz); carry .gpu to the GPU machine (git ignores it; ~42 MB of the 64 MiB a call may carry).
#
#   .gpu/site.tar.xz        cp312 manylinux wheels of the radiomics engine's other dependencies,
#                           unpacked (xz: SimpleITK's wheel alone is 53 MB as a zip)
#   .gpu/pyradiomics.tar.gz PyRadiomics (pyradiomics-bhklab 3.1.4, sdist only on PyPI) without its
#                           data and tests, compiled there (the oracle and the speed reference)
#   .gpu/data/ibsi1/...     the IBSI CT phantom from ../shared/data (the benchmark's first case)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
rm -rf .gpu
mkdir -p .gpu "$WORK/wheels" "$WORK/site" "$WORK/sdist"

# versions as the project's environment resolves them (pyproject.toml), cp312 for the GPU image
WHEELS=(simpleitk==2.5.7 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
        typing-inspection==0.4.5 PyWavelets==1.9.0 connected-components-3d==4.1.1 trimesh==5.2.0
        pykwalify==1.8.0 ruamel.yaml==0.19.1)
for w in "${WHEELS[@]}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WORK/wheels" "$w"
done
for w in "$WORK"/wheels/*.whl; do
  "$PY" -m zipfile -e "$w" "$WORK/site"
done
sdist() {  # sdist NAME VERSION: fetch the source archive from PyPI as it is (pip download would build
  # its metadata, and with it NumPy from source)
  "$PY" - "$1" "$2" "$WORK/sdist" <<'EOF'
import json, re, sys, urllib.request
name, version, dest = sys.argv[1:]
req = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
with urllib.request.urlopen(req) as r:
    files = json.load(r)["files"]
stem = re.sub(r"[-_.]+", "_", name).lower() + f"-{version}.tar.gz"
url = next(f for f in files if re.sub(r"[-_.]+", "_", f["filename"].rsplit("-", 1)[0]).lower()
           + "-" + f["filename"].rsplit("-", 1)[1] == stem)
urllib.request.urlretrieve(url["url"], f"{dest}/{url['filename']}")
EOF
}
sdist docopt 0.6.2
sdist pyradiomics-bhklab 3.1.4
tar -xzf "$WORK"/sdist/docopt-0.6.2.tar.gz -C "$WORK/sdist"
cp "$WORK"/sdist/docopt-0.6.2/docopt.py "$WORK/site/"
tar -C "$WORK/site" -cf - . | xz -T0 -6 > .gpu/site.tar.xz

tar -xzf "$WORK"/sdist/pyradiomics_bhklab-3.1.4.tar.gz -C "$WORK/sdist"
tar -C "$WORK/sdist" -czf .gpu/pyradiomics.tar.gz --exclude=data --exclude=tests --exclude=examples \
  pyradiomics_bhklab-3.1.4

SHARED=../shared/data/ibsi1/ct_phantom/nifti
if [ -d "$SHARED" ]; then
  mkdir -p .gpu/data/ibsi1/ct_phantom
  cp -r "$SHARED" .gpu/data/ibsi1/ct_phantom/
  chmod -R u+w .gpu/data
fi
du -sh .gpu
