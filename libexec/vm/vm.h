/* vmsan create | start | stop | rm | run | gc | network | snapshot |
 * pause | resume: a VM's life cycle, one binary (vmsan-create) run under
 * each command's name.  A small core over one file a command family:
 *
 *   main.c       the command table: argv[0]'s name to its function
 *   util.c       the globals every file shares, say(), report(), ...
 *   options.c    option values: durations, lists, ports, the config file
 *   call.c       running a helper: start it, feed it its request, read
 *                its reply (one line), reap it at exit
 *   agent.c      the little HTTP the host speaks to the guest agent
 *   steps.c      the shared VM steps: the record stored, the network up,
 *                the VMM up, a VM taken down or removed, stopped
 *   create.c     create (its options, then its steps, in order)
 *   template.c   create's automatic templates: the key of what the guest
 *                sees at boot, a template found (restored as a snapshot)
 *                or made from a VM just booted; vmsan template list|rm,
 *                and what gc removes of them
 *   lifecycle.c  start, stop, rm
 *   snapshot.c   snapshot create|list|delete, and create --snapshot's disk
 *   network.c    a running VM's egress policy, changed live
 *   gc.c         what interrupted or crashed operations left
 *   run.c        create, one command, (--rm) remove
 *   pause.c      pause, resume
 *
 * Porcelain, in C for the reason vmsan-list is: jq costs ~22 ms per call
 * on our machines and create has a 30 ms control-plane budget.  Two steps
 * run in-process, from libvmsan, what a helper would do (a process start
 * less each): the record (lib/state.c, what vmsan-state runs) and the
 * policy's compiler (lib/policy.c, what vmsan-nftables runs).  The rest
 * goes to helpers through their JSON contracts:
 *
 *   vmsan-rootfs    pull: the image's read-only disk; vmdisk: the VM's own
 *                   writable disk and agent token
 *   vmsan-net       (root) netns, veth, TAP, rules, published ports
 *   vmsan-fc        (root) the VMM
 *
 * and it talks to the guest agent itself only to wait for /health, to ask
 * for a clean /shutdown and to hand a restored guest its new token.  The
 * two root helpers run through `sudo -n` unless we are root already.
 * Every step of create is undone, in reverse, when a later one fails or
 * create is interrupted (SIGINT, SIGTERM, SIGHUP); a create killed with
 * SIGKILL leaves a record in "creating" whose process is gone, which
 * `vmsan gc` removes with everything it names.  Operations on one VM hold
 * its lock (vms/<id>.lock), so they are serialized.
 */
#ifndef VMSAN_VM_H
#define VMSAN_VM_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/netplan.h"
#include "lib/policy.h"
#include "lib/vmsan.h"

#define AGENT_PORT 9119
#define BOOT_TIMEOUT_S 120

/* util.c: what every file shares */
extern bool json_mode, verbose;
extern const char *cmd; /* the command's name: "create", ... */
extern char libexec[];	/* where the helpers are */
extern volatile sig_atomic_t interrupted;
double now_ms(void);
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pause_at(const char *step);
const char *jstr(json_t *o, const char *k);
long long jint(json_t *o, const char *k, long long dflt);
int report(const struct verr *e);
/* Whether a ".NAME.PID<suffix>" work directory (a snapshot's or template's
 * being made) is unfinished and its maker gone: gc's to remove. */
bool tmp_abandoned(const char *name, const char *suffix);
/* {ok, deleted} with --json, else "<what> deleted: ID" a line. */
void report_deleted(json_t *gone, const char *what);
#define usage_error(...) report_usage(cmd, json_mode, __VA_ARGS__)
void on_signal(int sig);

/* options.c */
/* A command's words as every command that takes VM ids reads them:
 * options and operands in any order, "--" ends the options, an option's
 * value is the next word or follows '=' (--grace=5).  valued: the options
 * that take one, NULL-terminated. */
struct args {
	int argc, i;
	char **argv;
	const char *const *valued;
	bool ended;
	char name[48];
};
#define ARGS_INIT(ac, av, v)                                      \
	{                                                         \
		.argc = (ac), .argv = (av), .i = 1, .valued = (v) \
	}
/* 1: the next word, an option (*opt, its value in *val or NULL) or an
 * operand (*opt NULL, the word in *val); 0: no more; -1: an option's value
 * missing, the usage error reported. */
int args_next(struct args *a, const char **opt, const char **val);
/* The words of a command with subcommands (snapshot, template): the
 * first operand is the subcommand (*sub, NULL if none), the others go
 * into operands (strings); --json, and the command's flags (flags: each
 * sets *set to value; a NULL name ends them), anywhere.  0, or the exit
 * status of the usage error reported. */
struct sub_flag {
	const char *name;
	bool *set, value;
};
int sub_args(int argc, char **argv, const struct sub_flag *flags, const char **sub, json_t *operands);
/* Whether sub is name or its alias (NULL: none). */
bool sub_is(const char *sub, const char *name, const char *alias);
int parse_duration(const char *s, long long *out);
void csv_append(json_t *arr, const char *s);
int normalize_domains(json_t *list, struct verr *e);
int strict_needs_domains(bool strict, json_t *domains, struct verr *e);
int num_opt(const char *name, const char *v, long long lo, long long hi, long long *out, struct verr *e);
int resolve_dns(const struct state *st, json_t *dns, struct verr *e);
int set_dns_ttls(const struct state *st, json_t *nw, struct verr *e);
int config_get(const struct state *st, const char *key, char *out, size_t n, bool *found, struct verr *e);

/* call.c: a helper started, its reply not read yet */
struct pending {
	pid_t pid;
	int out; /* its stdout; -1: nothing pending */
	const char *helper, *op;
	bool root;
};
void call_init(void);
int call_start(const char *helper, const char *op, json_t *req, bool root, struct pending *pd, struct verr *e);
json_t *call_finish(struct pending *pd, struct verr *e);
json_t *call(const char *helper, const char *op, json_t *req, bool root, struct verr *e);
void call_quiet(const char *helper, const char *op, json_t *req, bool root);

/* agent.c */
int agent_http_body(const char *addr, int port, const char *method, const char *path, const char *token,
		    const char *body, int connect_ms, int timeout_ms);
int agent_http(const char *addr, int port, const char *method, const char *path, const char *token, int connect_ms,
	       int timeout_ms);
int wait_agent(const char *addr, int port, long long pid, long long start, double timeout_s, const char *console,
	       struct verr *e);
int read_token(const struct state *st, const char *id, char *tok, size_t n);

/* steps.c: the network and the VMM, shared by create and start */
struct boot {
	double t_policy, t_net, t_vmm, t_vmm_init, t_boot;
	const char *incoming; /* a snapshot's directory to restore from */
	const char *accel;    /* the VMM's accelerator, if not the record's */
	json_t *net;	      /* vmsan-net setup's reply */
	json_t *vmm;	      /* vmsan-fc start's reply */
};
int store(struct state *st, const char *id, json_t *rec, json_t **merged, struct verr *e);
void kill_vmm(const char *id);
void kill_timer(json_t *rec);
void take_down(const char *id, json_t *rec);
void remove_all(struct state *st, const char *id, json_t *rec);
json_t *rules_request(const char *id, const char *dir, json_t *nw, struct verr *e);
int net_up(const char *id, json_t *rec, struct boot *b, struct verr *e);
int vmm_up(struct state *st, const char *id, json_t *rec, struct boot *b, struct verr *e);
int boot_vm(struct state *st, const char *id, json_t *rec, struct boot *b, struct verr *e);
int arm_timer(struct state *st, const char *id, long long seconds, struct verr *e);
json_t *open_vm(struct state *st, const char *id, int *lock, struct verr *e);
json_t *open_running_vm(struct state *st, const char *id, int *lock, struct verr *e);
json_t *vmm_ref(const char *id);
int stop_vm(struct state *st, const char *id, json_t *rec, long long grace, struct verr *e);

/* snapshot.c: what create --snapshot needs, and templates share */
int snapshots_dir(const struct state *st, bool create, struct verr *e);
json_t *load_snapshot(int sfd, const char *sid, struct verr *e);
long long du_at(int dfd, const char *name);
/* A running VM saved into dir (its path; empty, the caller's), resumed
 * after when resume: vmsan-fc snapshot's reply. */
json_t *save_vm(const char *id, json_t *rec, const char *path, bool resume, struct verr *e);
/* A snapshot's record for the VM rec as saved (sizes: save_vm's reply). */
json_t *snapshot_meta(json_t *rec, const char *sid, const char *when, json_t *sizes);
/* snapshot.json (meta) and token (tok) written and synced into tmp, a
 * directory in dirfd. */
int snapshot_files(int dirfd, const char *tmp, json_t *meta, const char *tok, struct verr *e);
json_t *restore_disk(struct state *st, const char *id, json_t *snap, const char *snapdir, struct verr *e);
int restore_token(struct state *st, const char *id, const char *snapdir, const char *agent_addr, struct verr *e);

/* create.c and template.c: what create holds from step to step */
struct create_opts {
	const char *runtime, *image, *disk, *policy, *vmm, *accel, *kernel, *project, *snapshot;
	long long vcpus, mem, bandwidth, timeout;
	bool pull, no_netns, policy_given, sized, strict, cold;
	json_t *allowed, *denied, *domains, *dns, *ports;
};
struct tmpl {
	bool on;				/* this create may restore or make a template */
	bool restoring;				/* the VM comes from templates/<key> */
	bool retried;				/* a template's restore failed: booting cold */
	const char *start;			/* "cold", "template", "cold+template-made" */
	char key[40];				/* "": no key (templates off, or not computed) */
	char off[200];				/* why templates are off for this create */
	char error[1200];			/* why a template was not used or not made */
	char note[200];				/* anything else said of it */
	char text[5 * (PATH_MAX + 100) + 1024]; /* the key's inputs, one a line */
	unsigned long long disk;		/* the VM disk's size, bytes */
};
struct create {
	struct create_opts o;
	struct state st;
	struct boot b;
	char kernel[PATH_MAX], id[80], snapdir[PATH_MAX];
	json_t *rec; /* the VM's record, as last stored */
	json_t *timing;
	json_t *snap;	  /* --snapshot or a template: its record */
	int lock, snapfd; /* the VM's lock; the snapshot's, shared */
	bool made;	  /* the record exists: undoing removes all it names */
	struct tmpl t;
};

/* template.c */
#define TEMPLATES_MAX_DEFAULT 8
/* Whether this create may use or make a template (VMSAN_TEMPLATES, the
 * config's templates, --cold, and what has none), why not in c->t.off. */
int tmpl_init(struct create *c, struct verr *e);
/* The key of what the guest will see (img: vmsan-rootfs pull's reply);
 * 1 with a valid template held (c->snap, c->snapdir, c->snapfd), 0 with
 * none (a bad one removed), -1 with e set. */
int tmpl_find(struct create *c, json_t *img, struct verr *e);
/* The VM just booted, saved as the key's template; never fails create. */
void tmpl_make(struct create *c);
/* A template whose restore failed: removed, so that no create uses it. */
void tmpl_drop(struct create *c, const struct verr *why);
void tmpl_report(struct create *c, json_t *doc);
void gc_templates(struct state *st, bool dry, json_t *found);

/* the commands (main.c's table); create's and rm's also for run */
extern const char create_usage[], start_usage[], stop_usage[], rm_usage[], run_usage[], gc_usage[], network_usage[],
	snapshot_usage[], pause_usage[], template_usage[];
int do_create(int argc, char **argv, int i, json_t **rec_out, char *id_out);
/* Whether a is one of create's options that take no value (--cold, ...). */
bool create_flag(const char *a);
int do_rm(const char *id, bool force, json_t *removed);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_network(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_template(int argc, char **argv);

/* lifecycle.c: ID... with the few flags start, stop, rm and gc take */
struct id_args {
	bool force, dry;
	long long grace;
	json_t *ids;
};
int parse_id_args(int argc, char **argv, struct id_args *a);

#endif
