/* tap-attach: can this uid's VMM attach to that TAP?  As vmsan-fc does it:
 * /dev/net/tun opened as root, then down to UID (gid too, no groups),
 * then TUNSETIFF.  Prints "attached" or the error; exit 0 or 1.
 *
 *   tap-attach UID TAP      (run in the TAP's network namespace) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: tap-attach UID TAP\n");
		return 100;
	}
	uid_t uid = (uid_t)strtoul(argv[1], NULL, 10);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0 || setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) {
		perror("tap-attach");
		return 1;
	}
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[2]);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		printf("%s\n", strerror(errno));
		return 1;
	}
	printf("attached\n");
	return 0;
}
