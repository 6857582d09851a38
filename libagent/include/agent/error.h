/*
 * Error codes. Every function of the library returns 0 on success and a negative
 * number on failure: either a negated errno value (-ENOMEM, -EINVAL, -ENOENT, ...)
 * or one of the project codes below, which live in their own block (-5000..-5999)
 * so the two never collide. Codes from librdkafka and LMDB are converted where they
 * enter the library; the underlying library's message is logged at that point.
 */
#ifndef AGENT_ERROR_H
#define AGENT_ERROR_H

#define AG_ERRNO_MAP(XX) \
	XX(EOF, -5000, "end of stream") \
	XX(EKAFKA, -5001, "Kafka client error") \
	XX(EDECODE, -5002, "value does not decode with the topic's codec") \
	XX(ESTORE, -5003, "table store (LMDB) error") \
	XX(ECONFIG, -5004, "invalid app or worker configuration") \
	XX(ENOBROKER, -5005, "no Kafka broker reachable") \
	XX(ESTOPPED, -5006, "worker is stopping") \
	XX(ETOPIC, -5007, "topic exists with a different partition count") \
	XX(ENOAGENT, -5008, "not called from inside an agent") \
	XX(ETYPE, -5009, "value has the wrong type") \
	XX(EMISSING, -5010, "a required field is missing") \
	XX(ETOOBIG, -5011, "message is larger than the worker accepts")

enum ag_errno {
#define AG__ERR_ENUM(name, code, msg) AG_##name = (code),
	AG_ERRNO_MAP(AG__ERR_ENUM)
#undef AG__ERR_ENUM
};

/*
 * Returns a static, human readable message for any error code this library returns
 * (project codes and negated errno values). Never NULL.
 */
const char *ag_strerror(int err);

/* Returns the symbolic name ("AG_EOF", "ENOMEM", ...) of an error code. Never NULL. */
const char *ag_err_name(int err);

#endif
