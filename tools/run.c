/*
 * run.c - `usock run`: an unmodified program on a running usock stack.
 *
 * Theory of operation: `usock run [--name NAME] -- PROGRAM [ARGS...]`
 * checks that stack NAME serves its sockets API ($USOCK_RUNDIR/NAME.api),
 * finds the preload library (libusock_preload.so beside the usock binary,
 * or the file $USOCK_PRELOAD names), puts it first in LD_PRELOAD, sets
 * USOCK_NAME for it, and execs PROGRAM in its own place, so the program
 * keeps usock run's process id (the pid `usock ss -p` shows).  The library
 * (preload/) then puts the program's AF_INET sockets on the stack and
 * leaves every other descriptor to the kernel.
 *
 * Works for dynamically linked programs only: a static one, or one that
 * makes system calls itself (Go), never sees the library.
 *
 * Exit status: the program's own; 1 when there is no such stack or no
 * library, 2 for bad arguments, 127 when PROGRAM cannot be run.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define PRELOAD_LIBRARY_NAME "libusock_preload.so"

static const char run_usage[] =
    "usage: usock run [--name NAME] [--] PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM (dynamically linked, unmodified) with its IPv4 sockets on the\n"
    "running stack NAME (`usock up --name NAME`); files, pipes, Unix and IPv6\n"
    "sockets stay with the kernel.\n"
    "\n"
    "  --name NAME   the stack (default: usock)\n"
    "\n"
    "environment: USOCK_PRELOAD names the preload library (default:\n"
    PRELOAD_LIBRARY_NAME " beside the usock binary); USOCK_RUNDIR as for up.\n";

/* Writes the preload library's path into path: $USOCK_PRELOAD, or the
 * library beside /proc/self/exe.  Returns 0, or -1 after printing why. */
static int preload_library_find(char *path, size_t size)
{
    const char *given = getenv("USOCK_PRELOAD");
    if (given && *given) {
        if ((size_t)snprintf(path, size, "%s", given) >= size) {
            cli_error("run: USOCK_PRELOAD is too long");
            return -1;
        }
    } else {
        char self[PATH_MAX];
        ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (length < 0) {
            cli_error("run: cannot find the usock binary: %s", strerror(errno));
            return -1;
        }
        self[length] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        if ((size_t)snprintf(path, size, "%s/%s", self, PRELOAD_LIBRARY_NAME) >= size) {
            cli_error("run: the preload library's path is too long");
            return -1;
        }
    }
    if (access(path, R_OK) != 0) {
        cli_error("run: no preload library at %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    const char *name = CLI_NAME_DEFAULT;
    int index = 1;
    for (; index < argc; index++) {
        const char *arg = argv[index];
        if (cli_is_help(arg)) {
            fputs(run_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(arg, "--") == 0) {
            index++;
            break;
        }
        int taken = cli_take_value(argc, argv, &index, "--name", &name);
        if (taken < 0)
            return CLI_EXIT_USAGE;
        if (taken > 0)
            continue;
        if (arg[0] == '-') {
            cli_error("run: unknown option '%s' (try 'usock run --help')", arg);
            return CLI_EXIT_USAGE;
        }
        break;
    }
    if (index >= argc) {
        cli_error("run: no program given (try 'usock run --help')");
        return CLI_EXIT_USAGE;
    }
    if (cli_check_name(name) < 0)
        return CLI_EXIT_USAGE;

    char api_path[PATH_MAX];
    if (cli_api_path(name, api_path, sizeof(api_path)) < 0)
        return CLI_EXIT_USAGE;
    struct stat status;
    if (stat(api_path, &status) != 0 || !S_ISSOCK(status.st_mode)) {
        cli_error("run: no stack '%s' is running (nothing at %s)", name, api_path);
        return CLI_EXIT_FAILURE;
    }

    char library[PATH_MAX];
    if (preload_library_find(library, sizeof(library)) < 0)
        return CLI_EXIT_FAILURE;
    const char *preloaded = getenv("LD_PRELOAD");
    char preload[2 * PATH_MAX];
    int length = preloaded && *preloaded
                     ? snprintf(preload, sizeof(preload), "%s:%s", library, preloaded)
                     : snprintf(preload, sizeof(preload), "%s", library);
    if (length < 0 || (size_t)length >= sizeof(preload)) {
        cli_error("run: LD_PRELOAD is too long");
        return CLI_EXIT_FAILURE;
    }
    if (setenv("LD_PRELOAD", preload, 1) != 0 || setenv("USOCK_NAME", name, 1) != 0) {
        cli_error("run: cannot set the environment: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    execvp(argv[index], argv + index);
    cli_error("run: cannot run '%s': %s", argv[index], strerror(errno));
    return 127;
}
