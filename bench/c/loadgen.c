/*
 * Load generator in C, so the client costs as little CPU as possible on a 2-core machine:
 * CONNS connections, each strictly sequential (one request, wait for the answer, next), keys
 * handed out once each from a shared cursor, bounded by SECONDS. Benchmark tooling, compiled
 * by `npm run bench` with the system compiler; not part of the product.
 *
 *   loadgen socketmap PORT MAP   CONNS SECONDS KEYFILE [SOURCE_ADDRESS]
 *   loadgen ldap      PORT BASEDN CONNS SECONDS KEYFILE [SOURCE_ADDRESS]
 *   loadgen flood     PORT MAP   CONNS SECONDS SEED
 *
 * flood mode is the attacker: every connection pipelines requests for random unknown addresses
 * (nobody-<random>@example.com) as fast as the server takes them, reading replies as they come;
 * only TCP backpressure slows it. It prints sent/answered counts and the answered rate.
 *
 * ldap mode sends, anonymously, the search rcptgate's openldap preset sends for one address:
 * base BASEDN, scope sub, deref never, size limit 16, filter (|(mail=K)(mailAlternateAddress=K)),
 * attributes mail and mailAlternateAddress; BER is written and read by hand (no libldap needed).
 * SOURCE_ADDRESS binds the client side (e.g. 127.0.0.2: another "host" on loopback, for per-peer limits).
 * Prints one JSON line: requests, seconds, replies by kind, latency p50/p99/p99.9 in ms, and
 * requests still unanswered GRACE seconds after the deadline (it stops waiting then).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 262144
#define GRACE 30 /* seconds a reply may still take after the deadline */
enum { OK, NOTFOUND, TEMP, PERM, OTHER, FOUND, NONE, LDAPERR, KINDS };
static const char *kind_names[KINDS] = { "OK", "NOTFOUND", "TEMP", "PERM", "OTHER", "found", "notFound", "ldapError" };
static long counts[KINDS];

struct conn { int fd; int busy; double t0; int msgid; int entries; size_t len; size_t olen, opos; char in[BUF]; char out[16384]; };

static char **keys;
static size_t nkeys, cursor, done;
static double *lat;
static int ldap_mode;
static const char *arg3; /* map name or base DN */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* BER: tag, definite length, content. */
static size_t ber(unsigned char *out, unsigned char tag, const unsigned char *content, size_t n) {
  size_t o = 0;
  out[o++] = tag;
  if (n < 128) out[o++] = (unsigned char)n;
  else if (n < 256) { out[o++] = 0x81; out[o++] = (unsigned char)n; }
  else { out[o++] = 0x82; out[o++] = (unsigned char)(n >> 8); out[o++] = (unsigned char)n; }
  memcpy(out + o, content, n);
  return o + n;
}
static size_t ber_str(unsigned char *out, unsigned char tag, const char *s) { return ber(out, tag, (const unsigned char *)s, strlen(s)); }
static size_t ber_int(unsigned char *out, unsigned char tag, int v) {
  unsigned char c[4]; size_t n = 0;
  if (v < 128) c[n++] = (unsigned char)v;
  else if (v < 32768) { c[n++] = (unsigned char)(v >> 8); c[n++] = (unsigned char)v; }
  else { c[n++] = (unsigned char)(v >> 16); c[n++] = (unsigned char)(v >> 8); c[n++] = (unsigned char)v; }
  return ber(out, tag, c, n);
}

static size_t search_request(unsigned char *out, int msgid, const char *key) {
  unsigned char a[1024], b[1024], f[2048], attrs[256], body[4096], msg[4096];
  size_t n, fn = 0, bn = 0, an = 0, mn = 0;
  n = ber_str(a, 0x04, "mail"); n += ber_str(a + n, 0x04, key); fn += ber(f + fn, 0xa3, a, n);
  n = ber_str(b, 0x04, "mailAlternateAddress"); n += ber_str(b + n, 0x04, key); fn += ber(f + fn, 0xa3, b, n);
  an += ber_str(attrs + an, 0x04, "mail"); an += ber_str(attrs + an, 0x04, "mailAlternateAddress");
  bn += ber_str(body + bn, 0x04, arg3);
  bn += ber_int(body + bn, 0x0a, 2);  /* scope: wholeSubtree */
  bn += ber_int(body + bn, 0x0a, 0);  /* derefAliases: never */
  bn += ber_int(body + bn, 0x02, 16); /* sizeLimit */
  bn += ber_int(body + bn, 0x02, 10); /* timeLimit */
  body[bn++] = 0x01; body[bn++] = 1; body[bn++] = 0; /* typesOnly FALSE */
  bn += ber(body + bn, 0xa1, f, fn); /* or */
  bn += ber(body + bn, 0x30, attrs, an);
  mn += ber_int(msg + mn, 0x02, msgid);
  mn += ber(msg + mn, 0x63, body, bn);
  return ber(out, 0x30, msg, mn);
}

static int send_next(struct conn *c) {
  if (cursor >= nkeys) return 0;
  const char *key = keys[cursor++];
  unsigned char out[8192];
  size_t n;
  if (ldap_mode) {
    c->msgid = c->msgid % 2000000000 + 1;
    c->entries = 0;
    n = search_request(out, c->msgid, key);
  } else {
    char body[4096];
    int bl = snprintf(body, sizeof body, "%s %s", arg3, key);
    n = (size_t)snprintf((char *)out, sizeof out, "%d:%s,", bl, body);
  }
  c->t0 = now();
  c->busy = 1;
  for (size_t w = 0; w < n;) {
    ssize_t r = write(c->fd, out + w, n - w);
    if (r < 0) { if (errno == EINTR) continue; perror("write"); exit(1); }
    w += (size_t)r;
  }
  return 1;
}

static void answered(struct conn *c, int kind) {
  lat[done++] = (now() - c->t0) * 1000.0;
  counts[kind]++;
  c->busy = 0;
}

/* Reads one BER length at p (after the tag); returns header bytes used, 0 if incomplete. */
static size_t ber_len(const unsigned char *p, size_t avail, size_t *len) {
  if (avail < 1) return 0;
  if (p[0] < 128) { *len = p[0]; return 1; }
  size_t k = p[0] & 0x7f;
  if (avail < 1 + k || k > 4) return 0;
  *len = 0;
  for (size_t i = 0; i < k; i++) *len = (*len << 8) | p[1 + i];
  return 1 + k;
}

/* Consumes complete replies in c->in. */
static void parse(struct conn *c) {
  size_t p = 0;
  for (;;) {
    unsigned char *u = (unsigned char *)c->in + p;
    size_t avail = c->len - p;
    if (ldap_mode) {
      size_t len, h;
      if (avail < 2 || !(h = ber_len(u + 1, avail - 1, &len)) || avail < 1 + h + len) break;
      const unsigned char *m = u + 1 + h;
      size_t il = 0, ih = ber_len(m + 1, len - 1, &il); /* messageID */
      const unsigned char *op = m + 1 + ih + il;
      if (op[0] == 0x64) c->entries++;
      else if (op[0] == 0x65) {
        size_t ol, oh = ber_len(op + 1, 8, &ol);
        int code = op[1 + oh + 2];
        answered(c, code != 0 ? LDAPERR : c->entries ? FOUND : NONE);
      }
      p += 1 + h + len;
    } else {
      char *colon = memchr(c->in + p, ':', avail);
      if (!colon) break;
      long n = strtol(c->in + p, NULL, 10);
      size_t start = (size_t)(colon - c->in) + 1;
      if (start + (size_t)n + 1 > c->len) break;
      const char *r = c->in + start;
      int kind = !strncmp(r, "OK ", 3) ? OK : !strncmp(r, "NOTFOUND", 8) ? NOTFOUND : !strncmp(r, "TEMP", 4) ? TEMP : !strncmp(r, "PERM", 4) ? PERM : OTHER;
      answered(c, kind);
      p = start + (size_t)n + 1;
    }
  }
  memmove(c->in, c->in + p, c->len - p);
  c->len -= p;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double pct(double p) { if (!done) return 0; size_t i = (size_t)(p / 100.0 * (double)done); if (i >= done) i = done - 1; return lat[i]; }

/* The attacker: writes whenever the socket takes more, counts replies by kind. */
static int flood(int port, const char *map, int nconns, double seconds, unsigned seed) {
  int ep = epoll_create1(0), one = 1;
  struct conn **cs = calloc((size_t)nconns, sizeof *cs);
  for (int i = 0; i < nconns; i++) {
    struct conn *c = cs[i] = calloc(1, sizeof **cs);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) { perror("connect"); return 1; }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  unsigned long long x = seed ? seed : 1, sent = 0, got = 0, closed = 0;
  long kinds[5] = { 0 };
  double start = now(), deadline = start + seconds;
  struct epoll_event evs[512];
  while (now() < deadline) {
    int n = epoll_wait(ep, evs, 512, 100);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) { close(c->fd); c->fd = -1; closed++; continue; }
      if (evs[i].events & EPOLLIN) {
        ssize_t r = read(c->fd, c->in + c->len, BUF - c->len);
        if (r == 0) { close(c->fd); c->fd = -1; closed++; continue; }
        if (r > 0) {
          c->len += (size_t)r;
          size_t p = 0;
          for (;;) {
            char *colon = memchr(c->in + p, ':', c->len - p);
            if (!colon) break;
            long len = strtol(c->in + p, NULL, 10);
            size_t st = (size_t)(colon - c->in) + 1;
            if (st + (size_t)len + 1 > c->len) break;
            const char *rp = c->in + st;
            kinds[!strncmp(rp, "OK ", 3) ? 0 : !strncmp(rp, "NOTFOUND", 8) ? 1 : !strncmp(rp, "TEMP", 4) ? 2 : !strncmp(rp, "PERM", 4) ? 3 : 4]++;
            got++;
            p = st + (size_t)len + 1;
          }
          memmove(c->in, c->in + p, c->len - p);
          c->len -= p;
        }
      }
      if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) {
        /* Finish the pending burst first; a new burst only once the socket took all of it. */
        if (c->opos == c->olen) {
          size_t o = 0;
          while (o < sizeof c->out - 200) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            char body[160];
            int bl = snprintf(body, sizeof body, "%s nobody-%016llx@example.com", map, x);
            o += (size_t)snprintf(c->out + o, sizeof c->out - o, "%d:%s,", bl, body);
            sent++;
          }
          c->olen = o;
          c->opos = 0;
        }
        while (c->opos < c->olen) {
          ssize_t r = write(c->fd, c->out + c->opos, c->olen - c->opos);
          if (r < 0) break; /* EAGAIN: wait for EPOLLOUT again */
          c->opos += (size_t)r;
        }
      }
    }
  }
  double elapsed = now() - start;
  printf("{\"sent\":%llu,\"answered\":%llu,\"seconds\":%.6f,\"rate\":%.3f,\"closedByServer\":%llu,\"replies\":{\"OK\":%ld,\"NOTFOUND\":%ld,\"TEMP\":%ld,\"PERM\":%ld,\"OTHER\":%ld}}\n",
         sent, got, elapsed, (double)got / elapsed, closed, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 7 && !strcmp(argv[1], "flood")) { signal(SIGPIPE, SIG_IGN); return flood(atoi(argv[2]), argv[3], atoi(argv[4]), atof(argv[5]), (unsigned)atoi(argv[6])); }
  if (argc < 7) { fprintf(stderr, "usage: loadgen socketmap|ldap PORT MAP|BASEDN CONNS SECONDS KEYFILE\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  ldap_mode = !strcmp(argv[1], "ldap");
  int port = atoi(argv[2]), nconns = atoi(argv[4]);
  arg3 = argv[3];
  double seconds = atof(argv[5]);
  FILE *kf = fopen(argv[6], "r");
  if (!kf) { perror(argv[6]); return 1; }
  size_t cap = 1024; char line[2048];
  keys = malloc(cap * sizeof *keys);
  while (fgets(line, sizeof line, kf)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!*line) continue;
    if (nkeys == cap) keys = realloc(keys, (cap *= 2) * sizeof *keys);
    keys[nkeys++] = strdup(line);
  }
  fclose(kf);
  lat = malloc((nkeys + 1) * sizeof *lat);
  int ep = epoll_create1(0), one = 1;
  struct conn **cs = calloc((size_t)nconns, sizeof *cs);
  for (int i = 0; i < nconns; i++) {
    struct conn *c = cs[i] = calloc(1, sizeof **cs);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (argc > 7) {
      struct sockaddr_in src = { .sin_family = AF_INET };
      if (inet_pton(AF_INET, argv[7], &src.sin_addr) != 1 || bind(c->fd, (struct sockaddr *)&src, sizeof src)) { perror("bind source address"); return 1; }
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  double start = now(), deadline = start + seconds;
  int busy = 0;
  for (int i = 0; i < nconns; i++) busy += send_next(cs[i]);
  struct epoll_event evs[512];
  while (busy > 0) {
    int n = epoll_wait(ep, evs, 512, 1000);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      ssize_t r = read(c->fd, c->in + c->len, BUF - c->len);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) { fprintf(stderr, "connection closed by the server\n"); return 1; }
      c->len += (size_t)r;
      parse(c);
      if (!c->busy) {
        busy--;
        if (now() < deadline) busy += send_next(c);
      }
    }
    if (now() > deadline + GRACE) break; /* the rest count as unanswered */
  }
  double elapsed = now() - start;
  qsort(lat, done, sizeof *lat, cmp);
  printf("{\"unanswered\":%d,\"requests\":%zu,\"seconds\":%.6f,\"rate\":%.3f,\"p50\":%.6f,\"p99\":%.6f,\"p999\":%.6f,\"replies\":{", busy, done, elapsed, (double)done / elapsed, pct(50), pct(99), pct(99.9));
  int first = 1;
  for (int k = 0; k < KINDS; k++) if (counts[k]) { printf("%s\"%s\":%ld", first ? "" : ",", kind_names[k], counts[k]); first = 0; }
  printf("}}\n");
  return 0;
}
