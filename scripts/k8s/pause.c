/*
 * Minimal pod sandbox ("pause") process for the local test cluster (scripts/k8s/images.sh).
 * It holds the pod's namespaces: sleeps forever, exits 0 on SIGINT/SIGTERM, and, being PID 1 of
 * the pod's PID namespace when that is shared, reaps every child it inherits on SIGCHLD.
 * Build: gcc -static -Os -o pause pause.c
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

static void on_chld(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

static int handle(int sig, void (*fn)(int), int flags) {
    struct sigaction sa = {0};
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int main(void) {
    if (getpid() != 1)
        fprintf(stderr, "pause: warning: not PID 1\n");
    if (handle(SIGINT, on_term, 0) || handle(SIGTERM, on_term, 0) ||
        handle(SIGCHLD, on_chld, SA_NOCLDSTOP | SA_RESTART)) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;)
        pause();
}
