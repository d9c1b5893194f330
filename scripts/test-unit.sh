#!/bin/sh
# Runs every test file. Files whose grpc-js-xds clients keep process-wide xDS channels open need
# --test-force-exit; every other file runs without it, so no test can be cut short by a forced exit.
set -e
all=$(find src test -name '*.test.ts' | sort)
pattern='xds-harness|mesh-pipeline|xds-server-harness|grpc-js-xds'
normal=$(grep -L -E "$pattern" $all)
forced=$(grep -l -E "$pattern" $all)
node --import tsx --test --test-reporter=spec $normal
node --import tsx --test --test-force-exit --test-reporter=spec $forced
