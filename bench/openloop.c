/* The sensor benchmark's file-heavy workload: N open/close pairs of one file, optionally paced to
 * RATE opens per second (in batches every millisecond). Usage: openloop FILE N [RATE] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: openloop FILE N [RATE]\n");
		return 2;
	}
	long n = atol(argv[2]);
	double rate = argc > 3 ? atof(argv[3]) : 0;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		if (rate > 0 && i % 100 == 0) {
			double due = t0 + i / rate;
			while (now() < due)
				usleep(200);
		}
		int fd = open(argv[1], O_RDONLY);
		if (fd < 0) {
			perror("open");
			return 1;
		}
		close(fd);
	}
	double dt = now() - t0;
	fprintf(stderr, "openloop: %ld opens in %.3f s (%.0f/s)\n", n, dt, n / dt);
	return 0;
}
