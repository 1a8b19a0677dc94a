/* vmsan-probe: read-only probes of what the host can do, for vmsan doctor.
 *
 * Unprivileged.  Each op answers one question with a real attempt rather
 * than a guess from file names: KVM by creating (and dropping) a VM,
 * nftables by committing a batch inside a throwaway network namespace that
 * dies with the probing child, so nothing is ever left behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "lib/kvmboot.h"
#include "lib/nft.h"

#define PROBE_TABLE "vmsan_probe"

static json_t *op_kvm(struct jr *r, struct verr *e)
{
	const char *dev = getenv("VMSAN_KVM_DEVICE");
	json_t *reply;
	int fd, vm, api;

	(void)e;
	if (jr_end(r))
		return NULL;
	if (!dev || !*dev)
		dev = "/dev/kvm";
	reply = json_pack("{s:s}", "device", dev);
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		json_object_set_new(reply, "present", json_boolean(errno != ENOENT));
		json_object_set_new(reply, "usable", json_false());
		json_object_set_new(reply, "detail", json_sprintf("cannot open %s: %s", dev, strerror(errno)));
		return reply;
	}
	json_object_set_new(reply, "present", json_true());
	api = ioctl(fd, KVM_GET_API_VERSION, 0);
	json_object_set_new(reply, "apiVersion", api >= 0 ? json_integer(api) : json_null());
	if (api != KVM_API_VERSION) {
		json_object_set_new(reply, "usable", json_false());
		json_object_set_new(reply, "detail",
				    json_sprintf("KVM API version %d, expected %d", api, KVM_API_VERSION));
		close(fd);
		return reply;
	}
	vm = ioctl(fd, KVM_CREATE_VM, 0);
	json_object_set_new(reply, "usable", json_boolean(vm >= 0));
	json_object_set_new(reply, "detail",
			    vm >= 0 ? json_string("created and released a test VM")
				    : json_sprintf("KVM_CREATE_VM failed: %s", strerror(errno)));
	if (vm >= 0)
		close(vm);
	close(fd);
	return reply;
}

static json_t *op_tun(struct jr *r, struct verr *e)
{
	int fd;
	json_t *reply;

	(void)e;
	if (jr_end(r))
		return NULL;
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	reply = json_pack("{s:b}", "usable", fd >= 0);
	json_object_set_new(reply, "detail",
			    fd >= 0 ? json_string("/dev/net/tun opens read-write")
				    : json_sprintf("cannot open /dev/net/tun: %s", strerror(errno)));
	if (fd >= 0)
		close(fd);
	return reply;
}

/* Send one batch; wait for its acks.  Returns 0 or an errno value. */
static int nft_send(struct mnl_socket *nl, struct mnl_nlmsg_batch *b)
{
	char buf[32768]; /* MNL_SOCKET_BUFFER_SIZE is not a constant */
	unsigned portid = mnl_socket_get_portid(nl);
	struct timeval tv = { .tv_sec = 5 };
	ssize_t n;
	int rc;

	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
		return errno;
	while ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		rc = mnl_cb_run(buf, (size_t)n, 0, portid, NULL, NULL);
		if (rc < 0)
			return errno ? errno : EPROTO;
		if (rc == MNL_CB_STOP)
			return 0;
	}
	return n < 0 ? errno : EPROTO;
}

/* In the child: a table with a forward chain (policy drop) and an
 * interval+timeout set, then the table's deletion, as one batch — the
 * features vmsan-net relies on. */
static int nft_probe_child(void)
{
	char buf[8192];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, sizeof(buf));
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nftnl_set *s = nftnl_set_alloc();
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL);
	int rc;

	nftnl_table_set_str(t, NFTNL_TABLE_NAME, PROBE_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, PROBE_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, "forward");
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_FORWARD);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_DROP);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, PROBE_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, "allow");
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 4);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, 7); /* ipv4_addr */
	nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL | NFT_SET_TIMEOUT);

	nftnl_batch_begin(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);
	nlh = nftnl_table_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE,
					  seq++);
	nftnl_table_nlmsg_build_payload(nlh, t);
	mnl_nlmsg_batch_next(b);
	nlh = nftnl_chain_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE,
					  seq++);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	mnl_nlmsg_batch_next(b);
	nlh = nftnl_set_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE, seq++);
	nftnl_set_nlmsg_build_payload(nlh, s);
	mnl_nlmsg_batch_next(b);
	nlh = nftnl_table_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_DELTABLE, NFPROTO_INET, NLM_F_ACK, seq++);
	nftnl_table_nlmsg_build_payload(nlh, t);
	mnl_nlmsg_batch_next(b);
	nftnl_batch_end(mnl_nlmsg_batch_current(b), seq++);
	mnl_nlmsg_batch_next(b);

	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		rc = errno;
	else
		rc = nft_send(nl, b);
	if (nl)
		mnl_socket_close(nl);
	nftnl_set_free(s);
	nftnl_chain_free(c);
	nftnl_table_free(t);
	mnl_nlmsg_batch_stop(b);
	return rc;
}

static json_t *op_nftables(struct jr *r, struct verr *e)
{
	int pipefd[2], status, err = 0, how = 0;
	pid_t pid;
	static const char *const hows[] = { "a new network namespace", "a new user and network namespace" };

	if (jr_end(r))
		return NULL;
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		verr_sys(e, "ERR_SYS", NULL, "pipe");
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		verr_sys(e, "ERR_SYS", NULL, "fork");
		return NULL;
	}
	if (pid == 0) {
		int res[2] = { 0, 0 };

		close(pipefd[0]);
		if (unshare(CLONE_NEWNET) != 0) {
			res[1] = 1;
			if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
				res[0] = -errno;
		}
		if (res[0] == 0)
			res[0] = nft_probe_child();
		if (write(pipefd[1], res, sizeof(res)) != (ssize_t)sizeof(res))
			_exit(2);
		_exit(0);
	}
	close(pipefd[1]);
	{
		int res[2];
		ssize_t n = read(pipefd[0], res, sizeof(res));

		if (n == (ssize_t)sizeof(res)) {
			err = res[0];
			how = res[1];
		} else {
			err = EPROTO;
		}
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err < 0)
		return json_pack("{s:b, s:s++}", "usable", 0, "detail",
				 "cannot create a throwaway network namespace: ", strerror(-err),
				 " (run as root, or enable user namespaces)");
	if (err > 0)
		return json_pack("{s:b, s:s++, s:s}", "usable", 0, "detail",
				 "nftables batch failed in a throwaway namespace: ", strerror(err), "", "namespace",
				 hows[how]);
	return json_pack("{s:b, s:s, s:s}", "usable", 1, "detail",
			 "committed a table with a forward chain and an interval+timeout set, then deleted it",
			 "namespace", hows[how]);
}

struct chain_dump {
	json_t *drops;
	int seen;
};

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct chain_dump *d = data;
	struct nftnl_chain *c = nftnl_chain_alloc();

	if (c && nftnl_chain_nlmsg_parse(nlh, c) == 0) {
		d->seen++;
		if (nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) &&
		    nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) == NF_INET_FORWARD &&
		    nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY) &&
		    nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_DROP) {
			uint32_t fam = nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY);

			if (fam == NFPROTO_IPV4 || fam == NFPROTO_INET)
				json_array_append_new(d->drops,
						      json_sprintf("%s %s %s", fam == NFPROTO_INET ? "inet" : "ip",
								   nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE),
								   nftnl_chain_get_str(c, NFTNL_CHAIN_NAME)));
		}
	}
	nftnl_chain_free(c);
	return MNL_CB_OK;
}

/* Base chains at the forward hook with policy drop (Docker's iptables-nft
 * FORWARD, a distribution firewall): they would drop VM traffic that our
 * own rules accept, because a drop in any base chain is final. */
static json_t *op_forward_policy(struct jr *r, struct verr *e)
{
	char buf[32768]; /* MNL_SOCKET_BUFFER_SIZE is not a constant */
	struct chain_dump d = { 0 };
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	unsigned portid;
	ssize_t n;
	int rc = 0;

	if (jr_end(r))
		return NULL;
	nl = nft_socket(e);
	if (!nl)
		return NULL;
	portid = mnl_socket_get_portid(nl);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_UNSPEC, NLM_F_DUMP, 1);
	d.drops = json_array();
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		rc = -1;
	while (rc == 0 && (n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		rc = mnl_cb_run(buf, (size_t)n, 1, portid, chain_cb, &d);
		if (rc <= 0)
			break;
		rc = 0;
	}
	mnl_socket_close(nl);
	if (rc < 0) {
		json_decref(d.drops);
		if (errno == EPERM)
			return json_pack("{s:b, s:s}", "checked", 0, "detail",
					 "listing the host's nftables chains needs root");
		verr_sys(e, "ERR_NETLINK", NULL, "cannot list nftables chains");
		return NULL;
	}
	return json_pack("{s:b, s:i, s:o}", "checked", 1, "chains", d.seen, "dropChains", d.drops);
}

/* kvm, or tcg: the same boot under TCG, to check the check itself */
static int valid_accel(const char *s, char *why, size_t n)
{
	if (strcmp(s, "kvm") && strcmp(s, "tcg"))
		return snprintf(why, n, "accel must be kvm or tcg, not '%.20s'", s), -1;
	return 0;
}

/* Whether a kernel boots under KVM (lib/kvmboot.h): the probe doctor
 * trusts before it promises KVM.  Run as the caller, who must be able to
 * open the device; as root, QEMU runs as nobody with /dev/kvm's group,
 * as a VMM would (a VMM never runs as root). */
static json_t *op_kvm_boot(struct jr *r, struct verr *e)
{
	const char *kernel = jr_string(r, "kernel", JR_REQUIRED, valid_abspath);
	const char *qemu = jr_string(r, "qemu", JR_REQUIRED, valid_abspath);
	const char *cache = jr_string(r, "cacheDir", JR_OPTIONAL, valid_abspath);
	const char *accel = jr_string(r, "accel", JR_OPTIONAL, valid_accel);
	struct kvm_boot_as as = { -1, -1, -1, accel };
	struct kvm_boot b;
	struct stat st;
	int k, dir = -1, rc;

	if (jr_end(r))
		return NULL;
	if (geteuid() == 0) {
		as = (struct kvm_boot_as){ KVM_CHECK_UID, KVM_CHECK_GID, -1, accel };
		if (stat("/dev/kvm", &st) == 0 && (st.st_mode & 060) == 060 && st.st_gid != 0)
			as.kvm_gid = st.st_gid;
	}
	k = open(kernel, O_RDONLY | O_CLOEXEC);
	if (k < 0) {
		verr_sys(e, "ERR_KERNEL", "give the guest kernel vmsan create uses", "cannot open %s", kernel);
		return NULL;
	}
	if (cache && (mkdir(cache, 0700) == 0 || errno == EEXIST))
		dir = open(cache, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	rc = kvm_boot_check(qemu, k, &as, dir, &b);
	close(k);
	if (dir >= 0)
		close(dir);
	if (rc < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_KVM_BOOT", NULL, "%s", b.detail);
		return NULL;
	}
	return json_pack("{s:b, s:b, s:f, s:s}", "boots", b.boots, "cached", b.cached, "ms", b.ms, "detail", b.detail);
}

static const struct helper_op ops[] = {
	{ "kvm", op_kvm },
	{ "kvm-boot", op_kvm_boot },
	{ "tun", op_tun },
	{ "nftables", op_nftables },
	{ "forward-policy", op_forward_policy },
};

static const struct helper helper = {
	.name = "vmsan-probe",
	.summary = "plumbing: probe KVM, TUN and nftables for real (used by doctor)",
	.usage = "usage: vmsan-probe OP [--verbose]\n"
		 "\n"
		 "Read-only probes of the host, each a real attempt:\n"
		 "  kvm             open the KVM device, check the API, create and drop a VM\n"
		 "  kvm-boot        boot a guest kernel under KVM to its first panic (cached):\n"
		 "                  {\"op\":\"kvm-boot\", \"kernel\":PATH, \"qemu\":PATH, \"cacheDir\":PATH,\n"
		 "                   \"accel\":\"kvm\"|\"tcg\"}  (tcg: the same boot, to check the check)\n"
		 "  tun             open /dev/net/tun read-write\n"
		 "  nftables        commit a table, chain and set in a throwaway network\n"
		 "                  namespace (a user namespace when not root)\n"
		 "  forward-policy  list forward-hook chains with policy drop (needs root)\n"
		 "\n"
		 "Exit status: 0 ok, 1 refused or failed, 100 bad request, 111 system error.\n"
		 "See vmsan-probe(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	return helper_main(&helper, argc, argv);
}
