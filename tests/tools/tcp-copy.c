/* tcp-copy: raw TCP file transfer with 256 KiB buffers, the reference
 * bench/transfer.sh holds vmsan upload and download against (busybox's
 * nc in the guest moves 4 KiB at a time).  Static, so that it runs in a
 * guest too.
 *   tcp-copy recv-listen PORT FILE   accept one connection, write what it
 *                                    sends into FILE, close
 *   tcp-copy send-listen PORT FILE   accept one connection, send FILE, close
 *   tcp-copy send HOST PORT FILE     connect, send FILE, shut down the
 *                                    sending side, wait for the peer to close
 *                                    (it has written the last byte then)
 *   tcp-copy recv HOST PORT FILE     connect, write what comes into FILE
 * Exit 0 on success, 1 with a message on stderr otherwise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (256 * 1024)

static char buf[BUF];

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "tcp-copy: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int listen_one(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)) };
	int one = 1, ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0)
		die("bind/listen");
	int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		die("accept");
	close(ls);
	return fd;
}

static int connect_to(const char *host, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		die("socket or address");
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect");
	return fd;
}

static void copy(int from, int to, const char *what)
{
	for (;;) {
		ssize_t n = read(from, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(what);
		if (n == 0)
			return;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(to, buf + off, (size_t)(n - off));
			if (w < 0 && errno != EINTR)
				die(what);
			if (w > 0)
				off += w;
		}
	}
}

int main(int argc, char **argv)
{
	int sock, fd;

	if (argc == 4 && (!strcmp(argv[1], "recv-listen") || !strcmp(argv[1], "send-listen"))) {
		bool recv_side = argv[1][0] == 'r';
		fd = recv_side ? open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
			       : open(argv[3], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die(argv[3]);
		sock = listen_one(argv[2]);
		if (recv_side)
			copy(sock, fd, "receiving");
		else
			copy(fd, sock, "sending");
	} else if (argc == 5 && (!strcmp(argv[1], "send") || !strcmp(argv[1], "recv"))) {
		bool send_side = argv[1][0] == 's';
		fd = send_side ? open(argv[4], O_RDONLY | O_CLOEXEC)
			       : open(argv[4], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die(argv[4]);
		sock = connect_to(argv[2], argv[3]);
		if (send_side) {
			copy(fd, sock, "sending");
			shutdown(sock, SHUT_WR);
			/* the peer closes once it has written the last byte */
			while (read(sock, buf, sizeof buf) > 0)
				;
		} else {
			copy(sock, fd, "receiving");
		}
	} else {
		fprintf(stderr, "usage: tcp-copy recv-listen|send-listen PORT FILE | send|recv HOST PORT FILE\n");
		return 1;
	}
	if (close(fd) < 0)
		die("close");
	close(sock);
	return 0;
}
