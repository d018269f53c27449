# bench/chorus/ab-lib.sh: the rounds and the summary the A/B scripts share
# (ab.sh, tls-ab.sh, auth-ab.sh). Sourced, not run. The caller defines
# run SIDE, which prints "OPS_PER_S US_PER_OP" for one run of that side,
# and sets $tmp to a scratch directory.

# ab_rounds ROUNDS SIDE...: ROUNDS rounds, each running every SIDE in the
# order given (alternating, back to back); one row per run, all kept in
# $tmp/all for ab_summary.
ab_rounds() {
  ab_n=$1
  shift
  printf '%-6s %-5s %10s %10s\n' round side "ops/s" "us/op"
  : >"$tmp/all"
  ab_i=1
  while [ "$ab_i" -le "$ab_n" ]; do
    for ab_side in "$@"; do
      ab_out=$(run "$ab_side")
      ab_ops=${ab_out% *}
      ab_us=${ab_out#* }
      printf '%-6s %-5s %10s %10s\n' "$ab_i" "$ab_side" "$ab_ops" "$ab_us"
      echo "$ab_side $ab_ops $ab_us" >>"$tmp/all"
    done
    ab_i=$((ab_i + 1))
  done
}

# ab_summary A B: each side's mean and spread (ops/s, node CPU us/op) and
# the ratios B/A of the means.
ab_summary() {
  awk -v a="$1" -v b="$2" '
    { s = $1; n[s]++; ops[s] += $2; us[s] += $3
      if (!(s in omin) || $2 < omin[s]) omin[s] = $2
      if (!(s in omax) || $2 > omax[s]) omax[s] = $2
      if (!(s in umin) || $3 < umin[s]) umin[s] = $3
      if (!(s in umax) || $3 > umax[s]) umax[s] = $3 }
    END {
      for (k = 0; k < 2; k++) {
        s = k ? b : a
        printf "mean   %-5s %10.0f %10.2f   (ops/s %.0f..%.0f, us/op %.2f..%.2f)\n",
          s, ops[s] / n[s], us[s] / n[s], omin[s], omax[s], umin[s], umax[s]
      }
      printf "%-12s %10.3f %10.3f\n", b "/" a,
        (ops[b] / n[b]) / (ops[a] / n[a]), (us[b] / n[b]) / (us[a] / n[a])
    }' "$tmp/all"
}
