#!/usr/bin/env bash
# Installs the Debian packages robustctl builds against, if any is missing.
# Safe to run repeatedly; needs root (or sudo) only when something must be installed.
set -euo pipefail

packages=(
    libopenblas-openmp-dev   # CBLAS; the OpenMP build shares one thread pool with oneDNN
    libdnnl-dev              # oneDNN convolution primitives
    libpng-dev               # PNG decode/encode
    libjpeg-dev              # JPEG decode
    libhdf5-dev              # Keras .h5 weight files
)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "Installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
