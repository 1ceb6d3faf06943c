/* The sensor benchmark's syscall-bound workload in C, without an interpreter's own cost: N stat()
 * calls of one path. stat is neither recorded by the sensor nor refusable by cordon's seccomp
 * filter, so this measures what every unrecorded call pays. Usage: statloop PATH N */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static double now(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: statloop PATH N\n");
		return 2;
	}
	long n = atol(argv[2]);
	struct stat st;
	double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	for (long i = 0; i < n; i++) {
		if (stat(argv[1], &st) != 0) {
			perror("stat");
			return 1;
		}
	}
	double dt = now(CLOCK_MONOTONIC) - t0, dc = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
	/* The benchmark reads this line: wall seconds after " in ", CPU seconds after "cpu ". */
	fprintf(stderr, "statloop: %ld stats in %.6f s (cpu %.6f s, %.0f ns each)\n", n, dt, dc, n ? dt * 1e9 / n : 0);
	return 0;
}
