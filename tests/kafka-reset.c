/*
 * Deletes every topic and consumer group of the Kafka cluster in $FAUSTC_TEST_KAFKA (what
 * the e2e scripts do where they would start a fresh embedded broker). Exit 0, or 2 without
 * the variable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

int
main(void)
{
	/* What it says is for the log: stdout may be the output a script checks. */
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		return 1;
	const char *k = getenv("FAUSTC_TEST_KAFKA");
	h_kafka = k && *k ? k : NULL;
	if (!h_kafka) {
		fprintf(stderr, "kafka-reset: set FAUSTC_TEST_KAFKA=HOST:PORT\n");
		return 2;
	}
	h_kafka_reset();
	return 0;
}
