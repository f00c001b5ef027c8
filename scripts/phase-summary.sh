#!/usr/bin/env bash
# The summary of make test: each phase's time (from scripts/phase.sh) and the setup and test totals.
set -euo pipefail
file=$1
awk -F'\t' '
  { ms[$1] += $4; printf "  %-5s %-22s %7.1f s%s\n", $1, $2 ":", $4 / 1000, ($3 == 0 ? "" : "  FAILED") }
  END { printf "  setup total %21.1f s\n  test phases total %15.1f s\n", ms["setup"] / 1000, ms["test"] / 1000 }
' "$file" | { echo "make test — time per phase:"; cat; }
