/* Four threads block; a fifth dereferences a bad pointer. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_barrier_t ready;

__attribute__((noipa)) void *idle_worker(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
	return NULL;
}

__attribute__((noipa)) int crunch(int *data)
{
	return data[3] + 1;
}

__attribute__((noipa)) void *bad_worker(void *arg)
{
	pthread_barrier_wait(&ready);
	usleep(1000);
	return (void *)(long)crunch((int *)arg);
}

int main(void)
{
	pthread_t t[5];
	pthread_barrier_init(&ready, NULL, 5);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, idle_worker, NULL);
	pthread_create(&t[4], NULL, bad_worker, NULL);
	pthread_join(t[4], NULL);
	return 0;
}
