/*
 * http-get -- the smallest HTTP/1.0 client, for tests/check-http-server.sh.
 *
 *   http-get PORT PATH BODYFILE
 *   http-get PORT PATH --hang-up
 *
 * Connects to 127.0.0.1:PORT (and nowhere else), sends "GET PATH", reads
 * the reply to the end, writes its body to BODYFILE and prints its status
 * code on stdout.  Exit status 0 when a reply came, 1 when none did.
 * With --hang-up it closes the connection right after the request: a
 * client that goes away before its answer.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int fail(const char *what)
{
    fprintf(stderr, "http-get: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: http-get PORT PATH BODYFILE\n");
        return 2;
    }
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_port = htons((unsigned short)atoi(argv[1])) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("socket");
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
        return fail("connect");

    char *req = NULL;
    size_t reqlen = 0;
    FILE *m = open_memstream(&req, &reqlen);
    if (!m)
        return fail("open_memstream");
    fprintf(m, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    fclose(m);
    for (size_t off = 0; off < reqlen;) {
        ssize_t n = write(fd, req + off, reqlen - off);
        if (n < 0 && errno != EINTR)
            return fail("write");
        off += n > 0 ? (size_t)n : 0;
    }
    free(req);
    if (strcmp(argv[3], "--hang-up") == 0)
        return close(fd) == 0 ? 0 : fail("close");

    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return fail("malloc");
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("read");
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);

    char *end = NULL;
    for (size_t i = 0; i + 4 <= len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    int status = 0;
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "http-get: no reply (%zu bytes)\n", len);
        return 1;
    }
    FILE *out = fopen(argv[3], "wb");
    if (!out || fwrite(end, 1, (size_t)(buf + len - end), out) != (size_t)(buf + len - end) ||
        fclose(out) != 0)
        return fail(argv[3]);
    free(buf);
    printf("%d\n", status);
    return 0;
}
