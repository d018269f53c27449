/* chorus_wan.c: a userspace WAN link between two network namespaces (the
 * netem this kernel lacks), for real-process tests and chorus-bench.
 *
 * HOW IT WORKS
 *
 *   The tool opens a TUN device of the same name (--dev, "wan0") inside
 *   each of two network namespaces, A and B, and brings both up. The
 *   caller routes the other side's addresses into it (in A: `ip route add
 *   <B's subnet> dev wan0`, and the reverse in B). Every IP packet A sends
 *   towards B is then read by this process from A's device, held for the
 *   one-way delay (plus jitter), dropped with the loss probability, and
 *   written unchanged into B's device, where B's kernel receives it as if
 *   it came off a wire; the same from B to A. The packets are relayed at
 *   layer 3, so TCP, UDP (gossip) and ICMP (ping) all cross it with their
 *   own addresses: no NAT, no proxy addresses, a node advertises its
 *   --listen address and every peer reaches it there.
 *
 *   Delivery keeps order within a direction (a packet never leaves before
 *   the one read before it), so jitter stretches the gaps but does not
 *   reorder TCP segments; each direction is a FIFO of timestamped packets
 *   and the loop sleeps in ppoll until the earlier head is due.
 *
 *   Why plain poll and not libuv: two descriptors, one stdin and one
 *   deadline; a packet relay has nothing libuv would add, and the tool
 *   builds with no dependency at all.
 *
 * Usage:
 *   chorus-wan --a NS --b NS [--dev NAME] [--delay-ms D] [--jitter-ms J]
 *              [--loss P] [--seed S]
 *   NS is a name under /run/netns (ip netns add), or "." for the
 *   namespace the tool runs in. Once both devices are up the tool prints
 *   "ready" on stdout. Then it reads commands on stdin, one a line, and
 *   answers each with one line ("ok ..." or "error ..."):
 *     delay MS | jitter MS | loss P    change the link (both directions)
 *     cut | heal                       drop every packet / stop dropping
 *     stats                            ok a2b=N b2a=N lost=N cut=N full=N
 *                                      a2b_bytes=N b2a_bytes=N
 *                                      (packets and IP bytes relayed)
 *   End of stdin (the caller exited, even killed) or SIGTERM/SIGINT ends
 *   it; its devices, and the routes through them, vanish with it.
 *
 * Needs root (CAP_NET_ADMIN) and /dev/net/tun; exits 77 when either is
 * missing, so a test can skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MTU_MAX 65536
/* A direction holds at most this many packets in flight: 50 ms of a
 * 1 Gbit/s link in 1500-byte packets is ~4,200; beyond it, tail drop. */
#define QUEUE_MAX 16384

struct pkt {
  struct pkt *next;
  uint64_t due_us; /* CLOCK_MONOTONIC */
  size_t len;
  unsigned char data[];
};

struct dir {
  int from, to; /* TUN descriptors */
  struct pkt *head, *tail;
  size_t queued;
  uint64_t last_due_us;
  uint64_t relayed;
  uint64_t bytes; /* of the packets relayed, IP headers included */
};

static struct {
  uint64_t delay_us, jitter_us;
  double loss;
  bool cut;
  uint64_t rng;
  uint64_t lost, dropped_cut, dropped_full;
} L = {.rng = 0x9e3779b97f4a7c15ull};

static volatile sig_atomic_t stopping;

static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* xorshift64*: the tool owns its randomness, so a seed repeats a run's
 * loss and jitter pattern for the same packet sequence. */
static uint64_t rnd(void) {
  L.rng ^= L.rng >> 12;
  L.rng ^= L.rng << 25;
  L.rng ^= L.rng >> 27;
  return L.rng * 0x2545f4914f6cdd1dull;
}

static double rnd01(void) {
  return (double)(rnd() >> 11) / (double)(1ull << 53);
}

/* tun_open: a TUN device @dev inside namespace @ns ("." = ours), up; its
 * descriptor (non-blocking), or -1 with a line on stderr. A TUN device
 * belongs to the namespace its /dev/net/tun descriptor was opened in, so
 * the tool enters @ns to open it and returns to its own namespace. */
static int tun_open(const char *ns, const char *dev, int self_ns) {
  int nsfd = -1;
  if (strcmp(ns, ".") != 0) {
    char path[300];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
      fprintf(stderr, "chorus-wan: namespace %s: %s\n", ns, strerror(errno));
      if (nsfd >= 0)
        close(nsfd);
      return -1;
    }
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  int sock = -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
  if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) != 0) {
    fprintf(stderr, "chorus-wan: TUN %s in %s: %s\n", dev, ns, strerror(errno));
    goto err;
  }
  sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) {
    fprintf(stderr, "chorus-wan: %s flags: %s\n", dev, strerror(errno));
    goto err;
  }
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) {
    fprintf(stderr, "chorus-wan: %s up: %s\n", dev, strerror(errno));
    goto err;
  }
  close(sock);
  if (nsfd >= 0) {
    close(nsfd);
    if (setns(self_ns, CLONE_NEWNET) != 0) {
      fprintf(stderr, "chorus-wan: back home: %s\n", strerror(errno));
      close(fd);
      return -1;
    }
  }
  return fd;
err:
  if (sock >= 0)
    close(sock);
  if (fd >= 0)
    close(fd);
  if (nsfd >= 0) {
    close(nsfd);
    if (setns(self_ns, CLONE_NEWNET) != 0)
      fprintf(stderr, "chorus-wan: back home: %s\n", strerror(errno));
  }
  return -1;
}

/* take: reads every packet waiting on @d's source and queues it (or drops
 * it: cut, loss, full queue). */
static void take(struct dir *d, unsigned char *buf) {
  for (int i = 0; i < 256; i++) {
    ssize_t n = read(d->from, buf, MTU_MAX);
    if (n <= 0)
      return;
    if (L.cut) {
      L.dropped_cut++;
      continue;
    }
    if (L.loss > 0 && rnd01() < L.loss) {
      L.lost++;
      continue;
    }
    if (d->queued >= QUEUE_MAX) {
      L.dropped_full++;
      continue;
    }
    struct pkt *p = malloc(sizeof *p + (size_t)n);
    if (p == NULL) {
      L.dropped_full++;
      continue;
    }
    uint64_t now = mono_us();
    int64_t j = 0;
    if (L.jitter_us > 0)
      j = (int64_t)(rnd() % (2 * L.jitter_us + 1)) - (int64_t)L.jitter_us;
    int64_t due = (int64_t)(now + L.delay_us) + j;
    if (due < (int64_t)now)
      due = (int64_t)now;
    /* Order within a direction: never before the packet ahead. */
    p->due_us = (uint64_t)due < d->last_due_us ? d->last_due_us : (uint64_t)due;
    d->last_due_us = p->due_us;
    p->len = (size_t)n;
    p->next = NULL;
    memcpy(p->data, buf, (size_t)n);
    if (d->tail)
      d->tail->next = p;
    else
      d->head = p;
    d->tail = p;
    d->queued++;
  }
}

/* give: writes out every packet of @d that is due by @now. A write the
 * device refuses (its queue full) is a loss, as on a wire. */
static void give(struct dir *d, uint64_t now) {
  while (d->head != NULL && d->head->due_us <= now) {
    struct pkt *p = d->head;
    d->head = p->next;
    if (d->head == NULL)
      d->tail = NULL;
    d->queued--;
    if (write(d->to, p->data, p->len) == (ssize_t)p->len) {
      d->relayed++;
      d->bytes += p->len;
    } else
      L.dropped_full++;
    free(p);
  }
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* command: one stdin line. */
static void command(char *line, const struct dir *ab, const struct dir *ba) {
  line[strcspn(line, "\r\n")] = '\0';
  char *arg = strchr(line, ' ');
  if (arg)
    *arg++ = '\0';
  char *end = NULL;
  double v = arg ? strtod(arg, &end) : 0;
  bool num = arg && end != arg && *end == '\0' && v >= 0;
  if (strcmp(line, "delay") == 0 && num) {
    L.delay_us = (uint64_t)(v * 1000);
    reply("ok delay %.3f ms", v);
  } else if (strcmp(line, "jitter") == 0 && num) {
    L.jitter_us = (uint64_t)(v * 1000);
    reply("ok jitter %.3f ms", v);
  } else if (strcmp(line, "loss") == 0 && num && v <= 1) {
    L.loss = v;
    reply("ok loss %.4f", v);
  } else if (strcmp(line, "cut") == 0) {
    L.cut = true;
    reply("ok cut");
  } else if (strcmp(line, "heal") == 0) {
    L.cut = false;
    reply("ok heal");
  } else if (strcmp(line, "stats") == 0) {
    reply("ok a2b=%llu b2a=%llu lost=%llu cut=%llu full=%llu a2b_bytes=%llu "
          "b2a_bytes=%llu",
          (unsigned long long)ab->relayed, (unsigned long long)ba->relayed,
          (unsigned long long)L.lost, (unsigned long long)L.dropped_cut,
          (unsigned long long)L.dropped_full, (unsigned long long)ab->bytes,
          (unsigned long long)ba->bytes);
  } else if (line[0] != '\0') {
    reply("error unknown command or bad value: %s", line);
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: chorus-wan --a NS --b NS [--dev NAME] [--delay-ms D]\n"
          "                  [--jitter-ms J] [--loss P] [--seed S]\n"
          "NS: a name under /run/netns, or . for this namespace.\n"
          "stdin commands: delay MS, jitter MS, loss P, cut, heal, stats\n");
}

int main(int argc, char **argv) {
  const char *ns_a = NULL, *ns_b = NULL, *dev = "wan0";
  double delay = 0, jitter = 0, loss = 0;
  /* Every option takes a value: the arguments come in pairs. */
  if (argc % 2 != 1) {
    usage();
    return 2;
  }
  for (int i = 1; i < argc; i += 2) {
    const char *v = argv[i + 1];
    if (strcmp(argv[i], "--a") == 0)
      ns_a = v;
    else if (strcmp(argv[i], "--b") == 0)
      ns_b = v;
    else if (strcmp(argv[i], "--dev") == 0)
      dev = v;
    else if (strcmp(argv[i], "--delay-ms") == 0)
      delay = atof(v);
    else if (strcmp(argv[i], "--jitter-ms") == 0)
      jitter = atof(v);
    else if (strcmp(argv[i], "--loss") == 0)
      loss = atof(v);
    else if (strcmp(argv[i], "--seed") == 0)
      L.rng = strtoull(v, NULL, 0) | 1;
    else {
      usage();
      return 2;
    }
  }
  if (ns_a == NULL || ns_b == NULL || strcmp(ns_a, ns_b) == 0 || delay < 0 ||
      jitter < 0 || loss < 0 || loss > 1 || strlen(dev) >= IFNAMSIZ) {
    usage();
    return 2;
  }
  L.delay_us = (uint64_t)(delay * 1000);
  L.jitter_us = (uint64_t)(jitter * 1000);
  L.loss = loss;
  if (access("/dev/net/tun", R_OK | W_OK) != 0) {
    fprintf(stderr, "chorus-wan: /dev/net/tun: %s\n", strerror(errno));
    return 77;
  }
  int self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self_ns < 0) {
    fprintf(stderr, "chorus-wan: /proc/self/ns/net: %s\n", strerror(errno));
    return 77;
  }
  struct dir ab = {0}, ba = {0};
  ab.from = ba.to = tun_open(ns_a, dev, self_ns);
  if (ab.from < 0)
    return 77;
  ab.to = ba.from = tun_open(ns_b, dev, self_ns);
  if (ab.to < 0)
    return 77;
  close(self_ns);
  struct sigaction sa = {.sa_handler = on_stop};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  reply("ready");

  static unsigned char buf[MTU_MAX];
  char line[256];
  size_t llen = 0;
  bool stdin_open = true;
  while (!stopping && stdin_open) {
    uint64_t now = mono_us();
    give(&ab, now);
    give(&ba, now);
    uint64_t next = UINT64_MAX;
    if (ab.head)
      next = ab.head->due_us;
    if (ba.head && ba.head->due_us < next)
      next = ba.head->due_us;
    struct timespec ts, *tsp = NULL;
    if (next != UINT64_MAX) {
      uint64_t wait = next > now ? next - now : 0;
      ts.tv_sec = (time_t)(wait / 1000000u);
      ts.tv_nsec = (long)(wait % 1000000u) * 1000L;
      tsp = &ts;
    }
    struct pollfd pf[3] = {{.fd = ab.from, .events = POLLIN},
                           {.fd = ba.from, .events = POLLIN},
                           {.fd = 0, .events = POLLIN}};
    int n = ppoll(pf, 3, tsp, NULL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fprintf(stderr, "chorus-wan: poll: %s\n", strerror(errno));
      return 1;
    }
    if (pf[0].revents & POLLIN)
      take(&ab, buf);
    if (pf[1].revents & POLLIN)
      take(&ba, buf);
    if (pf[2].revents & (POLLIN | POLLHUP)) {
      ssize_t r = read(0, line + llen, sizeof line - 1 - llen);
      if (r <= 0) {
        stdin_open = false;
        break;
      }
      llen += (size_t)r;
      line[llen] = '\0';
      char *nl;
      while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        command(line, &ab, &ba);
        size_t used = (size_t)(nl + 1 - line);
        memmove(line, nl + 1, llen - used + 1);
        llen -= used;
      }
      if (llen == sizeof line - 1) /* a line too long: drop it */
        llen = 0;
    }
  }
  return 0;
}
