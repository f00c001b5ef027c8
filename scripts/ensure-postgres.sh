#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 (CI: install and start Debian's postgresql if it does not).
set -euo pipefail
answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if answers; then exit 0; fi
if [ "${CI:-}" != "true" ]; then
  echo "PostgreSQL 未在 127.0.0.1:5432 运行：PostgreSQL 测试将被跳过 / PostgreSQL not running: its tests will be skipped" >&2
  exit 0
fi
bash "$(dirname "$0")/system-deps.sh" --with-postgres
ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
if [ -z "$ver" ]; then
  ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  pg_createcluster "$ver" main >/dev/null
fi
conf=/etc/postgresql/$ver/main
grep -q "telerad-ci" "$conf/pg_hba.conf" 2>/dev/null || {
  printf '# telerad-ci\nhost all all 127.0.0.1/32 trust\nlocal all all trust\n' | cat - "$conf/pg_hba.conf" > /tmp/pg_hba && mv /tmp/pg_hba "$conf/pg_hba.conf"
}
pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
for _ in $(seq 1 30); do answers && exit 0; sleep 1; done
echo "PostgreSQL did not start" >&2
exit 1
