/* wan_net.c: the two-namespace network over chorus-wan (wan_net.h). */
#include "wan_net.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[600];
  snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
  int st = system(full);
  return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void wan_net_init(struct wan_net *w) {
  memset(w, 0, sizeof *w);
  w->nsfd[0] = w->nsfd[1] = -1;
  w->in = w->out = -1;
}

/* wan_line: the next line chorus-wan prints, within @secs; 0, or -1. */
static int wan_line(struct wan_net *w, char *out, size_t cap, double secs) {
  size_t n = 0;
  double end = mono_s() + secs;
  while (n + 1 < cap) {
    struct pollfd pf = {.fd = w->out, .events = POLLIN};
    int left = (int)((end - mono_s()) * 1000);
    if (left <= 0 || poll(&pf, 1, left) <= 0)
      return -1;
    char c;
    if (read(w->out, &c, 1) != 1)
      return -1;
    if (c == '\n')
      break;
    out[n++] = c;
  }
  out[n] = '\0';
  return 0;
}

int wan_net_cmd(struct wan_net *w, const char *cmd, char *out, size_t cap) {
  char line[64];
  int l = snprintf(line, sizeof line, "%s\n", cmd);
  if (w->in < 0 || l <= 0 || (size_t)l >= sizeof line ||
      write(w->in, line, (size_t)l) != l || wan_line(w, out, cap, 5) != 0)
    return -1;
  return strncmp(out, "ok", 2) == 0 ? 0 : -1;
}

/* wan_start: chorus-wan between the namespaces; 0, 77 when it says it
 * cannot (no TUN, no privilege), else 1. */
static int wan_start(struct wan_net *w, double one_way_ms, const char *wan_bin,
                     const char *log) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    return 1;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return 1;
  }
  char delay[16];
  snprintf(delay, sizeof delay, "%g", one_way_ms);
  pid_t pid = fork();
  if (pid < 0)
    return 1;
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0)
      dup2(fd, 2);
    for (int i = 3; i < 1024; i++)
      close(i);
    execl(wan_bin, wan_bin, "--a", w->ns[0], "--b", w->ns[1], "--delay-ms",
          delay, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  w->pid = pid;
  w->in = in[1];
  w->out = out[0];
  char line[128];
  if (wan_line(w, line, sizeof line, 10) == 0 && strcmp(line, "ready") == 0)
    return 0;
  int st = 0;
  kill(pid, SIGTERM);
  waitpid(pid, &st, 0);
  w->pid = 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 77 ? 77 : 1;
}

int wan_net_setup(struct wan_net *w, const char *prefix, int per_dc,
                  double one_way_ms, const char *wan_bin, const char *log,
                  char *why, size_t cap) {
  if (geteuid() != 0) {
    snprintf(why, cap, "needs root (network namespaces)");
    return 77;
  }
  if (access("/dev/net/tun", R_OK | W_OK) != 0) {
    snprintf(why, cap, "needs /dev/net/tun");
    return 77;
  }
  if (access(wan_bin, X_OK) != 0) {
    snprintf(why, cap, "no chorus-wan at %s", wan_bin);
    return 1;
  }
  w->tag = 100 + (int)(getpid() % 100);
  for (int d = 0; d < 2; d++) {
    snprintf(w->ns[d], sizeof w->ns[d], "%s%d-dc%d", prefix, (int)getpid(),
             d + 1);
    if (sh("ip netns add %s", w->ns[d]) != 0) {
      w->ns[d][0] = '\0';
      snprintf(why, cap, "ip netns add refused");
      return 77;
    }
    char path[300];
    snprintf(path, sizeof path, "/run/netns/%s", w->ns[d]);
    w->nsfd[d] = open(path, O_RDONLY | O_CLOEXEC);
    if (w->nsfd[d] < 0 || sh("ip -n %s link set lo up", w->ns[d]) != 0) {
      snprintf(why, cap, "cannot open or bring up namespace %s", w->ns[d]);
      return 1;
    }
    for (int i = 1; i <= per_dc; i++)
      if (sh("ip -n %s addr add 10.%d.%d.%d/32 dev lo", w->ns[d], w->tag, d + 1,
             i) != 0) {
        snprintf(why, cap, "ip addr add in %s failed", w->ns[d]);
        return 1;
      }
  }
  int rc = wan_start(w, one_way_ms, wan_bin, log);
  if (rc != 0) {
    snprintf(why, cap, "chorus-wan %s (see %s)",
             rc == 77 ? "cannot open TUN devices" : "did not start", log);
    return rc;
  }
  for (int d = 0; d < 2; d++)
    if (sh("ip -n %s route add 10.%d.%d.0/24 dev wan0", w->ns[d], w->tag,
           2 - d) != 0) {
      snprintf(why, cap, "ip route add in %s failed", w->ns[d]);
      return 1;
    }
  return 0;
}

int wan_net_enter(const struct wan_net *w, int d) {
  if (d < 0 || d > 1 || w->nsfd[d] < 0)
    return -1;
  return setns(w->nsfd[d], CLONE_NEWNET) == 0 ? 0 : -1;
}

void wan_net_host(const struct wan_net *w, int d, int i, char *buf,
                  size_t cap) {
  snprintf(buf, cap, "10.%d.%d.%d", w->tag, d + 1, i + 1);
}

void wan_net_teardown(struct wan_net *w) {
  if (w->in >= 0)
    close(w->in); /* end of stdin: the tool exits */
  w->in = -1;
  if (w->pid > 0) {
    kill(w->pid, SIGTERM);
    waitpid(w->pid, NULL, 0);
    w->pid = 0;
  }
  if (w->out >= 0)
    close(w->out);
  w->out = -1;
  for (int d = 0; d < 2; d++) {
    if (w->nsfd[d] >= 0)
      close(w->nsfd[d]);
    w->nsfd[d] = -1;
    if (w->ns[d][0])
      sh("ip netns del %s", w->ns[d]);
    w->ns[d][0] = '\0';
  }
}
