/* VM ids as root knows them: each claimed by one uid, across both root
 * helpers, in /run/vmsan/ids/<id> (root's alone).  The first root
 * operation on an id claims it for its caller; every later one checks
 * the caller is that owner (root passes); vmsan-fc's cleanup (vmsan rm)
 * releases it.  So no user can act on, or squat, another user's id, and
 * the claims counted per uid are that user's VMs, for the per-user
 * limit. */
#ifndef VMSAN_CLAIM_H
#define VMSAN_CLAIM_H

#include <stdbool.h>

#include "caller.h"
#include "vmhome.h"

#define CLAIM_DIR "/run/vmsan/ids"

/* Claims id for who, or checks it is theirs already: ERR_ID_TAKEN for
 * another uid's, ERR_VM_LIMIT when who has max_per_user ids (root: no
 * limit).  0, or -1 with e set. */
int claim_take(const char *id, const struct caller *who, long max_per_user, const struct vmhome *home, struct verr *e);
/* The VM's home a new claim noted (home may be NULL: none), as its second
 * line, so that a stopped VM's claim, which no other record of root's
 * accounts for, can be told an orphan once its directory is gone (path
 * "" when none was noted). */
void claim_home(const char *id, struct vmhome *h);
/* 0 when claim_take could give id to who (unclaimed, or theirs), else -1
 * with the ERR_ID_TAKEN it would say: asked before anything of the
 * caller's is looked at. */
int claim_available(const char *id, const struct caller *who, struct verr *e);
/* 1: who owns id (root owns all); 0: no claim; -1: another uid's
 * (ERR_NOT_OWNER set). */
int claim_check(const char *id, const struct caller *who, struct verr *e);
/* The owner's uid, or -1 when unclaimed. */
long claim_owner(const char *id);
void claim_release(const char *id);
/* Whether either root helper still has a record of id (vmsan-fc's VMM
 * record, vmsan-net's network record): an orphan's claim goes with the
 * last of them. */
bool claim_in_use(const char *id);

#endif
