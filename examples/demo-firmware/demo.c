/*
 * micrun demo firmware: a host-native program that behaves like a tiny RTOS
 * console, for `micrun sim` (which, like Zephyr's native_sim board, runs a host
 * ELF as the "RTOS" with its stdio on the client's pty, pinned to one CPU).
 *
 *   boot banner, then the prompt "demo:~$ "
 *   help | uptime | cpu | echo ARGS | halt [N]
 *
 * `halt N` exits with code N: the RTOS halting. End of input does not end the
 * RTOS (nobody typing is normal); it then waits for a signal. SIGTERM, SIGKILL
 * and SIGHUP (its console pty hung up) end it with their default actions.
 *
 * When stdin is a terminal the firmware edits the line and echoes itself, as an
 * RTOS shell does on a UART, so it does not depend on the pty's settings.
 *
 * Built static (see Makefile) so that it runs inside any rootfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define VERSION "1"
#define PROMPT "demo:~$ "
#define LINE_MAX_LEN 256

static struct timespec boot;
static int interactive;

static void out(const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* console gone: an RTOS keeps running */
		}
		s += w;
		n -= (size_t)w;
	}
}

static void outf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void outf(const char *fmt, ...)
{
	char buf[LINE_MAX_LEN + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	out(buf);
}

static long long uptime_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(now.tv_sec - boot.tv_sec) * 1000 + (now.tv_nsec - boot.tv_nsec) / 1000000;
}

static void print_cpu(void)
{
	int cpu = sched_getcpu();
	if (cpu < 0)
		out("cpu: unknown\n");
	else
		outf("cpu: %d\n", cpu);
}

/* Blocks until a signal ends the process; never returns. */
static void idle_forever(void)
{
	for (;;)
		pause();
}

static void run(char *line)
{
	char *cmd = line + strspn(line, " \t");
	size_t len = strcspn(cmd, " \t");
	char *args = cmd + len;
	if (*args)
		*args++ = '\0';
	args += strspn(args, " \t");

	if (*cmd == '\0')
		return;
	if (strcmp(cmd, "help") == 0) {
		out("commands:\n"
		    "  help       this list\n"
		    "  uptime     milliseconds since boot\n"
		    "  cpu        the CPU this RTOS runs on\n"
		    "  echo ARGS  print ARGS\n"
		    "  halt [N]   halt the RTOS with exit code N (0-255, default 0)\n");
	} else if (strcmp(cmd, "uptime") == 0) {
		outf("uptime: %lld ms\n", uptime_ms());
	} else if (strcmp(cmd, "cpu") == 0) {
		print_cpu();
	} else if (strcmp(cmd, "echo") == 0) {
		outf("%s\n", args);
	} else if (strcmp(cmd, "halt") == 0) {
		char *end;
		long code = 0;
		if (*args) {
			errno = 0;
			code = strtol(args, &end, 10);
			end += strspn(end, " \t");
			if (errno || *end || code < 0 || code > 255) {
				out("halt: usage: halt [N], N in 0-255\n");
				return;
			}
		}
		outf("halting with code %ld\n", code);
		exit((int)code);
	} else {
		outf("%s: command not found (try help)\n", cmd);
	}
}

/* Terminal: raw-ish input, own echo and line editing, like a UART shell. */
static void setup_terminal(void)
{
	struct termios t;
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &t) != 0)
		return;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ECHONL | ISIG | IEXTEN);
	t.c_iflag |= ICRNL;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		interactive = 1;
}

int main(void)
{
	char line[LINE_MAX_LEN];
	size_t n = 0;
	int prev_cr = 0;

	clock_gettime(CLOCK_MONOTONIC, &boot);
	setup_terminal();
	out("*** Booting micrun demo RTOS v" VERSION " (native_sim) ***\n");
	print_cpu();
	out(PROMPT);

	for (;;) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			idle_forever(); /* EOF or hang-up: nobody types, the RTOS runs on */
		if (c == '\n' && prev_cr) { /* CR LF is one line end */
			prev_cr = 0;
			continue;
		}
		prev_cr = c == '\r';
		if (c == '\r' || c == '\n') {
			if (interactive)
				out("\n");
			line[n] = '\0';
			n = 0;
			run(line);
			out(PROMPT);
		} else if (interactive && (c == 0x7f || c == '\b')) {
			if (n > 0) {
				n--;
				out("\b \b");
			}
		} else if (interactive && c == 0x03) { /* ^C drops the line */
			n = 0;
			out("^C\n" PROMPT);
		} else if (n + 1 < sizeof line) {
			line[n++] = c;
			if (interactive) {
				char s[2] = {c, '\0'};
				out(s);
			}
		}
	}
}
