/*
 * The baseline for the faustc benchmark: the withdrawals pipe written directly against
 * librdkafka and jansson, with no framework in between. It consumes `withdrawals` in
 * batches from the consumer queue, keeps amount > 100, and produces
 * {"account", "country", "amount_cents"} keyed by account to `large`. The Kafka loop is
 * kafka_pipe.c; this file is the per-value work: a jansson tree in, a jansson tree out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kafka_pipe.h"

/* Filters and transforms one value. Malformed values are counted and skipped. */
static int
process(struct pipe *p, const rd_kafka_message_t *msg)
{
	json_t *in, *account, *amount, *country, *out;
	json_error_t jerr;
	double value;
	char *text;
	int rc = 0;

	in = json_loadb(msg->payload, msg->len, 0, &jerr);
	account = json_object_get(in, "account");
	amount = json_object_get(in, "amount");
	country = json_object_get(in, "country");
	if (!json_is_string(account) || !json_is_number(amount) || !json_is_string(country)) {
		pipe_skip(p, msg);
		goto out;
	}
	value = json_number_value(amount);
	if (!(value > 100.0))
		goto out;

	out = json_object();
	json_object_set(out, "account", account);
	json_object_set(out, "country", country);
	json_object_set_new(out, "amount_cents", json_integer((json_int_t)(value * 100.0 + 0.5)));
	text = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	rc = pipe_produce(p, json_string_value(account), json_string_length(account), text,
			  strlen(text));
	free(text);
out:
	json_decref(in);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct pipe_kind raw = {
		.name = "raw_pipe",
		.label = "raw",
		.group = "bench-raw",
		.process = process,
	};

	return pipe_main(&raw, argc, argv);
}
