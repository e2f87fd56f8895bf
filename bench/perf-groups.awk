# Sums `perf report --no-children --sort dso,sym --stdio` lines into groups
# by where the code comes from (the first matching rule wins), so a profile
# reads as "kernel x %, Pingora y %, gateway z %". Usage:
#   perf report ... | awk -f bench/perf-groups.awk
function group(dso, sym) {
  if (sym ~ /^\[k\]/ || dso ~ /kernel/) return "kernel (network stack, syscalls, scheduling)"
  if (sym ~ /entra_gateway|policy::/) return "entra-gateway and policy code"
  if (sym ~ /serde_json|serde::|ryu::|itoa::/) return "serde_json (assertion payload)"
  if (sym ~ /base64/) return "base64"
  if (sym ~ /sha2|(^|[^A-Za-z_])ring::|p256|ecdsa/) return "hashing and crypto (SHA-256 of the session id)"
  if (sym ~ /prometheus/) return "prometheus metrics"
  if (sym ~ /cookie::/) return "cookie crate (Cookie header parsing)"
  if (sym ~ /pingora/) return "Pingora"
  if (sym ~ /httparse|http::|HeaderMap|HeaderValue|HeaderName/) return "http/httparse (header maps, parsing)"
  if (sym ~ /tokio|mio::/) return "tokio and mio"
  if (sym ~ /malloc|free|realloc|_int_|cfree|alloc::alloc|__rust_(alloc|dealloc|realloc)|tcache/) return "allocator (malloc/free)"
  if (sym ~ /memcpy|memmove|memset|memcmp|bcmp|strlen|strcmp/) return "memcpy/memcmp/strcmp"
  if (sym ~ /hashbrown|core::hash|SipHash|sip::/) return "hash maps"
  if (sym ~ /bytes::/) return "bytes"
  if (sym ~ /pthread|__lll|futex|syscall|libc|__GI_|epoll|send|recv|write|read/) return "libc (syscall wrappers, locks)"
  if (sym ~ /core::|alloc::|std::/) return "Rust std/core (fmt, strings, collections)"
  return "other"
}
/^ *[0-9.]+%/ {
  pct = $1; sub(/%/, "", pct)
  dso = $2
  sym = ""; for (i = 3; i <= NF; i++) sym = sym (i > 3 ? " " : "") $i
  g = group(dso, sym)
  sum[g] += pct; total += pct
}
END {
  for (g in sum) printf "%6.1f %%  %s\n", sum[g], g | "sort -rn"
  close("sort -rn")
  printf "%6.1f %%  (total of the listed samples)\n", total
}
