#!/usr/bin/env bash
# Runs cargo-fuzz targets for a while each (RELIABILITY.md, "Fuzzing").
# Usage: fuzz/run.sh TARGET|all SECONDS
# Needs the nightly toolchain and cargo-fuzz (tests/run installs both). The
# committed seeds in fuzz/corpus/TARGET are read, never written: new inputs
# go to fuzz/work/TARGET (kept between runs, not committed). A crash, hang
# (-timeout, 10 s) or out-of-memory (-rss_limit_mb, 512) fails the run and
# leaves the input in fuzz/artifacts/TARGET/; it gets a regression test.
# Prints one line per target: executions, coverage (cov), features (ft),
# corpus size.
set -euo pipefail
cd "$(dirname "$0")"
[ $# -eq 2 ] || { echo "usage: fuzz/run.sh TARGET|all SECONDS" >&2; exit 2; }
targets=$1
seconds=$2
[ "$targets" = all ] && targets=$(cargo +nightly fuzz list)
# One build for every target (the build is most of the time in CI); the
# targets then run as the built binaries, since `cargo fuzz run` may build
# again with other flags.
CARGO_BUILD_JOBS=${FUZZ_JOBS:-2} cargo +nightly fuzz build >&2
bin="${CARGO_TARGET_DIR:-target}/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
status=0
for target in $targets; do
  mkdir -p "work/$target" "artifacts/$target" logs
  log="logs/$target.log"
  if "$bin/$target" "work/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=512 -print_final_stats=1 > "$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  echo "fuzz $target: $result, ${seconds} s, ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
  [ "$result" = ok ] || tail -30 "$log" >&2
done
exit $status
