/* wan_net.h: two network namespaces joined only by chorus-wan, for the
 * real-process programs that run two datacenters over an emulated WAN
 * (chorus-bench --dcs 2 --wan-rtt, tests/node/test_node_wan.c).
 *
 * THE NETWORK
 *
 *   Namespaces "<prefix><pid>-dc1" and "-dc2", loopback up, addresses
 *   10.T.1.1..N on dc1's loopback and 10.T.2.1..N on dc2's (T from the
 *   pid, so two runs do not share a subnet name). chorus-wan owns a TUN
 *   device "wan0" in each and relays every packet after the one-way
 *   delay; each namespace routes the other's /24 into wan0. Within a
 *   namespace packets go over its loopback with no delay.
 *
 * Needs root and /dev/net/tun: wan_net_setup answers 77 (with why) when
 * either is missing or `ip netns add` is refused.
 */
#ifndef CHORUS_WAN_NET_H
#define CHORUS_WAN_NET_H

#include <stddef.h>
#include <sys/types.h>

struct wan_net {
  char ns[2][32]; /* "" when not made */
  int nsfd[2];    /* open /run/netns/<ns>, for setns; -1 when not */
  int tag;        /* T, the second octet of both subnets */
  pid_t pid;      /* chorus-wan, 0 when not running */
  int in, out;    /* its stdin (commands) and stdout; -1 when closed */
};

/* wan_net_init: an empty @w (safe to tear down). */
void wan_net_init(struct wan_net *w);

/* wan_net_setup: the namespaces, @per_dc addresses in each, chorus-wan
 * (@wan_bin, its stderr appended to @log) at @one_way_ms, the routes.
 * 0; 77 when root, TUN or namespaces are refused; 1 on another failure;
 * either with a line in @why. On failure what was made stays in @w for
 * wan_net_teardown. */
int wan_net_setup(struct wan_net *w, const char *prefix, int per_dc,
                  double one_way_ms, const char *wan_bin, const char *log,
                  char *why, size_t cap);

/* wan_net_cmd: one command to chorus-wan ("cut", "delay 30", ...) and its
 * answer in @out; 0 when it answered "ok ...", else -1. */
int wan_net_cmd(struct wan_net *w, const char *cmd, char *out, size_t cap);

/* wan_net_enter: moves the calling thread into datacenter @d's (0 or 1)
 * namespace; sockets it makes from then on live there, and threads it
 * creates start there. 0, or -1. */
int wan_net_enter(const struct wan_net *w, int d);

/* wan_net_host: "10.T.(d+1).(i+1)", host @i (0-based) of datacenter @d. */
void wan_net_host(const struct wan_net *w, int d, int i, char *buf, size_t cap);

/* wan_net_teardown: stops chorus-wan (end of its stdin, then SIGTERM) and
 * deletes the namespaces. Idempotent. */
void wan_net_teardown(struct wan_net *w);

#endif /* CHORUS_WAN_NET_H */
