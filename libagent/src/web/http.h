/*
 * The web subsystem: a small HTTP/1.1 server on the worker's own libuv loop (http.c), the
 * worker's routes (web.c: /health, /info, /tables) and its Prometheus metrics (metrics.c).
 * No thread serves a request: every handler runs on the loop between agent slices, builds
 * its whole answer at once and returns.
 *
 * Why our own server and not h2o (libh2o-dev): the worker answers a handful of GETs from
 * operators and scrapers, one request per connection. What it needs is strict limits
 * (request size, time to send a request, open connections) so that hostile clients cannot
 * stall the loop; that is a few hundred lines here, against h2o's large API, its own event
 * loop abstraction and a dependency every user would have to install.
 *
 * Private to the library.
 */
#ifndef AG_WEB_HTTP_H
#define AG_WEB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* The request line and headers must fit in this many bytes, else 431. */
#define AG__HTTP_MAX_REQUEST 16384
/* A request must arrive complete within this many ms, else 408. */
#define AG__HTTP_REQUEST_TIMEOUT_MS 10000
/* Connections beyond this many are answered 503 and closed at once. */
#define AG__HTTP_MAX_CONNS 256

/* A growing text buffer. */
struct ag__sbuf {
	char *ptr;
	size_t len, cap;
	int oom; /* an append failed: the contents are cut short */
};

/* Appends formatted text (an allocation failure sets oom). */
void ag__sbuf_printf(struct ag__sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ag__sbuf_append(struct ag__sbuf *b, const char *s, size_t n);

struct ag__http_req {
	int head; /* HEAD: the answer carries no body */
	const char *path; /* percent-encoded, without the query */
	const char *query; /* after '?', or "" */
};

struct ag__http_res {
	int status;
	const char *type; /* Content-Type; NULL: application/json */
	struct ag__sbuf body;
	char location[512]; /* a redirect's target, or "" */
};

/* Fills res for req (res->status 0 is answered 500). Runs on the loop; must not block. */
typedef void (*ag__http_handler_fn)(const struct ag__http_req *req, struct ag__http_res *res,
				    void *userdata);

struct ag__http;

/*
 * Listens on host:port (port 0: a free port). When the port is taken and try_next is set,
 * the next ports are tried (up to 100 of them). On success *out is set and the bound port
 * is in *bound. Returns 0, or libuv's error (UV_EADDRINUSE, UV_EADDRNOTAVAIL, ...).
 */
int ag__http_open(struct ag__http **out, uv_loop_t *loop, const char *host, int port, int try_next,
		  int *bound, ag__http_handler_fn fn, void *userdata);

/* Closes the listener and every connection; the memory goes with the last close callback. */
void ag__http_close(struct ag__http *h);

/*
 * Percent-decodes src[0..n) into dst (cap bytes, NUL-terminated); '+' is a space with
 * plus_space (query strings). Returns the length, or -1 (bad escape, too long).
 */
int ag__http_unescape(const char *src, size_t n, int plus_space, char *dst, size_t cap);

/* The decoded value of name in a query string into dst. Returns its length, or -1 when absent. */
int ag__http_query(const char *query, const char *name, char *dst, size_t cap);

#endif
