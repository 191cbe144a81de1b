/**
 * Milliseconds on the wall-clock scale that advance with the monotonic clock: the wall clock at
 * process start plus the time elapsed since. Answer lifetimes (`cache.*Ttl`, `staleIfError`) are
 * real time: a wall clock stepped back an hour (NTP after a boot with a wrong RTC, a restored VM)
 * must not keep a cached "no such entry" an hour longer, nor one stepped forward expire every
 * answer at once. Near enough to the wall clock to be written to the answer file.
 */
export function steadyNow(): number {
  return performance.timeOrigin + performance.now();
}
