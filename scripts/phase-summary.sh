#!/usr/bin/env bash
# The summary of make test: each phase's time (from scripts/phase.sh) and the setup and test totals.
set -euo pipefail
file=$1
awk -F'\t' '
  { ms[$1] += $4; printf "  %-5s %-22s %7.1f s%s\n", $1, $2 ":", $4 / 1000, ($3 == 0 ? "" : "  FAILED") }
  END { printf "  %-28s %7.1f s\n  %-28s %7.1f s\n", "setup total", ms["setup"] / 1000, "test phases total", ms["test"] / 1000 }
' "$file" | { echo "make test — time per phase:"; cat; }
