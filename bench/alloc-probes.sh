# Sourced by bench/run and bench/allocs: perf uprobes that count a process's
# heap allocations. libc's malloc, and in a binary built with mimalloc (the
# gateway, gateway/src/main.rs) mimalloc's entry point too: its Rust
# allocations never reach libc (C code in the process still uses libc's).

# alloc_probes BINARY: adds the probes the system lacks; prints the perf
# events to count, comma-separated (empty if no probe could be added).
alloc_probes() {
  local events=""
  if perf probe -l 2>/dev/null | grep probe_libc:malloc >/dev/null ||
    perf probe -q -x "$(ldd "$1" | awk '/libc.so/ {print $3}')" malloc 2>/dev/null; then
    events=probe_libc:malloc
  fi
  if nm "$1" 2>/dev/null | grep ' T mi_malloc_aligned$' >/dev/null &&
    { perf probe -l 2>/dev/null | grep entra_gw:alloc >/dev/null ||
      perf probe -q -x "$1" -a 'entra_gw:alloc=mi_malloc_aligned' 2>/dev/null; }; then
    events=${events:+$events,}entra_gw:alloc
  fi
  echo "$events"
}

# alloc_per_request FILE N: allocations per request, from the `perf stat -x,`
# output FILE of N requests.
alloc_per_request() {
  awk -F, -v n="$2" '/probe_libc:malloc|entra_gw:alloc/ { c += $1 } END { printf "%.1f", c / n }' "$1"
}

# had_libc_probe: 1 if libc's malloc probe was there before (to leave it).
had_libc_probe() { perf probe -l 2>/dev/null | grep -c probe_libc:malloc || true; }

# drop_alloc_probes HAD: leaves the system's probe list as it was.
drop_alloc_probes() {
  if [ "$1" = 0 ]; then perf probe -q -d probe_libc:malloc 2>/dev/null || true; fi
  perf probe -q -d 'entra_gw:*' 2>/dev/null || true
}
