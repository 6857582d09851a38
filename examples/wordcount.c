/*
 * wordcount: Faust's classic word count.
 *
 * Agent `split` reads lines from topic `wordcount-in` and yields every word of a line to
 * agent `count` (its own topic `wordcount-count`), keyed as the line was. `count` groups
 * its stream by the word through the repartition topic `wordcount-count-word-repartition`,
 * so every occurrence of a word reaches the one partition (and worker) that holds the
 * word's count in table `word_counts`, adds 1 and yields the new count to topic
 * `wordcount-out` as {"word": WORD, "count": N}, keyed by the word.
 *
 * Words: ASCII letters are lower-cased; a word is a run of letters, digits, apostrophes
 * and bytes >= 0x80 (UTF-8 text stays whole: "Café" is "café"), anything else separates
 * words. Apostrophes at either end of a word are dropped ("'tis" is "tis", "don't" stays),
 * a word of apostrophes only is no word. Words longer than WORD_MAX bytes, and words that
 * are not valid UTF-8, are skipped (and logged once per line).
 *
 *     faustc -A wordcount worker
 *     faustc -A wordcount send wordcount-in 'The cat saw the dog'
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent/agent.h>

/* The longest word counted, in bytes: far below LMDB's key limit (511 bytes). */
#define WORD_MAX 200

static struct ag_table *word_counts;

static bool
is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '\'' || c >= 0x80;
}

/* Whether p[0..len) is well-formed UTF-8 (no overlong forms, surrogates or > U+10FFFF). */
static bool
is_utf8(const unsigned char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
		if (c < 0x80)
			n = 0;
		else if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		else
			return false;
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			unsigned char b = p[i + k];
			if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf))
				return false;
		}
		i += n + 1;
	}
	return true;
}

/*
 * Whether v is a word as split makes them: 1 to WORD_MAX bytes of word characters, no
 * upper-case ASCII letter, no apostrophe at either end, valid UTF-8.
 */
static bool
is_word(struct ag_bytes v)
{
	const unsigned char *p = v.ptr;
	if (!v.len || v.len > WORD_MAX || p[0] == '\'' || p[v.len - 1] == '\'')
		return false;
	for (size_t i = 0; i < v.len; i++) {
		if (!is_word_byte(p[i]) || (p[i] >= 'A' && p[i] <= 'Z'))
			return false;
	}
	return is_utf8(p, v.len);
}

/* Yields the words of the line in [p, p + len) to `count`; counts the ones skipped. */
static int
split_line(struct ag_stream *s, const struct ag_bytes *key, const unsigned char *p, size_t len,
	   size_t *skipped)
{
	char word[WORD_MAX];
	size_t i = 0;
	while (i < len) {
		while (i < len && !is_word_byte(p[i]))
			i++;
		size_t start = i;
		while (i < len && is_word_byte(p[i]))
			i++;
		size_t end = i;
		while (start < end && p[start] == '\'')
			start++;
		while (end > start && p[end - 1] == '\'')
			end--;
		if (start == end)
			continue;
		if (end - start > WORD_MAX || !is_utf8(p + start, end - start)) {
			(*skipped)++;
			continue;
		}
		for (size_t k = start; k < end; k++)
			word[k - start] = (char)(p[k] >= 'A' && p[k] <= 'Z' ? p[k] + 32 : p[k]);
		struct ag_bytes w = {word, end - start};
		int rc = ag_stream_yield(s, key, &w); /* copies w */
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
split(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes key = ag_event_key(ev);
		struct ag_bytes line = ag_event_value(ev);
		size_t skipped = 0;
		if ((rc = split_line(s, key.ptr ? &key : NULL, line.ptr, line.len, &skipped)) < 0)
			return rc;
		if (skipped)
			ag_log(ag_stream_app(s), AG_LOG_WARN,
			       "wordcount-in[%d]@%lld: %zu words longer than %d bytes or not "
			       "UTF-8; "
			       "skipped",
			       (int)ag_event_partition(ev), (long long)ag_event_offset(ev), skipped,
			       WORD_MAX);
	}
	return rc == AG_EOF ? 0 : rc;
}

/*
 * count's group_by key: the word itself. Anything else sent to `count` (faustc send @count)
 * fails here, and the worker logs and skips it before it is repartitioned.
 */
static int
word_key(struct ag_event *ev, struct ag_bytes *key, void *userdata)
{
	(void)userdata;
	*key = ag_event_value(ev);
	return is_word(*key) ? 0 : -EINVAL;
}

static int
count(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes word = ag_event_key(ev); /* the group_by key */
		if (!is_word(word)) { /* written to the repartition topic by someone else */
			ag_log(ag_stream_app(s), AG_LOG_WARN,
			       "%s[%d]@%lld: key is no word; skipped", ag_event_topic(ev),
			       (int)ag_event_partition(ev), (long long)ag_event_offset(ev));
			continue;
		}
		int64_t n;
		if ((rc = ag_table_add_i64(word_counts, &word, 1, &n)) < 0)
			return rc;
		json_t *out =
			json_pack("{s:s%,s:I}", "word", word.ptr, word.len, "count", (json_int_t)n);
		struct ag_bytes value;
		rc = out ? ag_json_dump(out, &value) : -ENOMEM;
		json_decref(out);
		if (rc < 0)
			return rc;
		rc = ag_stream_yield(s, &word, &value);
		free((void *)value.ptr);
		if (rc < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic *in, *out, *by_word;
	struct ag_agent *splitter, *counter;
	struct ag_topic_opts lines = {
		.partitions = 4, .key_codec = AG_CODEC_STRING, .value_codec = AG_CODEC_RAW};
	struct ag_topic_opts counts = {
		.partitions = 4, .key_codec = AG_CODEC_STRING, .value_codec = AG_CODEC_JSON};
	int rc;
	if ((rc = ag_app_set_id(app, "wordcount")) < 0 ||
	    (rc = ag_app_topic(app, "wordcount-in", &lines, &in)) < 0 ||
	    (rc = ag_app_topic(app, "wordcount-out", &counts, &out)) < 0 ||
	    (rc = ag_app_agent(app, "split", in, split, NULL, &splitter)) < 0 ||
	    (rc = ag_app_agent(app, "count", NULL, count, NULL, &counter)) < 0 ||
	    (rc = ag_agent_sink_agent(splitter, counter)) < 0 ||
	    (rc = ag_agent_group_by(counter, "word", word_key, NULL, 0, &by_word)) < 0 ||
	    (rc = ag_app_table(app, "word_counts", by_word, NULL, &word_counts)) < 0 ||
	    (rc = ag_agent_sink_topic(counter, out)) < 0)
		return rc;
	return 0;
}

#ifdef AG_APP_AS_MODULE
AG_APP_MODULE(setup);
#else
int
main(int argc, char **argv)
{
	return ag_app_main(argc, argv, setup);
}
#endif
