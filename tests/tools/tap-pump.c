/* tap-pump: attach a test namespace where a VMM would attach.
 *
 *   tap-pump VMNETNS TAP GUESTNETNS IFACE
 *
 * Opens TAP (a persistent tap in VMNETNS, as QEMU or Firecracker would) and
 * an AF_PACKET socket on IFACE in GUESTNETNS, and copies frames both ways
 * until killed.  Both sides carry a virtio-net header (IFF_VNET_HDR on the
 * tap, PACKET_VNET_HDR on the socket), so frames pass through verbatim,
 * offloads included.  Prints "ready" when both ends are open.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <net/if.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int enter(const char *name)
{
	char path[256];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	static char buf[70000];
	struct sockaddr_ll sll = { 0 };
	struct ifreq ifr = { 0 };
	struct pollfd p[2];
	int tap, pkt, on = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: tap-pump VMNETNS TAP GUESTNETNS IFACE\n");
		return 100;
	}
	if (enter(argv[3]) != 0) {
		perror("tap-pump: guest namespace");
		return 111;
	}
	pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (pkt < 0 || setsockopt(pkt, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof(on)) != 0) {
		perror("tap-pump: packet socket");
		return 111;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)if_nametoindex(argv[4]);
	if (!sll.sll_ifindex || bind(pkt, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
		perror("tap-pump: bind");
		return 111;
	}
	if (enter(argv[1]) != 0) {
		perror("tap-pump: VM namespace");
		return 111;
	}
	tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[2]);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (tap < 0 || ioctl(tap, TUNSETIFF, &ifr) != 0) {
		perror("tap-pump: tap");
		return 111;
	}
	puts("ready");
	fflush(stdout);
	p[0] = (struct pollfd){ .fd = tap, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = pkt, .events = POLLIN };
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(p[i].revents & POLLIN))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n > 0 && write(p[1 - i].fd, buf, (size_t)n) < 0)
				continue; /* a dropped frame is what a wire does */
		}
	}
}
