/* chorusd.c: the chorus node daemon's entry point (node.h). */
#include <stdio.h>

#include "node.h"

int main(int argc, char **argv) {
  struct node_config cfg;
  bool exit_now = false;
  char err[CHORUS_ERRMSG_SIZE] = "";
  if (node_config_parse(argc, argv, &cfg, &exit_now, err) != CHORUS_OK) {
    fprintf(stderr, "chorusd: %s\n", err);
    return 1;
  }
  if (exit_now)
    return 0;
  node_log_set_level(cfg.log_level);
  node_log_set_format(cfg.log_format, cfg.name);
  struct node *n = NULL;
  /* Startup errors are one line on stderr and exit status 1. */
  if (node_open(&cfg, &n, err) != CHORUS_OK) {
    node_log(NODE_LOG_ERROR, "node", "%s", err);
    node_free(n);
    return 1;
  }
  int status = node_run(n);
  node_free(n);
  return status;
}
