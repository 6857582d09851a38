/*
 * Timers and tasks. Each timer runs on a coroutine of its own, scheduled on the agents'
 * run queue, so its function can ag_send() and park while the producer queue is full
 * without blocking the loop or any agent. A libuv timer only marks the timer due and
 * wakes the coroutine; the call itself happens on the coroutine. Ticks that come due
 * during a call collapse into one call after it.
 *
 * Leader timers follow the worker's leadership: the worker assigned partition 0 of
 * `<app_id>-__leader` (one partition, in the group's subscription) is the leader, so
 * Kafka's group protocol elects exactly one member and moves the role when it leaves.
 * The rebalance callback tells us (ag__timers_set_leader); a leader timer's schedule runs
 * only while the worker leads.
 *
 * On stop no call starts any more; a coroutine parked between calls ends at once, one
 * inside its function ends when the function returns, and the worker's stop sequence
 * waits for that (ag__agents_all_done counts timers).
 */
#include <errno.h>
#include <stdlib.h>

#include "worker.h"

static void
timer_main(void *arg)
{
	struct ag__timer_rt *tr = arg;
	struct ag__worker *w = tr->co.w;
	struct ag__timer *t = tr->timer;
	for (;;) {
		/* A commit cycle of exactly_once holds the calls until it is done. */
		while ((!tr->due || w->txn_hold) && !w->stopping)
			ag__agent_park(&tr->co, AG__AGENT_WAIT_TIMER);
		if (w->stopping)
			break;
		tr->due = 0;
		if ((t->flags & AG_TIMER_LEADER) && !w->leader)
			continue; /* leadership went away while the call was queued */
		int rc = t->fn(w->app, t->userdata);
		tr->runs++;
		if (rc < 0) {
			tr->failures++;
			ag__log(w->app, AG_LOG_ERROR, "timer %s failed: %s (%s)%s (failure %llu)",
				t->name, ag_strerror(rc), ag_err_name(rc),
				t->flags & AG_TIMER_ONCE ? "" : "; it runs again on schedule",
				(unsigned long long)tr->failures);
		}
		if (t->flags & AG_TIMER_ONCE)
			break;
	}
	tr->co.state = AG__AGENT_DONE;
}

static void
on_due(uv_timer_t *h)
{
	struct ag__timer_rt *tr = h->data;
	struct ag__worker *w = tr->co.w;
	if (w->stopping)
		return;
	tr->due = 1;
	if (tr->co.state == AG__AGENT_WAIT_TIMER)
		ag__agent_wake(w, &tr->co);
}

static void
arm(struct ag__timer_rt *tr)
{
	const struct ag__timer *t = tr->timer;
	if (!tr->handle_open || tr->co.state == AG__AGENT_DONE || tr->co.w->stopping)
		return;
	uint64_t ms = (uint64_t)(t->interval * 1000.0 + 0.5);
	if (t->flags & AG_TIMER_ONCE) {
		uv_timer_start(&tr->handle, on_due, ms, 0);
	} else {
		ms = ms ? ms : 1;
		uv_timer_start(&tr->handle, on_due, ms, ms);
	}
}

int
ag__timers_start(struct ag__worker *w)
{
	struct ag_app *app = w->app;
	for (size_t i = 0; i < app->ntimers; i++) {
		struct ag__timer *t = app->timers[i];
		struct ag__timer_rt *tr = calloc(1, sizeof(*tr));
		if (!tr)
			return -ENOMEM;
		t->rt = tr;
		tr->timer = t;
		tr->co.w = w;
		tr->co.timer = tr;
		int rc = ag__coro_new(&tr->co.coro, timer_main, tr, 0);
		if (rc < 0)
			return rc;
		if ((rc = uv_timer_init(&w->loop, &tr->handle)) < 0)
			return rc;
		tr->handle.data = tr;
		tr->handle_open = 1;
		/* Up to its first park: from then on it is woken like a parked agent. */
		ag__agent_resume(w, &tr->co);
		if (!(t->flags & AG_TIMER_LEADER))
			arm(tr);
	}
	return 0;
}

void
ag__timers_set_leader(struct ag__worker *w, int leader)
{
	if (!!leader == w->leader)
		return;
	w->leader = !!leader;
	ag__log(w->app, AG_LOG_INFO, "%s",
		leader ? "this worker is now the leader" : "this worker is no longer the leader");
	for (size_t i = 0; i < w->app->ntimers; i++) {
		struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (!tr || !(tr->timer->flags & AG_TIMER_LEADER))
			continue;
		if (leader) {
			arm(tr);
		} else {
			if (tr->handle_open)
				uv_timer_stop(&tr->handle);
			tr->due = 0;
		}
	}
}

void
ag__timers_stop(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntimers; i++) {
		struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (tr && tr->handle_open)
			uv_timer_stop(&tr->handle);
	}
	ag__agents_wake_all(w, AG__AGENT_WAIT_TIMER);
}

void
ag__timers_close(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntimers; i++) {
		struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (tr && tr->handle_open) {
			tr->handle_open = 0;
			uv_close((uv_handle_t *)&tr->handle, NULL);
		}
	}
}

void
ag__timers_free(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntimers; i++) {
		struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (!tr)
			continue;
		ag__coro_free(tr->co.coro);
		free(tr->co.reply);
		free(tr);
		w->app->timers[i]->rt = NULL;
	}
}

AG_EXPORT int
ag_app_is_leader(const struct ag_app *app)
{
	return app && app->worker ? app->worker->leader : 0;
}
