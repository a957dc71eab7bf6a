/*
 * How long one cache line takes to go from one CPU to another and back: two threads, pinned to
 * the two CPUs given, hand a flag to each other ROUNDS times. Prints the mean round trip in ns.
 *
 * The bench's two sides (the frontend on one CPU, the backend on the other) talk through ring
 * memory only, so at 64 bytes their rate follows this latency; on a VM it changes with where the
 * hypervisor runs the two vCPUs (the same core complex or not), which the bench reports beside
 * its figures. Usage: cache-line-probe CPU_A CPU_B
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { ROUNDS = 1000000 };

/* The line the two threads hand back and forth, alone in its cache line. */
static _Alignas(64) atomic_int turn;

static int pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *arg)
{
	pin(*(int *)arg);
	for (int i = 0; i < ROUNDS; i++) {
		while (atomic_load_explicit(&turn, memory_order_acquire) != 1)
			continue;
		atomic_store_explicit(&turn, 0, memory_order_release);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s CPU_A CPU_B\n", argv[0]);
		return 2;
	}
	int a = atoi(argv[1]), b = atoi(argv[2]);
	/* Both CPUs are tried here first: the second thread must not fail once the first waits on it. */
	if (pin(b) != 0 || pin(a) != 0) {
		fprintf(stderr, "cannot run on CPUs %d and %d\n", a, b);
		return 1;
	}
	pthread_t other;
	if (pthread_create(&other, NULL, answer, &b) != 0) {
		fprintf(stderr, "cannot start the second thread\n");
		return 1;
	}
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < ROUNDS; i++) {
		atomic_store_explicit(&turn, 1, memory_order_release);
		while (atomic_load_explicit(&turn, memory_order_acquire) != 0)
			continue;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	pthread_join(other, NULL);
	double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
	printf("round trip ns %.1f\n", ns / ROUNDS);
	return 0;
}
