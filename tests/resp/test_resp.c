/* test_resp.c: the pure half of chorusd's RESP gateway (node/resp/resp.h):
 * multibulk and inline commands, pipelines, commands that arrive a byte at
 * a time, every hard limit (the hostile headers of issue 26 among them:
 * nothing is allocated, the answer is a protocol error), integers as
 * Redis reads them, and the RESP2/RESP3 reply forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resp.h"

#define MAXARGS 16

static const struct resp_limits lim = {MAXARGS, 1024, 256, 4096};

static enum resp_parse_result parse(const char *s, size_t len,
                                    struct resp_arg *argv, size_t *argc,
                                    size_t *used, char *err) {
  return resp_parse((const uint8_t *)s, len, &lim, argv, argc, used, err);
}

static void arg_eq(const struct resp_arg *a, const char *want) {
  assert_int_equal(a->len, strlen(want));
  assert_memory_equal(a->ptr, want, a->len);
}

static void multibulk_and_pipeline(void **state) {
  (void)state;
  const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nx!\r\n"
                    "*1\r\n$4\r\nPING\r\n";
  struct resp_arg argv[MAXARGS];
  size_t argc, used;
  char err[RESP_ERRMSG_SIZE];
  size_t len = sizeof in - 1;
  assert_int_equal(parse(in, len, argv, &argc, &used, err), RESP_DONE);
  assert_int_equal(argc, 3);
  arg_eq(&argv[0], "SET");
  arg_eq(&argv[1], "k");
  arg_eq(&argv[2], "v\r\nx!"); /* binary safe: CRLF inside a bulk */
  assert_int_equal(parse(in + used, len - used, argv, &argc, &used, err),
                   RESP_DONE);
  assert_int_equal(argc, 1);
  arg_eq(&argv[0], "PING");
  /* Every proper prefix of a command is "more", never an error. */
  assert_int_equal(parse(in, len, argv, &argc, &used, err), RESP_DONE);
  size_t first = used;
  for (size_t k = 0; k < first; k++)
    assert_int_equal(parse(in, k, argv, &argc, &used, err), RESP_MORE);
  /* Empty bulk; *0 and *-1 are no command at all. */
  assert_int_equal(parse("*1\r\n$0\r\n\r\n", 10, argv, &argc, &used, err),
                   RESP_DONE);
  assert_int_equal(argc, 1);
  assert_int_equal(argv[0].len, 0);
  assert_int_equal(parse("*0\r\n", 4, argv, &argc, &used, err), RESP_DONE);
  assert_int_equal(argc, 0);
  assert_int_equal(used, 4);
  assert_int_equal(parse("*-1\r\n", 5, argv, &argc, &used, err), RESP_DONE);
  assert_int_equal(argc, 0);
}

static void inline_commands(void **state) {
  (void)state;
  struct resp_arg argv[MAXARGS];
  size_t argc, used;
  char err[RESP_ERRMSG_SIZE];
  const char *s = "  set\tkey  value\r\nGET key\n\r\n";
  assert_int_equal(parse(s, strlen(s), argv, &argc, &used, err), RESP_DONE);
  assert_int_equal(argc, 3);
  arg_eq(&argv[0], "set");
  arg_eq(&argv[1], "key");
  arg_eq(&argv[2], "value");
  assert_int_equal(used, 18);
  s += used;
  assert_int_equal(parse(s, strlen(s), argv, &argc, &used, err), RESP_DONE);
  assert_int_equal(argc, 2);
  s += used;
  assert_int_equal(parse(s, strlen(s), argv, &argc, &used, err), RESP_DONE);
  assert_int_equal(argc, 0); /* an empty line: nothing */
  assert_int_equal(parse("PING", 4, argv, &argc, &used, err), RESP_MORE);
}

static void refuses(const char *in, size_t len, const char *why) {
  struct resp_arg argv[MAXARGS];
  size_t argc, used;
  char err[RESP_ERRMSG_SIZE] = "";
  assert_int_equal(parse(in, len, argv, &argc, &used, err), RESP_ERROR);
  if (strstr(err, why) == NULL)
    fail_msg("%s: got \"%s\", want \"%s\"", in, err, why);
}

static void hostile_headers(void **state) {
  (void)state;
  /* Issue 26's: a count and a length no limit allows, refused from the
   * header alone (the parser allocates nothing; the test's argv is 16). */
  refuses("*2147483647\r\n", 13, "invalid multibulk length");
  refuses("*1\r\n$4294967296\r\n", 18, "invalid bulk length");
  refuses("*17\r\n", 5, "invalid multibulk length");
  refuses("*1\r\n$1025\r\n", 11, "invalid bulk length");
  refuses("*1\r\n$-1\r\n", 9, "invalid bulk length");
  refuses("*99999999999999999999\r\n", 23, "invalid multibulk length");
  /* Nested arrays: an argument must be a bulk string. */
  char nest[10000];
  memset(nest, 0, sizeof nest);
  for (size_t i = 0; i + 4 <= sizeof nest; i += 4)
    memcpy(nest + i, "*1\r\n", 4);
  refuses(nest, sizeof nest, "expected '$', got '*'");
  /* A header that never ends; garbage in a length; a bulk without CRLF. */
  char longhdr[64];
  memset(longhdr, '1', sizeof longhdr);
  longhdr[0] = '*';
  refuses(longhdr, sizeof longhdr, "invalid multibulk length");
  refuses("*1x\r\n", 5, "invalid multibulk length");
  refuses("*1\r\n$1\r\nab\r\n", 12, "bulk not ended by CRLF");
}

static void inline_bound(void **state) {
  (void)state;
  char *line = malloc(1 << 20);
  assert_non_null(line);
  memset(line, 'a', 1 << 20);
  refuses(line, 1 << 20, "too big inline request");
  refuses(line, 256, "too big inline request");
  struct resp_arg argv[MAXARGS];
  size_t argc, used;
  char err[RESP_ERRMSG_SIZE];
  assert_int_equal(parse(line, 255, argv, &argc, &used, err), RESP_MORE);
  free(line);
  refuses("a b c d e f g h i j k l m n o p q\n", 34, "too many arguments");
}

static void command_bound(void **state) {
  (void)state;
  /* Five 1000-byte arguments: over 4096 once the fifth header is read,
   * before its bytes. */
  char in[64];
  int n = snprintf(in, sizeof in, "*4\r\n$1000\r\n");
  struct resp_arg argv[MAXARGS];
  size_t argc, used;
  char err[RESP_ERRMSG_SIZE];
  assert_int_equal(parse(in, (size_t)n, argv, &argc, &used, err), RESP_MORE);
  char *whole = malloc(8192);
  assert_non_null(whole);
  size_t len = (size_t)snprintf(whole, 8192, "*5\r\n");
  for (int i = 0; i < 5; i++) {
    len += (size_t)snprintf(whole + len, 8192 - len, "$1000\r\n");
    memset(whole + len, 'x', 1000);
    len += 1000;
    memcpy(whole + len, "\r\n", 2);
    len += 2;
  }
  refuses(whole, len, "command too large");
  refuses(whole, 4 + 4 * 1009 + 7, "command too large");
  free(whole);
}

static void integers(void **state) {
  (void)state;
  int64_t v;
  assert_true(resp_int_parse((const uint8_t *)"0", 1, &v));
  assert_int_equal(v, 0);
  assert_true(resp_int_parse((const uint8_t *)"-42", 3, &v));
  assert_int_equal(v, -42);
  assert_true(resp_int_parse((const uint8_t *)"9223372036854775807", 19, &v));
  assert_true(v == INT64_MAX);
  assert_true(resp_int_parse((const uint8_t *)"-9223372036854775808", 20, &v));
  assert_true(v == INT64_MIN);
  static const char *bad[] = {
      "", "-", "01", "-0", "+1", " 1", "1 ", "1a", "9223372036854775808"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(resp_int_parse((const uint8_t *)bad[i], strlen(bad[i]), &v));
  struct resp_arg a = {(const uint8_t *)"gEt", 3};
  assert_true(resp_arg_is(&a, "GET"));
  assert_false(resp_arg_is(&a, "GETS"));
}

static void out_eq(struct resp_out *o, const char *want) {
  assert_false(o->failed);
  assert_int_equal(o->len, strlen(want));
  assert_memory_equal(o->data, want, o->len);
  o->len = 0;
}

static void replies(void **state) {
  (void)state;
  struct resp_out o;
  resp_out_init(&o, 0);
  resp_simple(&o, "OK");
  out_eq(&o, "+OK\r\n");
  resp_error(&o, "ERR a\r\nb");
  out_eq(&o, "-ERR a  b\r\n"); /* no CR or LF can break the line */
  resp_int(&o, -7);
  out_eq(&o, ":-7\r\n");
  resp_bulk(&o, "ab", 2);
  out_eq(&o, "$2\r\nab\r\n");
  resp_null(&o, 2);
  out_eq(&o, "$-1\r\n");
  resp_null(&o, 3);
  out_eq(&o, "_\r\n");
  resp_map(&o, 2, 2);
  out_eq(&o, "*4\r\n");
  resp_map(&o, 3, 2);
  out_eq(&o, "%2\r\n");
  resp_set(&o, 3, 1);
  out_eq(&o, "~1\r\n");
  resp_set(&o, 2, 1);
  out_eq(&o, "*1\r\n");
  resp_attr(&o, 2, 1);
  out_eq(&o, "");
  resp_verbatim(&o, 3, "x", 1);
  out_eq(&o, "=5\r\ntxt:x\r\n");
  resp_verbatim(&o, 2, "x", 1);
  out_eq(&o, "$1\r\nx\r\n");
  resp_out_free(&o);
  /* The bound: past it, failed, and nothing more is written. */
  resp_out_init(&o, 8);
  resp_simple(&o, "OK");
  resp_bulk(&o, "abcdef", 6);
  assert_true(o.failed);
  assert_int_equal(o.len, 5);
  resp_out_free(&o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(multibulk_and_pipeline),
      cmocka_unit_test(inline_commands),
      cmocka_unit_test(hostile_headers),
      cmocka_unit_test(inline_bound),
      cmocka_unit_test(command_bound),
      cmocka_unit_test(integers),
      cmocka_unit_test(replies),
  };
  return cmocka_run_group_tests_name("resp", tests, NULL, NULL);
}
