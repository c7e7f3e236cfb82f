#!/bin/sh
# check-log.sh <log> : the host-side verdict on a guest (or --pf host) run. Passes iff the log
# has a SUMMARY line with "failed":0 and no CHECK line says FAIL. Prints the failures and the
# SUMMARY. Exit 0 pass, 1 fail.
log=$1
[ -f "$log" ] || { echo "FAIL: no log $log"; exit 1; }
clean=$(tr -d '\r' < "$log")
fails=$(printf '%s\n' "$clean" | grep -E '^CHECK [^ ]+ FAIL' || true)
summary=$(printf '%s\n' "$clean" | grep -E '^SUMMARY \{' | tail -n1)
checks=$(printf '%s\n' "$clean" | grep -cE '^CHECK [^ ]+ (ok|FAIL)')
rc=0
if [ -n "$fails" ]; then echo "failed checks in $log:"; printf '%s\n' "$fails"; rc=1; fi
if [ -z "$summary" ]; then
  echo "FAIL: no SUMMARY line in $log (guest crashed, panicked or timed out); last lines:"
  printf '%s\n' "$clean" | tail -n 25
  rc=1
else
  echo "$summary"
  printf '%s\n' "$summary" | grep -q '"failed":0[,}]' || rc=1
fi
[ "$checks" -gt 0 ] || { echo "FAIL: no CHECK lines"; rc=1; }
[ $rc = 0 ] && echo "PASS: $checks checks in $log"
exit $rc
