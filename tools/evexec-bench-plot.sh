#!/bin/sh
# evexec-bench-plot.sh -- draw W6 (jobs/s against workers, one line per
# backend) from `evexec-bench --csv` output as an SVG, with gnuplot.
#
# usage: evexec-bench-plot.sh [-o OUT.svg] [-t TITLE] [CSV]
#        evexec-bench --workload w6 --csv | evexec-bench-plot.sh -o w6.svg
#
# CSV defaults to standard input, OUT to evexec-bench-w6.svg.  Without
# gnuplot it says so and exits 0, so that it can sit in a make target on
# machines that lack it.
set -eu

out=evexec-bench-w6.svg
title="W6: no-op jobs, 1024 in flight"
while [ $# -gt 0 ]; do
    case $1 in
    -o) out=$2; shift 2 ;;
    -t) title=$2; shift 2 ;;
    -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "evexec-bench-plot: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
csv=${1:--}

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "evexec-bench-plot: gnuplot is not installed; no plot drawn" >&2
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evexec-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# CSV: workload,metric,workers,backend,median,min,max,runs
# One data file per backend: workers, median, min, max (millions of jobs/s).
awk -F, -v dir="$tmp" '
    $1 == "w6" && $2 == "jobs_per_s" {
        f = dir "/" $4 ".dat"
        if (!(f in seen)) { seen[f] = 1; order[++n] = $4 }
        printf "%s %.6g %.6g %.6g\n", $3, $5 / 1e6, $6 / 1e6, $7 / 1e6 | ("sort -n > \"" f "\"")
    }
    END {
        for (i = 1; i <= n; i++) print order[i] > (dir "/backends")
    }' "$csv"

if [ ! -s "$tmp/backends" ]; then
    echo "evexec-bench-plot: no W6 rows in the input (run evexec-bench --workload w6 --csv)" >&2
    exit 1
fi

plot=""
while read -r b; do
    [ -n "$plot" ] && plot="$plot, "
    plot="$plot'$tmp/$b.dat' using 1:2:3:4 with yerrorlines title '$b'"
done < "$tmp/backends"

gnuplot <<EOF
set terminal svg size 720,440 dynamic font "sans,12" background rgb "white"
set output "$out"
set title "$title"
set xlabel "worker threads"
set ylabel "million jobs/s (median, min-max)"
set logscale x 2
set xrange [0.8:80]
set yrange [0:*]
set xtics (1, 2, 4, 8, 16, 32, 64)
set key top right
set grid ytics
plot $plot
EOF
echo "evexec-bench-plot: wrote $out"
