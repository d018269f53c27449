/* test_node_json.c: the JSON string escaper of chorusd's json log lines
 * (node_json.h): each class of byte, cuts at the buffer's end, and every
 * byte string of a random sample escaping to valid UTF-8 JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node_json.h"

/* esc: @s (@len bytes) escaped into a NUL-terminated static buffer. */
static const char *esc(const char *s, size_t len) {
  static char out[1024];
  size_t cut = 99;
  size_t n = node_json_escape(out, sizeof out - 1, s, len, &cut);
  assert_int_equal(cut, 0);
  out[n] = '\0';
  return out;
}
#define ESC(lit) esc(lit, sizeof lit - 1)

static void test_plain_and_specials(void **state) {
  (void)state;
  assert_string_equal(ESC("put k=42 -> OK"), "put k=42 -> OK");
  assert_string_equal(ESC("a\"b\\c"), "a\\\"b\\\\c");
  assert_string_equal(ESC("\b\f\n\r\t"), "\\b\\f\\n\\r\\t");
  assert_string_equal(ESC("\x01\x1f\x7f"), "\\u0001\\u001f\\u007f");
  /* A NUL inside the bytes is escaped, not an end. */
  assert_string_equal(ESC("a\0b"), "a\\u0000b");
  assert_string_equal(ESC(""), "");
}

static void test_utf8(void **state) {
  (void)state;
  /* Well-formed sequences of each length pass as they are. */
  assert_string_equal(ESC("\xc3\xa9"), "\xc3\xa9");                 /* é */
  assert_string_equal(ESC("\xe2\x82\xac"), "\xe2\x82\xac");         /* € */
  assert_string_equal(ESC("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80"); /* 😀 */
  assert_string_equal(ESC("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf"); /* max */
  /* Each byte that starts no well-formed sequence is one U+FFFD. */
  assert_string_equal(ESC("\xff"), "\\ufffd");
  assert_string_equal(ESC("\x80x"), "\\ufffdx");          /* lone cont. */
  assert_string_equal(ESC("\xc0\xaf"), "\\ufffd\\ufffd"); /* overlong */
  assert_string_equal(ESC("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd");
  assert_string_equal(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"); /* surr. */
  assert_string_equal(ESC("\xf4\x90\x80\x80"),
                      "\\ufffd\\ufffd\\ufffd\\ufffd"); /* > U+10FFFF */
  assert_string_equal(ESC("\xc3"), "\\ufffd");         /* cut at the end */
  assert_string_equal(ESC("\xe2\x82"), "\\ufffd\\ufffd");
  assert_string_equal(ESC("\xe2\x82x"), "\\ufffd\\ufffdx");
}

static void test_cut_whole_escapes(void **state) {
  (void)state;
  char out[16];
  size_t cut = 0;
  /* 5 bytes of room: "ab" then \n (2) fit; the U+FFFD escape (6) does not. */
  size_t n = node_json_escape(out, 5,
                              "ab\n\xff"
                              "cd",
                              6, &cut);
  assert_int_equal(n, 4);
  assert_memory_equal(out, "ab\\n", 4);
  assert_int_equal(cut, 3);
  /* A 4-byte character is never split. */
  n = node_json_escape(out, 3, "a\xf0\x9f\x98\x80", 5, &cut);
  assert_int_equal(n, 1);
  assert_int_equal(cut, 4);
  n = node_json_escape(out, 0, "a", 1, &cut);
  assert_int_equal(n, 0);
  assert_int_equal(cut, 1);
}

/* valid_json_inside: @s holds only legal JSON string content that is
 * also well-formed UTF-8 (checked by a decoder independent of the
 * escaper's: it decodes code points and checks their ranges). */
static int valid_json_inside(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x20 || c == '"' || c == 0x7f)
      return 0;
    if (c == '\\') {
      if (i + 1 >= n)
        return 0;
      char e = (char)s[i + 1];
      if (e == 'u') {
        if (i + 6 > n)
          return 0;
        for (int k = 2; k < 6; k++)
          if (!strchr("0123456789abcdef", s[i + (size_t)k]))
            return 0;
        i += 6;
      } else if (strchr("\"\\/bfnrt", e) && e) {
        i += 2;
      } else
        return 0;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len == 0 || i + len > n)
      return 0;
    uint32_t cp = c & (0xff >> (len + 1));
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += len;
  }
  return 1;
}

static void test_random_bytes(void **state) {
  (void)state;
  uint64_t x = 0x9e3779b97f4a7c15ull; /* xorshift64, fixed seed */
  unsigned char in[64];
  char out[64 * 6];
  for (int round = 0; round < 20000; round++) {
    size_t len = (size_t)(round % 64);
    for (size_t i = 0; i < len; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      /* Bias toward the interesting bytes: high ones and controls. */
      in[i] = (unsigned char)(x & 1 ? 0x80 | (x >> 8) : (x >> 8) & 0x7f);
    }
    size_t cut = 1;
    size_t n = node_json_escape(out, sizeof out, (const char *)in, len, &cut);
    assert_int_equal(cut, 0);
    assert_true(valid_json_inside((const unsigned char *)out, n));
    /* And with little room: still whole escapes only. */
    size_t room = (size_t)(x % 40);
    n = node_json_escape(out, room, (const char *)in, len, &cut);
    assert_true(n <= room);
    assert_true(valid_json_inside((const unsigned char *)out, n));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_and_specials),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_cut_whole_escapes),
      cmocka_unit_test(test_random_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
