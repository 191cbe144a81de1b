/*
 * The do-nothing socketmap responder: the ceiling of any socketmap server behind the same
 * client. Answers "OK <key>" to every netstring request at once. Benchmark tooling, compiled by
 * `npm run bench` with the system compiler (cc -O2); not part of the product.
 *
 *   null-socketmap PORT      (listens on 127.0.0.1:PORT, prints "ready" once listening)
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
#include <unistd.h>
#include <fcntl.h>

#define BUF 65536
#define MAXFD 4096

struct conn { char in[BUF]; size_t len; };
static struct conn *conns[MAXFD];

static void drop(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(conns[fd]);
  conns[fd] = NULL;
}

/* Answers every complete request in c->in; returns -1 on a framing error. */
static int serve(int fd, struct conn *c) {
  static char out[BUF * 2];
  size_t o = 0, p = 0;
  for (;;) {
    char *colon = memchr(c->in + p, ':', c->len - p);
    if (!colon) break;
    long n = strtol(c->in + p, NULL, 10);
    size_t start = (size_t)(colon - c->in) + 1;
    if (n < 0 || n > 10000) return -1;
    if (start + (size_t)n + 1 > c->len) break;
    const char *req = c->in + start;
    const char *sp = memchr(req, ' ', (size_t)n);
    size_t klen = sp ? (size_t)n - (size_t)(sp - req) - 1 : 0;
    o += (size_t)sprintf(out + o, "%zu:OK ", klen + 3);
    memcpy(out + o, sp + 1, klen);
    o += klen;
    out[o++] = ',';
    p = start + (size_t)n + 1;
    if (o > BUF) break;
  }
  memmove(c->in, c->in + p, c->len - p);
  c->len -= p;
  for (size_t w = 0; w < o;) {
    ssize_t r = write(fd, out + w, o - w);
    if (r < 0) { if (errno == EINTR) continue; return -1; }
    w += (size_t)r;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: null-socketmap PORT\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) { perror("listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("ready\n");
  fflush(stdout);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) continue;
        if (c >= MAXFD) { close(c); continue; }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[c] = calloc(1, sizeof(struct conn));
        struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        continue;
      }
      struct conn *c = conns[fd];
      if (!c) continue;
      ssize_t r = read(fd, c->in + c->len, BUF - c->len);
      if (r < 0 && errno == EINTR) continue;
      if (r > 0) c->len += (size_t)r;
      if (r <= 0 || serve(fd, c) < 0) drop(ep, fd);
    }
  }
}
