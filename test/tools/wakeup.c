/*
 * test/tools/wakeup.c: probes the extension's wake-ups from outside, as a
 * LISTENer would see them (libpq, two connections).
 *
 *   wakeup latency N      publish+commit N times, each waited for on LISTEN;
 *                         prints "p50_us p99_us max_us" (commit included)
 *   wakeup rollback MS    publish in a rolled-back transaction; prints the
 *                         notifications seen within MS milliseconds
 *   wakeup count MS       prints "ready", then the notifications seen within MS
 *                         milliseconds, the longest payload's length and the
 *                         last payload
 * Connection settings come from libpq's PG* environment.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static PGconn *
connect_or_die(void)
{
	PGconn	   *c = PQconnectdb("");

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "wakeup: %s", PQerrorMessage(c));
		exit(2);
	}
	return c;
}

static void
exec_or_die(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "wakeup: %s: %s", sql, PQerrorMessage(c));
		exit(2);
	}
	PQclear(r);
}

/* Waits up to timeout_ms for notifications; returns how many arrived. */
static char last_payload[64];

static int
wait_notifies(PGconn *c, int timeout_ms, int want, size_t *longest)
{
	long long	deadline = now_us() + (long long) timeout_ms * 1000;
	int			got = 0;

	while (got < want)
	{
		long long	left = deadline - now_us();
		struct pollfd pfd = {PQsocket(c), POLLIN, 0};
		PGnotify   *n;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int) (left / 1000) + 1) < 0)
			break;
		PQconsumeInput(c);
		while ((n = PQnotifies(c)) != NULL)
		{
			if (longest && strlen(n->extra) > *longest)
				*longest = strlen(n->extra);
			snprintf(last_payload, sizeof(last_payload), "%s", n->extra);
			got++;
			PQfreemem(n);
		}
	}
	return got;
}

static int
cmp_ll(const void *a, const void *b)
{
	long long	x = *(const long long *) a,
				y = *(const long long *) b;

	return (x > y) - (x < y);
}

static int
run_latency(PGconn *listener, PGconn *pub, int n)
{
	long long  *lat = calloc((size_t) n, sizeof(long long));
	int			missed = 0;

	for (int i = 0; i < n; i++)
	{
		long long	t0 = now_us();

		exec_or_die(pub, "SELECT aegis.publish('wakeup-probe', '{\"probe\": true}')");
		if (wait_notifies(listener, 2000, 1, NULL) != 1)
			missed++;
		lat[i] = now_us() - t0;
		wait_notifies(listener, 0, 1000, NULL);
	}
	qsort(lat, (size_t) n, sizeof(long long), cmp_ll);
	printf("%lld %lld %lld %d\n", lat[n / 2], lat[(n * 99) / 100], lat[n - 1], missed);
	free(lat);
	return missed == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	PGconn	   *listener;
	PGconn	   *pub;
	size_t		longest = 0;

	if (argc != 3)
	{
		fprintf(stderr, "usage: wakeup latency N | rollback MS | count MS\n");
		return 2;
	}
	listener = connect_or_die();
	pub = connect_or_die();
	exec_or_die(listener, "LISTEN aegis_events");
	if (strcmp(argv[1], "latency") == 0)
		return run_latency(listener, pub, atoi(argv[2]) > 0 ? atoi(argv[2]) : 1);
	if (strcmp(argv[1], "rollback") == 0)
	{
		exec_or_die(pub, "BEGIN");
		exec_or_die(pub, "SELECT aegis.publish('wakeup-probe', '{\"rolled_back\": true}')");
		exec_or_die(pub, "ROLLBACK");
	}
	else if (strcmp(argv[1], "count") == 0)
		printf("ready\n");
	else
	{
		fprintf(stderr, "wakeup: unknown mode %s\n", argv[1]);
		return 2;
	}
	fflush(stdout);
	{
		int			got = wait_notifies(listener, atoi(argv[2]), 1 << 30, &longest);

		printf("%d %zu %s\n", got, longest, last_payload[0] ? last_payload : "-");
	}
	PQfinish(pub);
	PQfinish(listener);
	return 0;
}
