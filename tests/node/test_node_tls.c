/* test_node_tls: TLS 1.3 on real chorusd processes (issue 24): what
 * `openssl s_client` sees; a 3-node cluster whose peer links are mutual
 * TLS serves at QUORUM; each bad input refused with a clear error on the
 * client's side and a counter on the node, which keeps serving; SIGHUP
 * reloads the certificates (and a broken file keeps the old ones); a
 * rolling switch of a live cluster from --client-tls off to optional to
 * required, node by node, while a client writes at QUORUM without one
 * failed request; revoked certificates (--tls-crl): a peer presenting one
 * is refused, a client with the CRL refuses a node presenting one, and a
 * SIGHUP with a new CRL closes a connection its certificate holds. Certificates
 * come from scripts/mkcerts ($CHORUS_MKCERTS). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "libchorus.h"
#include "node_harness.h"

static char certs[300];

static const char *cert(const char *name) {
  static char buf[8][512];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 512, "%s/%s", certs, name);
  return p;
}

/* ------------------------------------------------------------------------
 * Clients through libchorus
 * ------------------------------------------------------------------------ */

/* open_client: a libchorus client of node @port, with TLS when @ca (and
 * the client certificate @crt, NULL: none). */
static const char *client_crl; /* NULL, or open_client's tls_crl */

static struct chorus_client *open_client(int port, const char *ca,
                                         const char *crt) {
  char seeds[32], err[CHORUS_ERRMSG_SIZE] = "", pem[64], key[64];
  snprintf(seeds, sizeof seeds, "127.0.0.1:%d", port);
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = cluster;
  cfg.connect_timeout_ms = 3000;
  cfg.tls_crl = client_crl;
  if (ca) {
    char cab[64];
    snprintf(cab, sizeof cab, "%s.pem", ca);
    cfg.tls_ca = cert(cab);
  }
  if (crt) {
    snprintf(pem, sizeof pem, "%s.pem", crt);
    snprintf(key, sizeof key, "%s.key", crt);
    cfg.tls_cert = cert(pem);
    cfg.tls_key = cert(key);
  }
  struct chorus_client *c = NULL;
  if (chorus_client_open(seeds, &cfg, &c, err) != CHORUS_OK)
    fail_msg("chorus_client_open: %s", err);
  return c;
}

static int cput(struct chorus_client *c, const char *key, const char *value,
                char *why, size_t cap) {
  struct chorus_opts o = {.r = CHORUS_QUORUM, .w = CHORUS_QUORUM};
  struct chorus_result res;
  int rc =
      chorus_put(c, key, strlen(key), value, strlen(value), NULL, 0, &o, &res);
  if (why)
    snprintf(why, cap, "%s", res.errmsg);
  chorus_result_free(&res);
  return rc;
}

/* tstat: STATUS value @name of node @port over TLS (-1: no answer). */
static int64_t tstat(int port, const char *name) {
  struct chorus_client *c = open_client(port, "ca", NULL);
  struct chorus_result res;
  int64_t v = -1;
  if (chorus_status(c, &res) == CHORUS_OK)
    for (size_t i = 0; i < res.nstats; i++)
      if (strcmp(res.stats[i].name, name) == 0)
        v = res.stats[i].value;
  chorus_result_free(&res);
  chorus_client_close(c);
  return v;
}

/* expect_refused: a fresh client (@ca, @crt) writing to @port fails with
 * @code, its message containing @text. */
static void expect_refused(int port, const char *ca, const char *crt, int code,
                           const char *text) {
  struct chorus_client *c = open_client(port, ca, crt);
  char why[CHORUS_ERRMSG_SIZE];
  int rc = cput(c, "refused", "x", why, sizeof why);
  chorus_client_close(c);
  printf("# ca %s, cert %s: %s\n", ca ? ca : "-", crt ? crt : "-", why);
  if (rc != code || strstr(why, text) == NULL)
    fail_msg("expected %s with \"%s\", got %s: %s", chorus_strerror(code), text,
             chorus_strerror(rc), why);
}

/* ------------------------------------------------------------------------
 * The TLS cluster: n0..n2, peers mutual TLS, clients optional
 * ------------------------------------------------------------------------ */

static char n0_cert[400], n0_key[400], n0_crl[400];
static char seed_arg[32];

/* tls_member: node @i as start_member starts it, with TLS flags, seeded
 * through node @seed (a restarted n0 seeded through itself would join no
 * one). */
static void tls_member(int i, const char *client_mode, const char *peer_mode,
                       int seed) {
  snprintf(seed_arg, sizeof seed_arg, "127.0.0.1:%d", nodes[seed].port);
  const char *f[] = {"--cluster",
                     cluster,
                     "--cluster-key",
                     keyfile_a,
                     "--profile",
                     "local",
                     "--replicas",
                     "3",
                     "--seeds",
                     seed_arg,
                     "--leave-ms",
                     "500",
                     "--timeout",
                     "10000",
                     "--tls-cert",
                     i == 0 ? n0_cert : cert("node.pem"),
                     "--tls-key",
                     i == 0 ? n0_key : cert("node.key"),
                     "--tls-ca",
                     cert("ca.pem"),
                     "--tls-crl",
                     i == 0 ? n0_crl : cert("crl.pem"),
                     "--client-tls",
                     client_mode,
                     "--peer-tls",
                     peer_mode,
                     NULL};
  spawn(&nodes[i], f);
}

/* n0_copies: n0 reads copies of the node certificate, so the reload case
 * can break and mend them, and of a CRL that revokes nothing, until the
 * revocation case puts the real one in its place. */
static void n0_copies(void) {
  snprintf(n0_cert, sizeof n0_cert, "%s/n0.pem", certs);
  snprintf(n0_key, sizeof n0_key, "%s/n0.key", certs);
  snprintf(n0_crl, sizeof n0_crl, "%s/n0-crl.pem", certs);
  char cmd[1600];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp -p '%s' '%s' && cp '%s' '%s'",
           cert("node.pem"), n0_cert, cert("node.key"), n0_key,
           cert("crl-none.pem"), n0_crl);
  assert_int_equal(system(cmd), 0);
}

static bool tls_cluster_up;

static void ensure_tls_cluster(void) {
  if (tls_cluster_up)
    return;
  tls_cluster_up = true;
  n0_copies();
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    node_init(&nodes[i], name);
  }
  for (int i = 0; i < 3; i++)
    tls_member(i, "optional", "required", 0);
  /* --client-tls optional: the harness's plaintext status works. */
  wait_alive(3, 30);
}

static void test_s_client_sees_tls13_and_the_chain(void **state) {
  (void)state;
  ensure_tls_cluster();
  char cmd[1200], out[16384];
  snprintf(cmd, sizeof cmd,
           "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d "
           "-CAfile '%s' -verify_return_error -showcerts 2>&1",
           nodes[1].port, cert("ca.pem"));
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = '\0';
  pclose(f);
  if (strstr(out, "New, TLSv1.3") == NULL ||
      strstr(out, "depth=1 CN = chorus test CA") == NULL ||
      strstr(out, "depth=0 CN = chorus node") == NULL ||
      strstr(out, "Verify return code: 0 (ok)") == NULL) {
    show("s_client", out);
    fail_msg("s_client did not see TLS 1.3 with the test CA's chain");
  }
  /* TLS 1.2 is refused: the node speaks 1.3 only. */
  snprintf(cmd, sizeof cmd,
           "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d "
           "-CAfile '%s' -tls1_2 2>&1",
           nodes[1].port, cert("ca.pem"));
  f = popen(cmd, "r");
  assert_non_null(f);
  n = fread(out, 1, sizeof out - 1, f);
  out[n] = '\0';
  pclose(f);
  if (strstr(out, "New, TLSv1.2") != NULL) {
    show("s_client -tls1_2", out);
    fail_msg("the node spoke TLS 1.2");
  }
}

static void test_peer_tls_cluster_serves(void **state) {
  (void)state;
  ensure_tls_cluster();
  /* Every peer link is TLS: each node completed handshakes with both
   * others (dialled and accepted). */
  for (int i = 0; i < 3; i++) {
    int64_t hs = stat_of(nodes[i].port, "node.tls_handshakes");
    printf("# n%d: %lld TLS handshakes\n", i, (long long)hs);
    assert_true(hs >= 2);
  }
  struct chorus_client *c[3];
  for (int i = 0; i < 3; i++)
    c[i] = open_client(nodes[i].port, "ca", i == 2 ? "client" : NULL);
  for (int k = 0; k < 30; k++) {
    char key[32], why[CHORUS_ERRMSG_SIZE];
    snprintf(key, sizeof key, "tls-%d", k);
    if (cput(c[k % 3], key, "v", why, sizeof why) != CHORUS_OK)
      fail_msg("put %s: %s", key, why);
    struct chorus_opts o = {.r = CHORUS_QUORUM};
    struct chorus_result res;
    assert_int_equal(chorus_get(c[(k + 1) % 3], key, strlen(key), &o, &res),
                     CHORUS_OK);
    assert_int_equal(res.nvalues, 1);
    chorus_result_free(&res);
  }
  for (int i = 0; i < 3; i++)
    chorus_client_close(c[i]);
}

/* raw_refused: @len bytes to @port on a raw socket: the node closes the
 * connection (read sees EOF or an error) within the socket's timeout. */
static void raw_refused(int port, const void *bytes, size_t len) {
  int fd = tcp_connect(port);
  assert_true(fd >= 0);
  assert_int_equal(write_all(fd, bytes, len), 0);
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    ;
  close(fd);
}

static void test_bad_input_is_refused(void **state) {
  (void)state;
  ensure_tls_cluster();
  /* A node with TLS required of clients: a cluster of one. */
  static struct proc solo;
  node_init(&solo, "solo");
  const char *flags[] = {"--cluster",      cluster,          "--profile",
                         "local",          "--replicas",     "1",
                         "--tls-cert",     cert("node.pem"), "--tls-key",
                         cert("node.key"), "--tls-ca",       cert("ca.pem"),
                         "--client-tls",   "required",       NULL};
  spawn(&solo, flags);
  double end = now_s() + 20;
  while (tstat(solo.port, "node.tls_handshakes") < 0) {
    if (now_s() > end)
      fail_msg("solo node did not serve TLS");
    sleep_ms(100);
  }
  /* A plaintext client on a TLS-only port. */
  expect_refused(solo.port, NULL, NULL, CHORUS_EAUTH, "requires TLS");
  /* A client trusting another CA refuses the node. */
  expect_refused(solo.port, "other-ca", NULL, CHORUS_EAUTH,
                 "certificate verify failed");
  /* A client certificate of another CA, and an expired one. */
  expect_refused(solo.port, "ca", "other", CHORUS_EAUTH, "alert");
  expect_refused(solo.port, "ca", "expired", CHORUS_EAUTH, "alert");
  /* Bytes that are not TLS: a record header and garbage; and a TLS
   * ClientHello to a node without TLS (the harness's own, none). */
  static const char junk[] = "\x16\x03\x01\x00\x08garbage!";
  raw_refused(solo.port, junk, sizeof junk - 1);
  static const char plain_junk[] = "\x00\x00\x00\x05hello";
  raw_refused(solo.port, plain_junk, sizeof plain_junk - 1);
  assert_int_equal(tstat(solo.port, "node.tls_plaintext_refused"), 1);
  int64_t auth = tstat(solo.port, "node.tls_auth_failed");
  printf("# solo: tls_auth_failed %lld\n", (long long)auth);
  assert_true(auth >= 2); /* the other CA's and the expired certificates */
  assert_int_equal(tstat(solo.port, "node.tls_malformed"), 1);
  assert_true(tstat(solo.port, "node.malformed") >= 1);
  /* It still serves a good client. */
  struct chorus_client *c = open_client(solo.port, "ca", NULL);
  char why[CHORUS_ERRMSG_SIZE];
  assert_int_equal(cput(c, "after", "ok", why, sizeof why), CHORUS_OK);
  chorus_client_close(c);
  kill(solo.pid, SIGTERM);
  assert_int_equal(wait_exit(&solo, 15), 0);

  /* Peers without a cluster certificate: one in plaintext, one with a
   * certificate of another CA. Neither joins; the cluster serves. */
  static struct proc rogue[2];
  for (int i = 0; i < 2; i++) {
    node_init(&rogue[i], i ? "rogue1" : "rogue0");
    char seeds[32];
    static char seedbuf[2][32];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", nodes[0].port);
    memcpy(seedbuf[i], seeds, sizeof seeds);
    const char *plain[] = {"--cluster", cluster,     "--cluster-key",
                           keyfile_a,   "--profile", "local",
                           "--seeds",   seedbuf[i],  NULL};
    const char *other[] = {"--cluster",
                           cluster,
                           "--cluster-key",
                           keyfile_a,
                           "--profile",
                           "local",
                           "--seeds",
                           seedbuf[i],
                           "--tls-cert",
                           cert("other.pem"),
                           "--tls-key",
                           cert("other.key"),
                           "--tls-ca",
                           cert("other-ca.pem"),
                           "--peer-tls",
                           "required",
                           NULL};
    spawn(&rogue[i], i ? other : plain);
  }
  end = now_s() + 30;
  while (stat_of(nodes[0].port, "node.tls_peer_refused") < 1 ||
         stat_of(nodes[0].port, "node.tls_auth_failed") < 1) {
    if (now_s() > end)
      fail_msg("the rogue peers were not refused");
    sleep_ms(200);
  }
  assert_int_equal(stat_of(nodes[0].port, "meta.members_normal"), 3);
  for (int i = 0; i < 2; i++) {
    kill(rogue[i].pid, SIGKILL);
    (void)wait_exit(&rogue[i], 10);
  }
  serves(nodes[1].port);
  c = open_client(nodes[2].port, "ca", NULL);
  assert_int_equal(cput(c, "after-rogues", "ok", why, sizeof why), CHORUS_OK);
  chorus_client_close(c);
}

static void test_sighup_reloads(void **state) {
  (void)state;
  ensure_tls_cluster();
  /* A broken certificate file: the reload fails, the old one stays. */
  write_text(n0_cert, "not a certificate\n");
  kill(nodes[0].pid, SIGHUP);
  double end = now_s() + 10;
  while (stat_of(nodes[0].port, "node.tls_reload_failed") != 1) {
    if (now_s() > end)
      fail_msg("no failed reload counted");
    sleep_ms(50);
  }
  struct chorus_client *c = open_client(nodes[0].port, "ca", NULL);
  char why[CHORUS_ERRMSG_SIZE];
  assert_int_equal(cput(c, "reload-1", "ok", why, sizeof why), CHORUS_OK);
  chorus_client_close(c);
  /* Mended: the reload takes, the cluster never noticed. */
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", cert("node.pem"), n0_cert);
  assert_int_equal(system(cmd), 0);
  kill(nodes[0].pid, SIGHUP);
  end = now_s() + 10;
  while (stat_of(nodes[0].port, "node.tls_reloads") != 1) {
    if (now_s() > end)
      fail_msg("no reload counted");
    sleep_ms(50);
  }
  c = open_client(nodes[0].port, "ca", NULL);
  assert_int_equal(cput(c, "reload-2", "ok", why, sizeof why), CHORUS_OK);
  chorus_client_close(c);
  /* The peer links made before the reload still carry the cluster. */
  serves(nodes[0].port);
}

/* revoked_log: node @p's log shows a refused handshake over a revoked
 * certificate. */
static bool revoked_log(const struct proc *p) {
  static char text[1 << 16];
  read_file(p->log, text, sizeof text);
  return strstr(text, "closing: certificate verify failed: certificate "
                      "revoked") != NULL;
}

/* A certificate revoked while its holder is connected: SIGHUP with the new
 * CRL closes that connection (node_tls.c, recheck), not the others. */
static void test_reload_cuts_a_revoked_link(void **state) {
  (void)state;
  ensure_tls_cluster();
  /* openssl s_client holding n0's port with the revoked certificate as
   * its client certificate, verified under n0's CRL that revokes nothing;
   * -ign_eof keeps it open until the node closes (or 20 s pass). */
  char cmd[1600];
  snprintf(cmd, sizeof cmd,
           "timeout 20 openssl s_client -connect 127.0.0.1:%d -CAfile '%s' "
           "-cert '%s' -key '%s' -ign_eof </dev/null >/dev/null 2>&1; "
           "echo gone",
           nodes[0].port, cert("ca.pem"), cert("revoked.pem"),
           cert("revoked.key"));
  int64_t hs = stat_of(nodes[0].port, "node.tls_handshakes");
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  double end = now_s() + 10;
  while (stat_of(nodes[0].port, "node.tls_handshakes") <= hs) {
    if (now_s() > end)
      fail_msg("s_client made no handshake with n0");
    sleep_ms(50);
  }
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", cert("crl.pem"), n0_crl);
  assert_int_equal(system(cmd), 0);
  int64_t reloads = stat_of(nodes[0].port, "node.tls_reloads");
  kill(nodes[0].pid, SIGHUP);
  end = now_s() + 10;
  while (stat_of(nodes[0].port, "node.tls_reloads") <= reloads)
    if (now_s() > end)
      fail_msg("no reload counted");
    else
      sleep_ms(50);
  /* Closed by the reload, long before its timeout (20 s). */
  double t0 = now_s();
  char line[64] = "";
  if (fgets(line, sizeof line, f) == NULL)
    line[0] = '\0';
  double took = now_s() - t0;
  pclose(f);
  printf("# s_client with the revoked certificate closed %.1f s after the "
         "reload\n",
         took);
  assert_true(took < 3); /* the handshake timeout would close it at 5 s */
  assert_int_equal(stat_of(nodes[0].port, "node.tls_reload_closed"), 1);
  static char text[1 << 16];
  read_file(nodes[0].log, text, sizeof text);
  assert_non_null(strstr(text, "closing after the TLS reload: certificate "
                               "verify failed: certificate revoked"));
  /* The peer links (node.pem) stayed: the cluster serves through n0. */
  serves(nodes[0].port);
  assert_int_equal(stat_of(nodes[0].port, "meta.members_normal"), 3);
}

static void test_revoked_certificates_are_refused(void **state) {
  (void)state;
  ensure_tls_cluster();
  /* A node of the cluster's CA whose certificate the CRL revokes (as a
   * stolen node's would be): as a peer, and serving clients. */
  static struct proc rev;
  node_init(&rev, "revoked");
  static char seed[32];
  snprintf(seed, sizeof seed, "127.0.0.1:%d", nodes[0].port);
  const char *flags[] = {"--cluster",
                         cluster,
                         "--cluster-key",
                         keyfile_a,
                         "--profile",
                         "local",
                         "--seeds",
                         seed,
                         "--tls-cert",
                         cert("revoked.pem"),
                         "--tls-key",
                         cert("revoked.key"),
                         "--tls-ca",
                         cert("ca.pem"),
                         "--peer-tls",
                         "required",
                         "--client-tls",
                         "required",
                         NULL};
  int64_t before = stat_of(nodes[0].port, "node.tls_auth_failed");
  spawn(&rev, flags);
  /* Its dials to n0 fail in the handshake: n0 checked its certificate
   * against the CRL (n0's dials to it fail the same way). */
  double end = now_s() + 20;
  while (stat_of(nodes[0].port, "node.tls_auth_failed") <= before ||
         !revoked_log(&nodes[0])) {
    if (now_s() > end)
      fail_msg("n0 did not refuse the revoked peer");
    sleep_ms(100);
  }
  assert_int_equal(stat_of(nodes[0].port, "meta.members_normal"), 3);
  /* A client with the CRL refuses the revoked node; without it, the very
   * same certificate passes (it chains to the CA): the CRL is the check. */
  client_crl = cert("crl.pem");
  expect_refused(rev.port, "ca", NULL, CHORUS_EAUTH,
                 "certificate verify failed: certificate revoked");
  /* ...and takes a good node. */
  struct chorus_client *c = open_client(nodes[1].port, "ca", NULL);
  char why[CHORUS_ERRMSG_SIZE];
  if (cput(c, "crl-ok", "ok", why, sizeof why) != CHORUS_OK)
    fail_msg("a client with the CRL refused a good node: %s", why);
  chorus_client_close(c);
  client_crl = NULL;
  c = open_client(rev.port, "ca", NULL);
  struct chorus_result res;
  int rc = chorus_status(c, &res);
  chorus_result_free(&res);
  chorus_client_close(c);
  assert_int_equal(rc, CHORUS_OK);
  /* A client presenting the revoked certificate is refused by a node with
   * the CRL (counted like any certificate refused). */
  before = stat_of(nodes[1].port, "node.tls_auth_failed");
  expect_refused(nodes[1].port, "ca", "revoked", CHORUS_EAUTH, "revoked");
  assert_true(stat_of(nodes[1].port, "node.tls_auth_failed") > before);
  kill(rev.pid, SIGKILL);
  (void)wait_exit(&rev, 10);
  serves(nodes[2].port);
}

/* ------------------------------------------------------------------------
 * The rolling switch: off -> optional -> required under a writer
 * ------------------------------------------------------------------------ */

static const char *mode[3]; /* each node's --client-tls */
static struct chorus_client *wc[3];
static unsigned writes, failures;
static char first_failure[CHORUS_ERRMSG_SIZE + 64];

static void writer_open(int i, bool tls) {
  wc[i] = open_client(nodes[i].port, tls ? "ca" : NULL, NULL);
}

/* write_some: one QUORUM write through node @via's client. */
static void write_some(int via) {
  char key[32], why[CHORUS_ERRMSG_SIZE];
  snprintf(key, sizeof key, "roll-%u", writes);
  writes++;
  if (cput(wc[via], key, "v", why, sizeof why) != CHORUS_OK) {
    if (failures++ == 0)
      snprintf(first_failure, sizeof first_failure, "%s via n%d: %s", key, via,
               why);
  }
}

/* alive_everywhere: every node sees 3 members alive, asked over TLS
 * where a node takes it, else in plaintext. */
static bool alive_everywhere(void) {
  for (int i = 0; i < 3; i++) {
    int64_t v = strcmp(mode[i], "off") == 0
                    ? stat_of(nodes[i].port, "members.alive")
                    : tstat(nodes[i].port, "members.alive");
    if (v != 3)
      return false;
  }
  return true;
}

/* restart: node @i again with --client-tls @m, while the writer writes
 * through another node; its own client is reopened after (with TLS from
 * the optional step on: @tls). */
static void restart(int i, const char *m, bool tls) {
  int via = (i + 1) % 3;
  chorus_client_close(wc[i]);
  wc[i] = NULL;
  kill(nodes[i].pid, SIGTERM);
  /* Writes go on while it leaves (--leave-ms 500), then it is reaped. */
  double end = now_s() + 0.4;
  while (now_s() < end)
    write_some(via);
  assert_int_equal(wait_exit(&nodes[i], 20), 0);
  mode[i] = m;
  if (strcmp(m, "off") == 0) {
    member_extra = NULL;
    start_member(&nodes[i], keyfile_a, nodes[via].port, "64");
  } else {
    tls_member(i, m, "off", via);
  }
  end = now_s() + 30;
  while (!alive_everywhere()) {
    write_some(via);
    if (now_s() > end) {
      for (int j = 0; j < 3; j++)
        printf("# n%d (%s): alive %lld plain, %lld tls\n", j, mode[j],
               (long long)stat_of(nodes[j].port, "members.alive"),
               (long long)tstat(nodes[j].port, "members.alive"));
      fail_msg("n%d did not come back", i);
    }
  }
  writer_open(i, tls);
  /* Alive in gossip is not serving yet (replication answers "this node
   * is starting" until its epoch is durable): the writer moves to it once
   * a read through it answers, as an operator waits for readiness. */
  end = now_s() + 30;
  for (;;) {
    struct chorus_opts o = {.r = CHORUS_QUORUM};
    struct chorus_result res;
    int rc = chorus_get(wc[i], "roll-0", 6, &o, &res);
    chorus_result_free(&res);
    if (rc == CHORUS_OK)
      break;
    write_some(via);
    if (now_s() > end)
      fail_msg("n%d does not serve reads", i);
  }
  for (int k = 0; k < 10; k++)
    write_some(i);
}

static void test_rolling_switch_without_a_failed_request(void **state) {
  (void)state;
  /* The TLS cluster's nodes go; this one reuses their slots. */
  kill_all();
  tls_cluster_up = false;
  n0_copies();
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "r%d", i);
    node_init(&nodes[i], name);
    mode[i] = "off";
  }
  for (int i = 0; i < 3; i++)
    start_member(&nodes[i], keyfile_a, nodes[0].port, "64");
  wait_alive(3, 30);
  for (int i = 0; i < 3; i++)
    writer_open(i, false);
  for (int i = 0; i < 3; i++)
    restart(i, "optional", false);
  /* Every node takes both: the clients move to TLS. */
  for (int i = 0; i < 3; i++) {
    chorus_client_close(wc[i]);
    writer_open(i, true);
    write_some(i);
  }
  for (int i = 0; i < 3; i++)
    restart(i, "required", true);
  /* A plaintext client is now refused everywhere. */
  for (int i = 0; i < 3; i++)
    expect_refused(nodes[i].port, NULL, NULL, CHORUS_EAUTH, "requires TLS");
  for (int i = 0; i < 3; i++)
    chorus_client_close(wc[i]);
  printf("# %u writes at QUORUM during 6 restarts, %u failed%s%s\n", writes,
         failures, failures ? ": first " : "", failures ? first_failure : "");
  assert_int_equal(failures, 0);
  assert_true(writes >= 60);
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  const char *mk = getenv("CHORUS_MKCERTS");
  if (mk == NULL) {
    fprintf(stderr, "set CHORUS_MKCERTS to scripts/mkcerts\n");
    return 1;
  }
  snprintf(certs, sizeof certs, "%s/certs", root);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "'%s' '%s' >/dev/null", mk, certs);
  if (system(cmd) != 0) {
    fprintf(stderr, "%s failed\n", cmd);
    return 1;
  }
  const struct CMUnitTest tests[] = {
      TIMED(test_s_client_sees_tls13_and_the_chain),
      TIMED(test_peer_tls_cluster_serves),
      TIMED(test_bad_input_is_refused),
      TIMED(test_sighup_reloads),
      TIMED(test_reload_cuts_a_revoked_link),
      TIMED(test_revoked_certificates_are_refused),
      TIMED(test_rolling_switch_without_a_failed_request),
  };
  int failed =
      cmocka_run_group_tests_name("node_tls", tests, NULL, group_teardown);
  return harness_finish(failed);
}
