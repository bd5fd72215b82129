#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: a real Slurm cluster (munge, slurmctld,
# slurmd, client tools) that tests/slurm_cluster.py starts on 127.0.0.1 for tests/test_slurm.py.
# Run as root on Debian 12 (Slurm 22.05). Does nothing when everything is already installed.
set -euo pipefail

packages=(munge slurmctld slurmd slurm-client)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages present: ${packages[*]}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# the packages' own service start-up fails without systemd; the tests start the daemons themselves
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
