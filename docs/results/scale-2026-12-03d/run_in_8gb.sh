#!/bin/sh
# Run a command in a cgroup-v1 memory group of 8 GiB (page cache charged to it), after
# dropping the page cache: ./run_in_8gb.sh python measure_in_8gb.py CATALOG
set -e
group=/sys/fs/cgroup/memory/nanhu-8g
mkdir -p "$group"
echo $((8 << 30)) > "$group/memory.limit_in_bytes"
echo 0 > "$group/memory.max_usage_in_bytes" 2>/dev/null || true
sync && echo 3 > /proc/sys/vm/drop_caches
echo $$ > "$group/cgroup.procs"
exec "$@"
