/*
 * A strict, small HTTP/1.1 server on a libuv loop: one request per connection, answered
 * whole and closed (Connection: close). Hostile clients cost bounded memory and time:
 *  - the request line and headers must fit in AG__HTTP_MAX_REQUEST bytes (else 431),
 *  - and arrive within AG__HTTP_REQUEST_TIMEOUT_MS (else 408: slowloris clients are cut off),
 *  - at most AG__HTTP_MAX_CONNS connections are open; more are answered 503 and closed,
 *  - only GET and HEAD are served (405), a malformed request line or header is 400.
 * After the answer the write side is shut down and whatever the client still sends (the rest
 * of a huge header) is read and dropped for a moment, so that it sees the answer instead of
 * a reset. Bodies are not read: GET and HEAD have none.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* Time a client has to read the answer and close, after which the connection is dropped. */
#define DRAIN_MS 2000

enum conn_state {
	CONN_READING,
	CONN_WRITING,
	CONN_DRAINING,
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct ag__http *h;
	struct conn *prev, *next;
	enum conn_state state;
	int closing, closed; /* closed: handles whose close callback ran */
	uv_write_t wr;
	uv_shutdown_t sd;
	struct ag__sbuf out;
	size_t len;
	char buf[AG__HTTP_MAX_REQUEST + 1];
};

struct ag__http {
	uv_loop_t *loop;
	uv_tcp_t *listener;
	ag__http_handler_fn fn;
	void *userdata;
	struct conn *conns;
	uint32_t nconns;
	int closing;
	int open; /* handles (listener, connections) not yet closed */
	char scratch[4096]; /* what draining connections read */
};

void
ag__sbuf_append(struct ag__sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->ptr, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->ptr = p;
		b->cap = cap;
	}
	memcpy(b->ptr + b->len, s, n);
	b->len += n;
	b->ptr[b->len] = '\0';
}

void
ag__sbuf_printf(struct ag__sbuf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		ag__sbuf_append(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->oom = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ag__sbuf_append(b, big, (size_t)n);
	free(big);
}

static const char *
reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 307:
		return "Temporary Redirect";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

static void http_send(struct conn *c, struct ag__http_res *res, int head);

static void
http_maybe_free(struct ag__http *h)
{
	if (h->closing && h->open == 0)
		free(h);
}

static void
on_conn_closed(uv_handle_t *handle)
{
	struct conn *c = handle->data;
	if (++c->closed < 2)
		return;
	struct ag__http *h = c->h;
	free(c->out.ptr);
	free(c);
	h->open--;
	http_maybe_free(h);
}

static void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	struct ag__http *h = c->h;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nconns--;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void
on_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->state == CONN_READING) {
		static const char body[] = "{\"error\": \"the request did not arrive in time\"}\n";
		struct ag__http_res res = {.status = 408};
		ag__sbuf_append(&res.body, body, sizeof(body) - 1);
		http_send(c, &res, 0);
		return;
	}
	conn_close(c);
}

static void
on_shutdown(uv_shutdown_t *sd, int status)
{
	(void)sd;
	(void)status;
}

static void
on_written(uv_write_t *wr, int status)
{
	struct conn *c = wr->data;
	free(c->out.ptr);
	c->out = (struct ag__sbuf){0};
	if (status < 0 || c->closing) {
		conn_close(c);
		return;
	}
	c->state = CONN_DRAINING;
	c->sd.data = c;
	if (uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, DRAIN_MS, 0);
}

/* Writes the answer (taking res->body) and moves on to draining. */
static void
http_send(struct conn *c, struct ag__http_res *res, int head)
{
	if (res->body.oom) {
		free(res->body.ptr);
		res->body = (struct ag__sbuf){0};
		res->status = 500;
		res->location[0] = '\0';
	}
	if (res->status == 0)
		res->status = 500;
	struct ag__sbuf *o = &c->out;
	ag__sbuf_printf(o,
			"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			"Cache-Control: no-store\r\nConnection: close\r\n",
			res->status, reason(res->status),
			res->type ? res->type : "application/json", res->body.len);
	if (res->location[0])
		ag__sbuf_printf(o, "Location: %s\r\n", res->location);
	if (res->status == 405)
		ag__sbuf_printf(o, "Allow: GET, HEAD\r\n");
	ag__sbuf_append(o, "\r\n", 2);
	if (!head && res->body.len)
		ag__sbuf_append(o, res->body.ptr, res->body.len);
	free(res->body.ptr);
	res->body = (struct ag__sbuf){0};
	if (o->oom) {
		conn_close(c);
		return;
	}
	c->state = CONN_WRITING;
	uv_timer_start(&c->timer, on_timeout, AG__HTTP_REQUEST_TIMEOUT_MS, 0);
	uv_buf_t b = uv_buf_init(o->ptr, (unsigned)o->len);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
		conn_close(c);
}

static void
send_error(struct conn *c, int status, const char *msg)
{
	struct ag__http_res res = {.status = status};
	ag__sbuf_printf(&res.body, "{\"error\": \"%s\"}\n", msg);
	http_send(c, &res, 0);
}

static int
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Parses and answers the complete request head in c->buf[0..end). */
static void
handle(struct conn *c, size_t end)
{
	char *p = c->buf, *line_end = strstr(p, "\r\n");
	if (!line_end || (size_t)(line_end - p) > end) {
		send_error(c, 400, "malformed request line");
		return;
	}
	*line_end = '\0';
	char *method = p, *sp1 = strchr(p, ' ');
	char *target = sp1 ? sp1 + 1 : NULL;
	char *sp2 = target ? strchr(target, ' ') : NULL;
	char *version = sp2 ? sp2 + 1 : NULL;
	if (!sp1 || !sp2 || sp1 == method || strchr(version, ' ')) {
		send_error(c, 400, "malformed request line");
		return;
	}
	*sp1 = *sp2 = '\0';
	for (char *m = method; *m; m++) {
		if (!is_tchar((unsigned char)*m)) {
			send_error(c, 400, "malformed method");
			return;
		}
	}
	if (target[0] != '/') {
		send_error(c, 400, "the target must be an absolute path");
		return;
	}
	for (char *t = target; *t; t++) {
		if ((unsigned char)*t <= ' ' || (unsigned char)*t >= 0x7f) {
			send_error(c, 400, "malformed target");
			return;
		}
	}
	if (strncmp(version, "HTTP/1.", 7) != 0 || !version[7] || version[8] ||
	    (version[7] != '0' && version[7] != '1')) {
		if (strncmp(version, "HTTP/", 5) == 0)
			send_error(c, 505, "only HTTP/1.0 and HTTP/1.1 are served");
		else
			send_error(c, 400, "malformed HTTP version");
		return;
	}
	/* Header lines: NAME ":" VALUE, no folding. */
	for (char *h = line_end + 2; h < c->buf + end;) {
		char *e = strstr(h, "\r\n");
		if (!e || e == h)
			break;
		char *colon = memchr(h, ':', (size_t)(e - h));
		if (!colon || colon == h) {
			send_error(c, 400, "malformed header line");
			return;
		}
		for (char *n = h; n < colon; n++) {
			if (!is_tchar((unsigned char)*n)) {
				send_error(c, 400, "malformed header name");
				return;
			}
		}
		h = e + 2;
	}
	int head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		send_error(c, 405, "only GET and HEAD are served");
		return;
	}
	struct ag__http_req req = {.head = head, .path = target, .query = ""};
	char *q = strchr(target, '?');
	if (q) {
		*q = '\0';
		req.query = q + 1;
	}
	struct ag__http_res res = {0};
	c->h->fn(&req, &res, c->h->userdata);
	http_send(c, &res, head);
}

static void
on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = handle->data;
	if (c->state == CONN_READING && c->len < AG__HTTP_MAX_REQUEST)
		*buf = uv_buf_init(c->buf + c->len, (unsigned)(AG__HTTP_MAX_REQUEST - c->len));
	else
		*buf = uv_buf_init(c->h->scratch, sizeof(c->h->scratch));
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (c->state != CONN_READING || nread == 0)
		return;
	size_t before = c->len;
	c->len += (size_t)nread;
	c->buf[c->len] = '\0';
	size_t from = before > 3 ? before - 3 : 0;
	char *end = strstr(c->buf + from, "\r\n\r\n");
	if (memchr(c->buf + before, '\0', (size_t)nread)) {
		send_error(c, 400, "NUL byte in the request");
	} else if (end) {
		handle(c, (size_t)(end - c->buf) + 2);
	} else if (c->len >= AG__HTTP_MAX_REQUEST) {
		send_error(c, 431, "the request line and headers exceed 16 KiB");
	}
}

static void
on_refused_closed(uv_handle_t *handle)
{
	free(handle);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct ag__http *h = server->data;
	if (status < 0 || h->closing)
		return;
	if (h->nconns >= AG__HTTP_MAX_CONNS) {
		/* Answered at once and closed: costs nothing that outlives this call. */
		uv_tcp_t *t = malloc(sizeof(*t));
		if (!t || uv_tcp_init(h->loop, t) < 0) {
			free(t);
			return;
		}
		if (uv_accept(server, (uv_stream_t *)t) == 0) {
			static const char busy[] =
				"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
				"Connection: close\r\n\r\n";
			uv_buf_t b = uv_buf_init((char *)busy, sizeof(busy) - 1);
			uv_try_write((uv_stream_t *)t, &b, 1);
		}
		uv_close((uv_handle_t *)t, on_refused_closed);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->h = h;
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	h->open++;
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, AG__HTTP_REQUEST_TIMEOUT_MS, 0);
}

static void
on_listener_closed(uv_handle_t *handle)
{
	struct ag__http *h = handle->data;
	free(handle);
	if (h) {
		h->open--;
		http_maybe_free(h);
	}
}

/* One attempt at host:port. Returns 0 with h->listener set, or libuv's error. */
static int
try_listen(struct ag__http *h, const char *host, int port)
{
	struct sockaddr_storage sa;
	int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa)
				   : uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
	if (rc < 0)
		return rc;
	uv_tcp_t *t = malloc(sizeof(*t));
	if (!t)
		return UV_ENOMEM;
	if ((rc = uv_tcp_init(h->loop, t)) < 0) {
		free(t);
		return rc;
	}
	t->data = NULL;
	if ((rc = uv_tcp_bind(t, (const struct sockaddr *)&sa, 0)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)t, 128, on_connection)) < 0) {
		uv_close((uv_handle_t *)t, on_listener_closed);
		return rc;
	}
	t->data = h;
	h->listener = t;
	return 0;
}

int
ag__http_open(struct ag__http **out, uv_loop_t *loop, const char *host, int port, int try_next,
	      int *bound, ag__http_handler_fn fn, void *userdata)
{
	struct ag__http *h = calloc(1, sizeof(*h));
	if (!h)
		return UV_ENOMEM;
	h->loop = loop;
	h->fn = fn;
	h->userdata = userdata;
	int rc = try_listen(h, host, port);
	for (int i = 1; rc == UV_EADDRINUSE && try_next && port > 0 && i <= 100; i++) {
		if (port + i > 65535)
			break;
		if ((rc = try_listen(h, host, port + i)) == 0)
			port += i;
	}
	if (rc < 0) {
		free(h);
		return rc;
	}
	struct sockaddr_storage sa;
	int salen = sizeof(sa);
	if (uv_tcp_getsockname(h->listener, (struct sockaddr *)&sa, &salen) == 0)
		port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
						      : ((struct sockaddr_in *)&sa)->sin_port);
	h->open = 1;
	*bound = port;
	*out = h;
	return 0;
}

void
ag__http_close(struct ag__http *h)
{
	if (!h || h->closing)
		return;
	h->closing = 1;
	while (h->conns)
		conn_close(h->conns);
	uv_close((uv_handle_t *)h->listener, on_listener_closed);
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
ag__http_unescape(const char *src, size_t n, int plus_space, char *dst, size_t cap)
{
	size_t o = 0;
	if (cap == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char ch = src[i];
		if (ch == '%') {
			int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(src[i + 2]) : -1;
			if (lo < 0)
				return -1;
			ch = (char)(hi * 16 + lo);
			i += 2;
		} else if (ch == '+' && plus_space) {
			ch = ' ';
		}
		if (o + 1 >= cap)
			return -1;
		dst[o++] = ch;
	}
	dst[o] = '\0';
	return (int)o;
}

int
ag__http_query(const char *query, const char *name, char *dst, size_t cap)
{
	size_t nlen = strlen(name);
	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		if (plen >= nlen && strncmp(p, name, nlen) == 0 &&
		    (plen == nlen || p[nlen] == '=')) {
			const char *v = plen == nlen ? p + plen : p + nlen + 1;
			return ag__http_unescape(v, (size_t)(p + plen - v), 1, dst, cap);
		}
		p = amp ? amp + 1 : NULL;
	}
	return -1;
}
