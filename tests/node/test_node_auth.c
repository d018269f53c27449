/* test_node_auth: client logins and roles on a real chorusd (issue 24):
 * a node with --auth required and a first admin from
 * CHORUS_ADMIN_PASSWORD; the admin adds users; a request before login is
 * refused EAUTH; a wrong password and an unknown user get the same
 * refusal, counted in /metrics and logged without the password; a
 * read-only user writing, and a user of keyspace A using keyspace B, get
 * EPERM and write nothing; failed logins are rate limited per address
 * (even the right password is refused past the limit) and the limit
 * lifts after its window; --resp with --auth required does not start.
 * One node, --replicas 1; users made with cheap Argon2id costs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "libchorus.h"
#include "node_harness.h"

#define ADMIN_PW "root-S3cret!"

static struct proc node;
static int http;

static struct chorus_client *open_as(const char *user, const char *pw) {
  char seeds[32], err[CHORUS_ERRMSG_SIZE] = "";
  snprintf(seeds, sizeof seeds, "127.0.0.1:%d", node.port);
  struct chorus_config cfg;
  chorus_config_init(&cfg);
  cfg.cluster = cluster;
  cfg.connect_timeout_ms = 3000;
  cfg.user = user;
  cfg.password = pw;
  struct chorus_client *c = NULL;
  if (chorus_client_open(seeds, &cfg, &c, err) != CHORUS_OK)
    fail_msg("chorus_client_open: %s", err);
  return c;
}

/* cput, cget: a put or get in keyspace @ks (NULL: default); the code,
 * the message in @why. */
static int cput(struct chorus_client *c, const char *ks, const char *key,
                const char *value, char *why, size_t cap) {
  struct chorus_opts o = {.keyspace = ks};
  struct chorus_result res;
  int rc =
      chorus_put(c, key, strlen(key), value, strlen(value), NULL, 0, &o, &res);
  if (why)
    snprintf(why, cap, "%s", res.errmsg);
  chorus_result_free(&res);
  return rc;
}

static int cget(struct chorus_client *c, const char *ks, const char *key,
                char *why, size_t cap) {
  struct chorus_opts o = {.keyspace = ks};
  struct chorus_result res;
  int rc = chorus_get(c, key, strlen(key), &o, &res);
  if (rc == CHORUS_OK && res.nvalues == 0)
    rc = CHORUS_ENOTFOUND; /* here: not found is an answer of its own */
  if (why)
    snprintf(why, cap, "%s", res.errmsg);
  chorus_result_free(&res);
  return rc;
}

static double logins(const char *result) {
  char body[65536], series[64];
  if (http_get(http, "/metrics", body, sizeof body) != 200)
    fail_msg("no /metrics");
  snprintf(series, sizeof series, "chorus_logins_total{result=\"%s\"}", result);
  return metric_value(body, series);
}

static void expect(int got, int want, const char *why, const char *text) {
  printf("# %s: %s\n", chorus_strerror(got), why);
  if (got != want || strstr(why, text) == NULL)
    fail_msg("expected %s with \"%s\", got %s: %s", chorus_strerror(want), text,
             chorus_strerror(got), why);
}

static void test_first_admin_and_users(void **state) {
  (void)state;
  node_init(&node, "a0");
  http = free_port();
  char http_arg[32];
  snprintf(http_arg, sizeof http_arg, "127.0.0.1:%d", http);
  setenv("CHORUS_ADMIN_PASSWORD", ADMIN_PW, 1);
  setenv("CHORUS_LOGIN_REFILL_MS", "1000", 1);
  const char *f[] = {
      "--cluster", cluster,  "--profile", "local",        "--replicas",
      "1",         "--auth", "required",  "--admin-user", "root",
      "--http",    http_arg, NULL};
  spawn(&node, f);
  unsetenv("CHORUS_ADMIN_PASSWORD");
  /* The first admin appears once the metadata is bootstrapped. */
  char why[CHORUS_ERRMSG_SIZE] = "";
  int rc = -1;
  double until = now_s() + 15;
  while (now_s() < until) {
    struct chorus_client *c = open_as("root", ADMIN_PW);
    rc = cput(c, NULL, "k", "v1", why, sizeof why);
    chorus_client_close(c);
    if (rc == CHORUS_OK)
      break;
    sleep_ms(200);
  }
  if (rc != CHORUS_OK)
    fail_msg("the first admin could not write: %s", why);
  struct chorus_client *adm = open_as("root", ADMIN_PW);
  struct chorus_pw_cost cheap = {1, 8};
  struct chorus_users *u = NULL;
  assert_int_equal(chorus_user_create(adm, "bob", "bob-pw", 6, &cheap, &u),
                   CHORUS_OK);
  chorus_users_free(u);
  assert_int_equal(chorus_user_grant(adm, "bob", CHORUS_ROLE_READ, NULL, &u),
                   CHORUS_OK);
  chorus_users_free(u);
  struct chorus_keyspaces *ks = NULL;
  struct chorus_keyspace a = {.name = "ka"}, b = {.name = "kb"};
  assert_int_equal(chorus_keyspace_create(adm, &a, &ks), CHORUS_OK);
  chorus_keyspaces_free(ks);
  assert_int_equal(chorus_keyspace_create(adm, &b, &ks), CHORUS_OK);
  chorus_keyspaces_free(ks);
  assert_int_equal(chorus_user_create(adm, "carol", "carol-pw", 8, &cheap, &u),
                   CHORUS_OK);
  chorus_users_free(u);
  assert_int_equal(chorus_user_grant(adm, "carol", CHORUS_ROLE_WRITE, "ka", &u),
                   CHORUS_OK);
  chorus_users_free(u);
  chorus_client_close(adm);
}

static void test_request_before_login(void **state) {
  (void)state;
  /* HELLO without credentials: refused at once. */
  assert_int_equal(client_open(node.port), -1);
  int fd = tcp_connect(node.port);
  assert_true(fd >= 0);
  struct wire_msg h = {.type = WIRE_HELLO, .request_id = next_id++};
  h.hello.version = WIRE_PROTOCOL_VERSION;
  h.hello.cluster =
      (struct wire_bytes){(const uint8_t *)cluster, strlen(cluster)};
  h.hello.role = WIRE_ROLE_CLIENT;
  struct reply r;
  assert_int_equal(send_msg(fd, &h), 0);
  assert_int_equal(recv_msg(fd, &r), 0);
  assert_int_equal(r.m.type, WIRE_ERROR);
  assert_int_equal(r.m.error.code, CHORUS_EAUTH);
  reply_free(&r);
  close(fd);
  /* A login begun, then a request instead of the proof: EAUTH, closed. */
  fd = tcp_connect(node.port);
  uint8_t cred[27] = {0};
  memcpy(cred + 24, "bob", 3);
  h.hello.credentials = (struct wire_bytes){cred, 27};
  assert_int_equal(send_msg(fd, &h), 0);
  assert_int_equal(recv_msg(fd, &r), 0);
  assert_int_equal(r.m.type, WIRE_AUTH_CHALLENGE);
  reply_free(&r);
  struct wire_msg g = {.type = WIRE_GET, .request_id = next_id++};
  g.get.key = (struct wire_bytes){(const uint8_t *)"k", 1};
  g.get.opts = quorum();
  assert_int_equal(send_msg(fd, &g), 0);
  assert_int_equal(recv_msg(fd, &r), 0);
  assert_int_equal(r.m.type, WIRE_ERROR);
  assert_int_equal(r.m.error.code, CHORUS_EAUTH);
  reply_free(&r);
  assert_int_equal(recv_msg(fd, &r), -1); /* closed */
  close(fd);
}

static void test_wrong_password_and_unknown_user(void **state) {
  (void)state;
  double failed = logins("failed");
  char why[CHORUS_ERRMSG_SIZE], wrong[CHORUS_ERRMSG_SIZE];
  struct chorus_client *c = open_as("root", "not-the-Password");
  expect(cget(c, NULL, "k", wrong, sizeof wrong), CHORUS_EAUTH, wrong,
         "login refused: unknown user or wrong password");
  chorus_client_close(c);
  c = open_as("nobody", "whatever");
  expect(cget(c, NULL, "k", why, sizeof why), CHORUS_EAUTH, why,
         "login refused: unknown user or wrong password");
  chorus_client_close(c);
  /* The same answer either way: nothing says which names exist. */
  assert_string_equal(strstr(why, "refused the handshake"),
                      strstr(wrong, "refused the handshake"));
  assert_true(logins("failed") >= failed + 2);
  char log[65536];
  read_file(node.log, log, sizeof log);
  assert_non_null(strstr(log, "login as root refused (wrong password)"));
  assert_non_null(strstr(log, "login as nobody refused (no such user)"));
  assert_null(strstr(log, "not-the-Password"));
  assert_null(strstr(log, ADMIN_PW));
}

static void test_roles(void **state) {
  (void)state;
  char why[CHORUS_ERRMSG_SIZE];
  struct chorus_client *bob = open_as("bob", "bob-pw");
  assert_int_equal(cget(bob, NULL, "k", why, sizeof why), CHORUS_OK);
  expect(cput(bob, NULL, "bob-wrote", "x", why, sizeof why), CHORUS_EPERM, why,
         "user bob may read every keyspace but not write it");
  chorus_client_close(bob);
  struct chorus_client *carol = open_as("carol", "carol-pw");
  assert_int_equal(cput(carol, "ka", "c1", "x", why, sizeof why), CHORUS_OK);
  expect(cput(carol, "kb", "c1", "x", why, sizeof why), CHORUS_EPERM, why,
         "user carol holds no role on keyspace kb");
  /* A keyspace that does not exist reads the same: nothing leaks. */
  expect(cput(carol, "nosuch", "c1", "x", why, sizeof why), CHORUS_EPERM, why,
         "user carol holds no role on keyspace nosuch");
  expect(cget(carol, NULL, "k", why, sizeof why), CHORUS_EPERM, why,
         "user carol holds no role on every keyspace");
  struct chorus_users *u = NULL;
  assert_int_equal(chorus_user_list(carol, NULL, &u), CHORUS_EPERM);
  chorus_users_free(u);
  chorus_client_close(carol);
  /* Nothing was written by the refused requests. */
  struct chorus_client *adm = open_as("root", ADMIN_PW);
  assert_int_equal(cget(adm, NULL, "bob-wrote", why, sizeof why),
                   CHORUS_ENOTFOUND);
  assert_int_equal(cget(adm, "kb", "c1", why, sizeof why), CHORUS_ENOTFOUND);
  assert_int_equal(cget(adm, "ka", "c1", why, sizeof why), CHORUS_OK);
  chorus_client_close(adm);
}

static void test_rate_limit(void **state) {
  (void)state;
  char why[CHORUS_ERRMSG_SIZE];
  /* Failures until the address is held back (5 in a row at most). */
  int refused = 0;
  for (int i = 0; i < 8 && !refused; i++) {
    struct chorus_client *c = open_as("bob", "wrong");
    (void)cget(c, NULL, "k", why, sizeof why);
    chorus_client_close(c);
    refused = strstr(why, "too many failed logins") != NULL;
  }
  if (!refused)
    fail_msg("8 bad logins in a row were never limited: %s", why);
  /* The right password too, now. */
  struct chorus_client *c = open_as("bob", "bob-pw");
  expect(cget(c, NULL, "k", why, sizeof why), CHORUS_EAUTH, why,
         "too many failed logins from 127.0.0.1");
  chorus_client_close(c);
  assert_true(logins("limited") >= 2);
  /* After the window (CHORUS_LOGIN_REFILL_MS, 1 s here) one try more. */
  sleep_ms(1100);
  c = open_as("bob", "bob-pw");
  assert_int_equal(cget(c, NULL, "k", why, sizeof why), CHORUS_OK);
  chorus_client_close(c);
}

static void test_resp_refused_with_auth(void **state) {
  (void)state;
  struct proc p;
  node_init(&p, "a1");
  char resp[32];
  snprintf(resp, sizeof resp, "127.0.0.1:%d", free_port());
  const char *f[] = {"--cluster", cluster, "--auth", "required",
                     "--resp",    resp,    NULL};
  spawn(&p, f);
  assert_true(wait_exit(&p, 10) > 0);
  char log[4096];
  read_file(p.log, log, sizeof log);
  assert_non_null(strstr(log, "the RESP gateway has no login yet"));
}

int main(int argc, char **argv) {
  if (harness_setup(argc, argv) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      TIMED(test_first_admin_and_users),
      TIMED(test_request_before_login),
      TIMED(test_wrong_password_and_unknown_user),
      TIMED(test_roles),
      TIMED(test_rate_limit),
      TIMED(test_resp_refused_with_auth),
  };
  int failed =
      cmocka_run_group_tests_name("node_auth", tests, NULL, group_teardown);
  return harness_finish(failed);
}
