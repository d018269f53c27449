/* meta_int.h: what meta_state.c, meta_users.c and meta_keys.c share. */
#ifndef CHORUS_META_INT_H
#define CHORUS_META_INT_H

#include "meta.h"

/* meta__apply_user: a USER_* command on @s (meta_state_apply's part). */
int meta__apply_user(struct meta_state *s, const struct meta_cmd *c);
/* meta__drop_grants: every grant on keyspace @ks_id goes (it was
 * dropped: its id is never given again). */
void meta__drop_grants(struct meta_state *s, uint32_t ks_id);

/* meta__apply_key: a KEY_* command on @s (meta_keys.c). */
int meta__apply_key(struct meta_state *s, const struct meta_cmd *c);

#endif
