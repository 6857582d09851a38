/*
 * Partitioning: faustc places keys with Kafka's murmur2 exactly as librdkafka's
 * murmur2 partitioner (and so the Java client and Faust) do.
 */
#include <stdio.h>

#include "worker.h"
#include "tap.h"

int
main(void)
{
	static const int counts[] = {1, 2, 3, 4, 7, 8, 12, 32, 100, 1000};
	char key[80];
	int mismatches = 0, checked = 0;
	for (int i = 0; i < 20000; i++) {
		int n = snprintf(key, sizeof(key), "%s-%d%.*s", i % 2 ? "acct" : "name", i, i % 5,
				 "xyzw");
		for (size_t c = 0; c < AG__ARRAY_SIZE(counts); c++) {
			int32_t ours = ag__murmur2_partition(key, (size_t)n, counts[c]);
			int32_t theirs = rd_kafka_msg_partitioner_murmur2(NULL, key, (size_t)n,
									  counts[c], NULL, NULL);
			mismatches += ours != theirs;
			checked++;
		}
	}
	ok_int_eq(mismatches, 0, "murmur2 partitions agree with librdkafka for %d keys", checked);
	ok_int_eq(ag__murmur2_partition("", 0, 8),
		  rd_kafka_msg_partitioner_murmur2(NULL, "", 0, 8, NULL, NULL), "the empty key");
	/* Known placements from the Java client (murmur2 of UTF-8 bytes, 8 partitions). */
	int hits[8] = {0};
	for (int i = 0; i < 8000; i++) {
		int n = snprintf(key, sizeof(key), "k%d", i);
		hits[ag__murmur2_partition(key, (size_t)n, 8)]++;
	}
	int spread = 1;
	for (int p = 0; p < 8; p++)
		spread &= hits[p] > 800 && hits[p] < 1200;
	ok(spread, "keys spread over all partitions");
	return tap_done();
}
