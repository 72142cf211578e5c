/*
 * check.c - runs each test function in a forked child with an alarm and
 * reports pass/fail per test; see check.h.
 */
#include "check.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int check_run(const struct check_test *tests, size_t count, unsigned timeout_seconds,
              int argc, char **argv)
{
    int failures = 0;
    size_t ran = 0;
    for (size_t i = 0; i < count; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        ran++;
        fflush(stdout);
        fflush(stderr);
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
        if (child == 0) {
            alarm(timeout_seconds);
            tests[i].function();
            fflush(stdout);
            exit(0); /* not _exit: LeakSanitizer checks at exit */
        }
        int status = 0;
        while (waitpid(child, &status, 0) < 0)
            ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("ok   %s\n", tests[i].name);
        } else {
            failures++;
            if (WIFSIGNALED(status))
                printf("FAIL %s (signal %d%s)\n", tests[i].name, WTERMSIG(status),
                       WTERMSIG(status) == SIGALRM ? ": timed out" : "");
            else
                printf("FAIL %s (exit %d)\n", tests[i].name, WEXITSTATUS(status));
        }
    }
    if (argc > 1 && ran == 0) {
        printf("no test named %s\n", argv[1]);
        return 1;
    }
    printf("%zu tests, %d failed\n", ran, failures);
    return failures ? 1 : 0;
}
