#!/usr/bin/env bash
# Run one phase of `make test` and time it: `scripts/phase.sh KIND NAME COMMAND...` (KIND: setup or test).
# Prints "[phase] KIND NAME: ok in 12.3 s" (or FAILED with the exit code) on its own line, and appends the same to
# $TELERAD_PHASES (make test prints that file as its summary at the end, so every time is in one place).
# pytest's exit code 5 (it collected no test) fails the phase: a selection that matches nothing must not pass.
set -uo pipefail
kind=$1
name=$2
shift 2
start=$(date +%s%N)
"$@"
rc=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
secs=$(printf '%d.%d' $((elapsed / 1000)) $(((elapsed % 1000) / 100)))
if [ "$rc" -eq 5 ] && [ "$kind" = "test" ]; then
  echo "[phase] $kind $name: pytest collected no test (exit 5) — the selection matches nothing" >&2
fi
if [ "$rc" -eq 0 ]; then outcome="ok"; else outcome="FAILED (exit $rc)"; fi
line=$(printf '[phase] %-5s %-22s %s in %s s' "$kind" "$name:" "$outcome" "$secs")
echo "$line"
if [ -n "${TELERAD_PHASES:-}" ]; then
  printf '%s\t%s\t%s\t%s\n' "$kind" "$name" "$rc" "$elapsed" >> "$TELERAD_PHASES"
fi
[ "$rc" -eq 5 ] && exit 1
exit "$rc"
