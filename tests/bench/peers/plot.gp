# Plot of the peers benchmark: median client time of one poll per method, against the number of waiting
# sessions and against the size of the lock table. Usage: gnuplot -e "datadir='DIR'" plot.gp
set terminal pngcairo size 1400,560 font ",11"
set output datadir.'/peers.png'
set datafile missing "NaN"
set termoption noenhanced
set multiplot layout 1,2 title "One poll during a lock pile-up (PostgreSQL 15): client time, median (log-log)"
set logscale xy
set grid
set key top left
set ylabel "ms per poll"
set xlabel "waiting sessions N (L = 10 extra locks per session)"
plot for [i=2:7] datadir.'/peers_waiters.dat' using 1:i with linespoints lw 2 pt 7 title columnheader(i)
set xlabel "pg_locks rows (N = 1000 waiting sessions, L = 0 to 1000)"
plot for [i=2:7] datadir.'/peers_rows.dat' using 1:i with linespoints lw 2 pt 7 title columnheader(i)
unset multiplot
