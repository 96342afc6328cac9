/*
 * runas USER COMMAND [ARG]...: drop from root to USER (its uid, gid and only its
 * group) and exec COMMAND, as the postgres image's entrypoint does with gosu.
 * Static, like portd: the stand-in images have no libc of their own.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: runas USER COMMAND [ARG]...\n");
        return 2;
    }
    struct passwd *user = getpwnam(argv[1]);
    if (user == NULL) {
        fprintf(stderr, "runas: no user %s\n", argv[1]);
        return 2;
    }
    if (setgroups(1, &user->pw_gid) != 0 || setgid(user->pw_gid) != 0 || setuid(user->pw_uid) != 0) {
        perror("runas");
        return 1;
    }
    execvp(argv[2], argv + 2);
    perror("runas: exec");
    return 127;
}
