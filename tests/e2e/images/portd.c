/*
 * portd: the network half of every stand-in image used by the end-to-end tests.
 *
 * The busybox nc shipped by Debian's busybox-static has no UDP mode, and the
 * stand-ins must receive RTP (UDP) the way Asterisk would, so this small static
 * program does the listening:
 *
 *   portd [--banner TEXT] [--record FILE] tcp:PORT|udp:PORT ...
 *
 * TCP: every connection gets TEXT and a newline, then is closed, so health
 * checks such as `echo status | nc host 4730 | grep -q .` see an answer.
 * UDP: every datagram is appended to FILE (and printed) as
 * "udp PORT from ADDR:PORT LEN bytes: PAYLOAD", so a test can prove that a
 * packet sent to a published host port reached the container.
 * SIGTERM/SIGINT end it at once: as PID 1 the default action would be ignored
 * and every `docker stop` would wait for the 10 s kill timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SOCKETS 64

static void stop(int signal_number) {
    (void)signal_number;
    _exit(0);
}

static int open_socket(const char *spec, int *is_tcp, int *port) {
    int tcp;
    if (strncmp(spec, "tcp:", 4) == 0) {
        tcp = 1;
    } else if (strncmp(spec, "udp:", 4) == 0) {
        tcp = 0;
    } else {
        fprintf(stderr, "portd: expected tcp:PORT or udp:PORT, got %s\n", spec);
        exit(2);
    }
    int number = atoi(spec + 4);
    if (number < 1 || number > 65535) {
        fprintf(stderr, "portd: bad port in %s\n", spec);
        exit(2);
    }
    int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("portd: socket");
        exit(1);
    }
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    address.sin_port = htons((unsigned short)number);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        fprintf(stderr, "portd: bind %s: %s\n", spec, strerror(errno));
        exit(1);
    }
    if (tcp && listen(fd, 64) < 0) {
        perror("portd: listen");
        exit(1);
    }
    *is_tcp = tcp;
    *port = number;
    printf("portd: listening on %s\n", spec);
    return fd;
}

static void record_datagram(int fd, int port, const char *record_path) {
    char payload[2048];
    struct sockaddr_in sender;
    socklen_t sender_length = sizeof sender;
    ssize_t length = recvfrom(fd, payload, sizeof payload - 1, 0, (struct sockaddr *)&sender, &sender_length);
    if (length < 0) {
        return;
    }
    for (ssize_t i = 0; i < length; i++) {
        if (payload[i] < 32 || payload[i] > 126) {
            payload[i] = '.';
        }
    }
    payload[length] = '\0';
    char line[2300];
    snprintf(line, sizeof line, "udp %d from %s:%d %zd bytes: %s\n", port, inet_ntoa(sender.sin_addr),
             ntohs(sender.sin_port), length, payload);
    fputs(line, stdout);
    if (record_path != NULL) {
        FILE *record = fopen(record_path, "a");
        if (record != NULL) {
            fputs(line, record);
            fclose(record);
        }
    }
}

int main(int argc, char **argv) {
    const char *banner = "OK";
    const char *record_path = NULL;
    struct pollfd sockets[MAX_SOCKETS];
    int is_tcp[MAX_SOCKETS];
    int ports[MAX_SOCKETS];
    int count = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--banner") == 0 && i + 1 < argc) {
            banner = argv[++i];
        } else if (strcmp(argv[i], "--record") == 0 && i + 1 < argc) {
            record_path = argv[++i];
        } else if (count < MAX_SOCKETS) {
            sockets[count].fd = open_socket(argv[i], &is_tcp[count], &ports[count]);
            sockets[count].events = POLLIN;
            count++;
        }
    }
    if (count == 0) {
        fprintf(stderr, "usage: portd [--banner TEXT] [--record FILE] tcp:PORT|udp:PORT ...\n");
        return 2;
    }
    for (;;) {
        if (poll(sockets, (nfds_t)count, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("portd: poll");
            return 1;
        }
        for (int i = 0; i < count; i++) {
            if (!(sockets[i].revents & POLLIN)) {
                continue;
            }
            if (is_tcp[i]) {
                int client = accept(sockets[i].fd, NULL, NULL);
                if (client >= 0) {
                    dprintf(client, "%s\n", banner);
                    close(client);
                }
            } else {
                record_datagram(sockets[i].fd, ports[i], record_path);
            }
        }
    }
}
