/*
 * nosleep0.c - a diagnostic LD_PRELOAD shim for the benchmark only: nanosleep() and
 * clock_nanosleep() asked to sleep for zero time return at once instead of entering
 * the kernel.  Running decky-smtpd with and without it measures what its zero-length
 * sleeps cost.  Never part of the product.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

int nanosleep(const struct timespec *, struct timespec *);
int clock_nanosleep(clockid_t, int, const struct timespec *, struct timespec *);

int
nanosleep(const struct timespec *req, struct timespec *rem)
{
	static int (*real)(const struct timespec *, struct timespec *);

	if (req != NULL && req->tv_sec == 0 && req->tv_nsec == 0)
		return 0;
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "nanosleep");
	return real(req, rem);
}

int
clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
	static int (*real)(clockid_t, int, const struct timespec *, struct timespec *);

	if (flags == 0 && req != NULL && req->tv_sec == 0 && req->tv_nsec == 0)
		return 0;
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "clock_nanosleep");
	return real(clk, flags, req, rem);
}
