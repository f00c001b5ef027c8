#!/usr/bin/env bash
# Install the Debian packages telerad's tests and demo need, when missing (root + apt-get only).
# chromium: browser end-to-end tests; fonts-wqy-microhei: Chinese text in watermarks and PDFs;
# dcmtk: the DICOM tests' real peers (storescu, findscu, movescu, storescp...); orthanc: bench/bench_dicom.py's
# reference archive (the benchmark starts its own instance with its own config; the package's service is not used);
# orthanc-dicomweb: Orthanc's DICOMweb plugin, the reference of bench/bench_dicomweb.py (issue 15);
# strace: the DICOM durability test watches the receiver's fsync/fdatasync/send order;
# redis-server: the login-throttling test shares its counts between web processes through a private redis.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v storescu >/dev/null 2>&1 || need+=(dcmtk)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ]; } || need+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
if [ "${1:-}" = "--with-postgres" ]; then
  command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "缺少系统软件包 / missing system packages: ${need[*]} (install them with apt-get as root)" >&2
  exit 0
fi
echo "apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
