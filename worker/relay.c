/*
 * relay.c — see relay.h.  Everything here runs on the worker's loop, inside
 * a read callback of one leg or the tick; nothing blocks but the transcript
 * appends (a write(2) to a local file, one per utterance).
 */
#include "proto/tmpl.h"
#include "worker/relay.h"
#include "proto/b64.h"
#include "proto/csv.h"
#include "proto/token.h"
#include "proto/twiml.h"
#include "worker/app.h"
#include "worker/call.h"
#include "worker/leg.h"
#include "worker/record.h"
#include "worker/rest.h"
#include "worker/upstream.h"
#include "worker/worker.h"
#include "personas/line.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define PLAYED_ALLOWANCE_BYTES	(50 * 8)	/* 50 ms past the last echoed mark */
#define EXPIRY_MARGIN_S		10
#define MAX_GAP_FILL_MS		10000
#define END_CALL_GRACE_MS	6000	/* a hang-up: audio left to play */
#define SWAP_GRACE_MS		12000	/* a hand-over may take this long */
#define FINISH_WAIT_MS		5000	/* for Twilio to take a call update */
#define RESUME_MARGIN_S		120	/* the update's retries, the dial's setup */
/* 30 s of mu-law as base64, and the lengths of its deltas */
#define REPEAT_AUDIO_MAX	(30 * 8000 * 4 / 3 + 64 * 1024)
#define ROLLOVER_GRACE_MS	60000	/* a turn boundary within this */
#define ROLLOVER_RETRY_MS	60000	/* a fresh session did not open */
#define SAID_MAX_BYTES		(48 * 1024)	/* replayed to a fresh session */

static struct buf scratch;	/* one message being built */

static void on_played(struct call *c);
static void finish(struct call *c, const char *reason);
static void ctl_response_created(struct call *c, struct oa_msg *m);
static void ctl_response_done(struct call *c, struct oa_msg *m);
static void tool_call(struct call *c, struct oa_msg *m);

void
relay_init(struct relay *r)
{
	memset(r, 0, sizeof(*r));
	r->interrupt_response = 1;
	r->transcript_fd = -1;
}

void
relay_reset_playback(struct relay *r)
{
	memset(r->items, 0, sizeof(r->items));
	memset(r->dropped, 0, sizeof(r->dropped));
	r->active_response[0] = '\0';
	r->mcount = 0;
	r->mhead = 0;
	r->gen++;
	r->awaiting_audio = 0;
	r->interrupt_response = 1;
}

void
relay_free(struct relay *r)
{
	struct relay_ctl *k = &r->ctl;

	for (unsigned i = 0; i < k->nresults; i++)
		free(k->results[i].output);
	k->nresults = 0;
	free(k->wrapup);
	free(k->intro);
	k->wrapup = k->intro = NULL;
	free(r->last_answer);
	r->last_answer = NULL;
	free(r->ans_audio);
	free(r->cap_audio);
	r->ans_audio = r->cap_audio = NULL;
	r->ans_len = r->ans_cap = r->cap_len = r->cap_cap = 0;
	for (unsigned i = 0; i < r->nsaid; i++)
		free(r->said[i].text);
	free(r->said);
	r->said = NULL;
	r->nsaid = r->saidcap = 0;
	free(r->marks);
	free(r->batch);
	record_free(r->rec);
	r->rec = NULL;
	if (r->transcript_fd >= 0)
		close(r->transcript_fd);
	r->marks = NULL;
	r->batch = NULL;
	r->transcript_fd = -1;
}

struct buf *
relay_scratch(void)
{
	buf_consume(&scratch, buf_pending(&scratch));
	return &scratch;
}

/* ---------------------------------------------------------------- */
/* to the caller */

/* A mark after the audio sent so far: queued here, sent by the leg. */
static int
send_mark(struct call *c, uint32_t item_uid, uint64_t end_bytes, int done)
{
	struct relay *r = &c->relay;
	char name[32];

	if (r->mcount == r->mcap) {
		unsigned ncap = r->mcap ? r->mcap * 2 : 16;
		struct relay_mark *nm = malloc(ncap * sizeof(*nm));
		if (nm == NULL)
			return -1;
		for (unsigned i = 0; i < r->mcount; i++)
			nm[i] = r->marks[(r->mhead + i) % r->mcap];
		free(r->marks);
		r->marks = nm;
		r->mcap = ncap;
		r->mhead = 0;
	}
	r->seq++;
	r->marks[(r->mhead + r->mcount) % r->mcap] = (struct relay_mark){
		r->seq, item_uid, end_bytes, done };
	r->mcount++;
	snprintf(name, sizeof(name), "%u.%u", r->gen, r->seq);
	return c->leg->mark(c, name);
}

static struct relay_item *
item_by_uid(struct relay *r, uint32_t uid)
{
	for (int i = 0; i < RELAY_ITEMS; i++)
		if (r->items[i].uid == uid)
			return &r->items[i];
	return NULL;
}

static struct relay_item *item_new(struct relay *r);

static struct relay_item *
item_for(struct relay *r, const struct oa_msg *m)
{
	struct relay_item *it;

	for (int i = 0; i < RELAY_ITEMS; i++) {
		it = &r->items[i];
		if (it->uid && it->content_index == m->content_index &&
		    strcmp(it->item_id, m->item_id) == 0)
			return it;
	}
	it = item_new(r);
	snprintf(it->item_id, sizeof(it->item_id), "%s", m->item_id);
	snprintf(it->response_id, sizeof(it->response_id), "%s", m->response_id);
	it->content_index = m->content_index;
	return it;
}

/* A slot for audio in flight, with no model item yet ("": audio of our
 * own, which nothing truncates). */
static struct relay_item *
item_new(struct relay *r)
{
	struct relay_item *it, *oldest = NULL;

	for (int i = 0; i < RELAY_ITEMS; i++) {
		it = &r->items[i];
		if (it->uid == 0)
			goto fill;
		if (oldest == NULL || it->uid < oldest->uid)
			oldest = it;
	}
	it = oldest;	/* more items in flight than we track: forget the oldest */
fill:
	memset(it, 0, sizeof(*it));
	it->uid = ++r->next_uid;
	return it;
}

static int
is_dropped(struct relay *r, const char *response_id)
{
	if (response_id[0] == '\0')
		return 0;
	for (int i = 0; i < RELAY_DROPS; i++)
		if (strcmp(r->dropped[i], response_id) == 0)
			return 1;
	return 0;
}

static void
drop_response(struct relay *r, const char *response_id)
{
	if (response_id[0] == '\0' || is_dropped(r, response_id))
		return;
	snprintf(r->dropped[r->drop_next], sizeof(r->dropped[0]), "%s", response_id);
	r->drop_next = (r->drop_next + 1) % RELAY_DROPS;
}

static void
undrop_response(struct relay *r, const char *response_id)
{
	for (int i = 0; i < RELAY_DROPS; i++)
		if (strcmp(r->dropped[i], response_id) == 0)
			r->dropped[i][0] = '\0';
}

/*
 * Model audio: forwarded as received (base64 untouched), in pieces of at
 * most MARK_INTERVAL_MS, each followed by its own mark, so playback is
 * known to that resolution.  A piece boundary falls on a multiple of 4
 * base64 characters (3 bytes), so the pieces concatenate back to the delta.
 */
static void
audio_to_caller(struct call *c, struct relay_item *it, const char *b64,
    size_t len)
{
	struct worker *w = c->w;
	size_t piece, off = 0;
	unsigned ms = (unsigned)w->conf->mark_interval_ms;

	piece = ms ? (size_t)(ms * 8 / 3) * 4 : len;
	if (piece == 0)
		piece = 4;
	while (off < len && c->state < CALL_CLOSING) {
		size_t n = len - off < piece ? len - off : piece;

		if (c->leg->audio(c, b64 + off, n) != 0)
			return;
		/* the delta was checked when parsed: only the last piece
		 * can end in padding */
		size_t bytes = n / 4 * 3;
		if (n >= 1 && b64[off + n - 1] == '=')
			bytes -= n >= 2 && b64[off + n - 2] == '=' ? 2 : 1;
		it->sent_bytes += bytes;
		c->frames_out++;
		w->relayed++;
		worker_count(w, SC_frames_out, 1);
		send_mark(c, it->uid, it->sent_bytes, 0);
		off += n;
	}
	if (c->slot >= 0)
		atomic_store_explicit(&w->shm->calls[c->slot].cs_frames_out,
		    c->frames_out, memory_order_relaxed);
}

/*
 * The keypad's repeat plays the last answer again as it was heard, not as
 * the model would say it a second time: each response's audio deltas are
 * kept as they go out (base64 as received, each behind its length: copied,
 * never decoded, so the audio path pays a memcpy), at most
 * REPEAT_AUDIO_MAX, and a response that completes becomes the one to
 * repeat.
 */
static void
capture_audio(struct relay *r, const struct oa_msg *m)
{
	size_t need = sizeof(uint32_t) + m->audio_len;
	uint32_t n32 = (uint32_t)m->audio_len;

	if (strcmp(r->cap_resp, m->response_id) != 0) {
		vr_strlcpy(r->cap_resp, m->response_id, sizeof(r->cap_resp));
		r->cap_len = 0;
		r->cap_bad = 0;
	}
	if (r->cap_bad)
		return;
	if (r->cap_len + need > REPEAT_AUDIO_MAX) {
		r->cap_bad = 1;
		return;
	}
	if (r->cap_len + need > r->cap_cap) {
		size_t ncap = r->cap_cap ? r->cap_cap * 2 : 32768;
		unsigned char *nb;

		while (ncap < r->cap_len + need)
			ncap *= 2;
		if (ncap > REPEAT_AUDIO_MAX)
			ncap = REPEAT_AUDIO_MAX;
		if ((nb = realloc(r->cap_audio, ncap)) == NULL) {
			r->cap_bad = 1;
			return;
		}
		r->cap_audio = nb;
		r->cap_cap = ncap;
	}
	memcpy(r->cap_audio + r->cap_len, &n32, sizeof(n32));
	memcpy(r->cap_audio + r->cap_len + sizeof(n32), m->audio, m->audio_len);
	r->cap_len += need;
}

/* A response completed: its audio, if whole, is the one to repeat. */
static void
capture_done(struct relay *r, const struct oa_msg *m)
{
	unsigned char *t;
	size_t tc;

	if (strcmp(r->cap_resp, m->response_id) != 0)
		return;
	if (!r->cap_bad && r->cap_len > 0 && strcmp(m->status,
	    "completed") == 0) {
		t = r->ans_audio;
		tc = r->ans_cap;
		r->ans_audio = r->cap_audio;
		r->ans_cap = r->cap_cap;
		r->ans_len = r->cap_len;
		r->cap_audio = t;
		r->cap_cap = tc;
	}
	r->cap_resp[0] = '\0';
	r->cap_len = 0;
	r->cap_bad = 0;
}

/* Play the last answer's audio again, marked like the model's so that the
 * caller can talk over it.  0, or -1 when there is none or something
 * plays or is being said. */
static int
replay_answer(struct call *c)
{
	struct relay *r = &c->relay;
	struct relay_item *it;
	size_t off = 0;
	uint32_t n;

	if (r->ans_len == 0 || c->leg->audio == NULL || r->mcount > 0 ||
	    relay_model_busy(c) || c->state != CALL_LIVE)
		return -1;
	it = item_new(r);
	/* delta by delta, as each went out the first time */
	while (off + sizeof(n) <= r->ans_len && c->state < CALL_CLOSING) {
		memcpy(&n, r->ans_audio + off, sizeof(n));
		off += sizeof(n);
		if (n > r->ans_len - off)
			break;
		audio_to_caller(c, it, (const char *)r->ans_audio + off, n);
		off += n;
	}
	if (c->state < CALL_CLOSING) {
		it->done_sent = 1;
		send_mark(c, it->uid, it->sent_bytes, 1);
	}
	return 0;
}

/* "<generation>.<seq>", both decimal without leading junk.  0 or -1. */
static int
parse_mark_name(const char *s, uint32_t *gen, uint32_t *seq)
{
	uint64_t x = 0;
	int part = 0, digits = 0;

	for (;; s++) {
		if (*s >= '0' && *s <= '9') {
			x = x * 10 + (uint64_t)(*s - '0');
			if (x > UINT32_MAX || ++digits > 10)
				return -1;
			continue;
		}
		if (digits == 0 || (*s != '.' && *s != '\0') ||
		    (*s == '.') != (part == 0))
			return -1;
		if (part == 0)
			*gen = (uint32_t)x;
		else
			*seq = (uint32_t)x;
		if (*s == '\0')
			return part == 1 ? 0 : -1;
		part++;
		x = 0;
		digits = 0;
	}
}

void
relay_caller_mark(struct call *c, const char *name)
{
	struct relay *r = &c->relay;
	uint32_t gen, seq;

	if (parse_mark_name(name, &gen, &seq) != 0)
		return;		/* not one of ours */
	if (gen != r->gen)
		return;		/* flushed by a clear, not played */
	while (r->mcount > 0) {
		struct relay_mark *mk = &r->marks[r->mhead];
		if ((int32_t)(mk->seq - seq) > 0)
			break;	/* a later mark: this echo was already handled */
		struct relay_item *it = item_by_uid(r, mk->item_uid);
		if (it != NULL) {
			if (mk->done) {
				memset(it, 0, sizeof(*it));	/* played to the end */
			} else if (mk->end_bytes > it->played_bytes)
				it->played_bytes = mk->end_bytes;
		}
		r->mhead = (r->mhead + 1) % r->mcap;
		r->mcount--;
	}
	if (r->mcount == 0)
		on_played(c);
}

/*
 * The caller started talking (server VAD).  If assistant audio is still
 * queued at Twilio or being generated, stop it: clear Twilio's buffer,
 * ignore what the cancelled response still sends, and truncate every item
 * at what the caller heard (never more than was sent).  Nothing is done
 * when nothing is playing: the caller simply spoke.
 */
static void
barge_in(struct call *c, struct upstream *up, uint64_t t_us)
{
	struct relay *r = &c->relay;
	int playing = r->mcount > 0, first = 1;

	if (!playing && r->active_response[0] == '\0')
		return;
	if (playing) {
		c->leg->clear(c);
		r->gen++;		/* every pending mark is now "flushed" */
		r->mcount = 0;
		r->mhead = 0;
		shm_hist_add(&c->w->sw->sw_hist[SH_BARGEIN], mono_us() - t_us);
		r->bargeins++;
	}
	drop_response(r, r->active_response);
	for (int i = 0; i < RELAY_ITEMS; i++) {
		struct relay_item *it = &r->items[i];
		uint64_t end;

		if (it->uid == 0)
			continue;
		drop_response(r, it->response_id);
		if (playing && it->sent_bytes > 0) {
			end = it->played_bytes + (first || it->played_bytes ?
			    PLAYED_ALLOWANCE_BYTES : 0);
			if (end > it->sent_bytes)
				end = it->sent_bytes;
			if (it->played_bytes < it->sent_bytes &&
			    it->item_id[0] != '\0') {
				struct buf *b = relay_scratch();
				if (oa_build_truncate(b, it->item_id, it->content_index,
				    end / 8) == 0)
					upstream_send(up, buf_head(b), buf_pending(b));
				record_cut(c, it->item_id, end / 8);
				log_set_call(call_sid_of(c));
				log_debug("barge-in: %s truncated at %llu of %llu ms",
				    it->item_id, (unsigned long long)end / 8,
				    (unsigned long long)it->sent_bytes / 8);
				log_set_call(NULL);
			}
			first = 0;
		}
		memset(it, 0, sizeof(*it));
	}
	if (!r->interrupt_response && r->active_response[0] != '\0') {
		struct buf *b = relay_scratch();
		if (oa_build_response_cancel(b) == 0)
			upstream_send(up, buf_head(b), buf_pending(b));
	}
}

/* ---------------------------------------------------------------- */
/* transcripts */

static void
transcript_line(struct call *c, const char *role, const char *text)
{
	struct conf *cf = c->w->conf;
	char when[32], path[1024];
	json_t *j;
	char *line;

	if (text == NULL || text[0] == '\0')
		return;
	iso8601_utc(wall_ms(), when, sizeof(when));
	if (cf->transcripts_dir[0] != '\0') {
		if (c->relay.transcript_fd == -1) {	/* -2: gave up */
			snprintf(path, sizeof(path), "%s/%s.jsonl", cf->transcripts_dir,
			    call_sid_of(c));
			c->relay.transcript_fd = open(path, O_WRONLY | O_APPEND |
			    O_CREAT | O_CLOEXEC, 0640);
			if (c->relay.transcript_fd < 0) {
				log_set_call(call_sid_of(c));
				log_warn("transcript %s", path);
				log_set_call(NULL);
				c->relay.transcript_fd = -2;	/* do not retry */
			}
		}
		if (c->relay.transcript_fd >= 0) {
			j = json_pack("{s:s,s:s,s:s}", "t", when, "role", role,
			    "text", text);
			line = j ? json_dumps(j, JSON_COMPACT) : NULL;
			if (line != NULL) {
				size_t n = strlen(line);
				line[n] = '\n';
				if (write(c->relay.transcript_fd, line, n + 1) < 0)
					log_debug("transcript write: %s", strerror(errno));
				free(line);
			}
			json_decref(j);
		}
	}
	if (cf->transcript_csv_path[0] != '\0') {
		/* one write per line, O_APPEND: lines of several workers never
		 * mix; every cell through csv_cell, so no caller or sentence
		 * can break a row or run as a formula; line ends in the text
		 * become spaces, to keep one row a line */
		size_t tl = strlen(text), cap = tl * 2 + 256, k;
		const char *cells[4] = { call_sid_of(c), c->tok.caller, role, text };
		char *out = malloc(cap), *flat = strdup(text);
		int fd;

		if (out == NULL || flat == NULL) {
			free(out);
			free(flat);
			return;
		}
		for (char *p = flat; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		cells[3] = flat;
		k = (size_t)snprintf(out, cap, "%s", when);
		for (int i = 0; i < 4 && k + 2 < cap; i++) {
			out[k++] = ',';
			k += csv_cell(cells[i], strlen(cells[i]), out + k, cap - k);
		}
		if (k + 2 > cap) {	/* cannot happen: cap covers every cell */
			free(out);
			free(flat);
			return;
		}
		out[k++] = '\n';
		free(flat);
		fd = open(cf->transcript_csv_path, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC, 0640);
		if (fd >= 0) {
			if (lseek(fd, 0, SEEK_END) == 0 &&
			    write(fd, "timestamp,call_sid,phone_number,role,text\n", 42) < 0)
				log_debug("transcript csv header: %s", strerror(errno));
			if (write(fd, out, k) < 0)
				log_debug("transcript csv: %s", strerror(errno));
			close(fd);
		}
		free(out);
	}
}

/* Keep a line of the conversation for a fresh session; the oldest go
 * first when the total passes SAID_MAX_BYTES. */
static void
said_add(struct relay *r, char role, const char *text)
{
	size_t n = strlen(text);

	if (n == 0 || n > SAID_MAX_BYTES)
		return;
	while (r->nsaid > 0 && r->said_bytes + n > SAID_MAX_BYTES) {
		r->said_bytes -= strlen(r->said[0].text);
		free(r->said[0].text);
		memmove(r->said, r->said + 1, (r->nsaid - 1) * sizeof(*r->said));
		r->nsaid--;
	}
	if (r->nsaid == r->saidcap) {
		unsigned ncap = r->saidcap ? r->saidcap * 2 : 32;
		struct relay_said *ns = realloc(r->said, ncap * sizeof(*ns));
		if (ns == NULL)
			return;
		r->said = ns;
		r->saidcap = ncap;
	}
	if ((r->said[r->nsaid].text = strdup(text)) == NULL)
		return;
	r->said[r->nsaid++].role = role;
	r->said_bytes += n;
}

void
relay_said_heard(struct call *c, const char *heard)
{
	struct relay *r = &c->relay;
	unsigned i = r->nsaid;
	size_t n = heard != NULL ? strlen(heard) : 0;
	char *t = NULL;

	while (i > 0 && r->said[i - 1].role != 'a')
		i--;
	if (i == 0)
		return;
	i--;
	if (n > 0 && (t = strdup(heard)) == NULL)
		return;
	r->said_bytes -= strlen(r->said[i].text);
	free(r->said[i].text);
	if (t != NULL) {
		r->said[i].text = t;
		r->said_bytes += n;
		return;
	}
	/* nothing of it was heard */
	memmove(r->said + i, r->said + i + 1, (r->nsaid - i - 1) *
	    sizeof(*r->said));
	r->nsaid--;
}

void
relay_transcript(struct call *c, const char *role, const char *text)
{
	transcript_line(c, role, text);
	if (text[0] != '\0')
		said_add(&c->relay, role[0] == 'c' ? 'c' : 'a', text);
	record_utterance(c, role, text, NULL);
	if (c->app->transcript != NULL && text[0] != '\0')
		c->app->transcript(c, role, text);
}

/* ---------------------------------------------------------------- */
/* from the model */

void
relay_upstream_event(struct call *c, struct upstream *up, struct oa_msg *m)
{
	struct relay *r = &c->relay;
	uint64_t t_us = mono_us();

	if (c->state >= CALL_CLOSING)
		return;
	if (up != c->up) {
		/* the next persona's session, not in use yet */
		if (r->ctl.next == up && m->ev == OA_EV_SESSION_CREATED)
			r->ctl.next_expires = m->expires_at;
		if (r->ctl.next == up && m->ev == OA_EV_ERROR) {
			log_set_call(call_sid_of(c));
			log_warnx("openai error (next session): %s: %s", m->err_code,
			    m->text);
			log_set_call(NULL);
		}
		return;
	}
	switch (m->ev) {
	case OA_EV_SESSION_CREATED:
		r->session_expires = m->expires_at;
		break;
	case OA_EV_SESSION_UPDATED:
		if (m->interrupt_response >= 0)
			r->interrupt_response = m->interrupt_response;
		break;
	case OA_EV_SPEECH_STARTED:
		if (c->greet_at_ms != 0) {
			/* the callee spoke first: answering them is the
			 * greeting */
			c->greet_at_ms = 0;
			log_set_call(call_sid_of(c));
			log_debug("greeting: the callee spoke first");
			log_set_call(NULL);
		}
		barge_in(c, up, t_us);
		break;
	case OA_EV_SPEECH_STOPPED:
		r->speech_stopped_us = t_us;
		r->awaiting_audio = 1;
		break;
	case OA_EV_RESPONSE_CREATED:
		snprintf(r->active_response, sizeof(r->active_response), "%s",
		    m->response_id);
		ctl_response_created(c, m);
		break;
	case OA_EV_AUDIO_DELTA:
		if (is_dropped(r, m->response_id) || c->state != CALL_LIVE ||
		    r->ctl.finishing) {
			r->dropped_deltas++;
			break;
		}
		if (r->awaiting_audio) {
			r->awaiting_audio = 0;
			shm_hist_add(&c->w->sw->sw_hist[SH_RESPONSE],
			    t_us - r->speech_stopped_us);
		}
		if (!c->greet_timed) {
			/* the first audio of a call that greets is its greeting */
			c->greet_timed = 1;
			if (c->persona->greeting != NULL &&
			    c->persona->greeting[0] != '\0')
				shm_hist_add(&c->w->sw->sw_hist[SH_GREETING],
				    t_us - c->start_us);
		}
		audio_to_caller(c, item_for(r, m), m->audio, m->audio_len);
		capture_audio(r, m);
		break;
	case OA_EV_AUDIO_DONE:
		if (!is_dropped(r, m->response_id) && c->state == CALL_LIVE) {
			struct relay_item *it = item_for(r, m);
			if (!it->done_sent) {
				it->done_sent = 1;
				send_mark(c, it->uid, it->sent_bytes, 1);
			}
		}
		break;
	case OA_EV_RESPONSE_DONE:
		if (strcmp(r->active_response, m->response_id) == 0)
			r->active_response[0] = '\0';
		if (is_dropped(r, m->response_id))
			r->cap_resp[0] = '\0';	/* cut off: not one to repeat */
		capture_done(r, m);
		undrop_response(r, m->response_id);
		if (strcmp(m->status, "failed") == 0 || strcmp(m->status,
		    "incomplete") == 0) {
			log_set_call(call_sid_of(c));
			log_warnx("openai: response %s %s (%s)", m->response_id,
			    m->status, m->status_reason);
			log_set_call(NULL);
		}
		record_usage(c, m);
		ctl_response_done(c, m);
		break;
	case OA_EV_TRANSCRIPT_DONE:
		transcript_line(c, "assistant", m->text);
		said_add(r, 'a', m->text);
		record_utterance(c, "assistant", m->text, m->item_id);
		if (m->text[0] != '\0') {
			/* for a caller who presses the key to hear it again */
			free(r->last_answer);
			r->last_answer = strndup(m->text, 2000);
		}
		if (c->app->transcript != NULL && m->text[0] != '\0')
			c->app->transcript(c, "assistant", m->text);
		break;
	case OA_EV_INPUT_TRANSCRIPT_DONE:
		transcript_line(c, "caller", m->text);
		said_add(r, 'c', m->text);
		record_utterance(c, "caller", m->text, NULL);
		if (c->app->transcript != NULL && m->text[0] != '\0')
			c->app->transcript(c, "caller", m->text);
		break;
	case OA_EV_FUNCTION_ARGS_DONE:
		tool_call(c, m);
		break;
	case OA_EV_ERROR:
		/* the socket stays open: log, count, go on (protocols.md 8.10) */
		worker_count(c->w, SC_upstream_error_events, 1);
		log_set_call(call_sid_of(c));
		if (strcmp(m->err_code, "response_cancel_not_active") == 0 ||
		    strcmp(m->err_code, "conversation_already_has_active_response") == 0)
			log_debug("openai: %s", m->err_code);
		else if (++r->error_logs <= 5)
			/* a server that floods errors fills the counter, not the log */
			log_warnx("openai error: %s%s%s: %s%s", m->err_type,
			    m->err_code[0] ? "/" : "", m->err_code, m->text,
			    r->error_logs == 5 ? " (further errors of this call "
			    "are only counted)" : "");
		log_set_call(NULL);
		break;
	default:
		break;
	}
}

static void next_open(struct call *c, struct upstream *up);

void
relay_upstream_open(struct call *c, struct upstream *up)
{
	const struct persona *p = c->persona;
	struct buf *b;

	if (c->relay.ctl.next == up) {
		next_open(c, up);
		return;
	}
	log_set_call(call_sid_of(c));
	log_debug("openai session open with %s (persona %s)", up->peer, p->id);
	log_set_call(NULL);
	if (c->state < CALL_LIVE) {
		/* open before the stream's `start`, which brings the call's
		 * direction and an outbound call's variables: the greeting and
		 * whether to wait for the callee are decided then */
		c->greet_on_start = 1;
		return;
	}
	if (p->greeting != NULL && p->greeting[0] != '\0') {
		char *g;
		int wait;

		/* the app may hold the greeting for the callee's first words
		 * (an outbound callee answers with "hello"): the model speaks
		 * once they have (the VAD's response), on a `human` verdict
		 * (one that came already greets now) or after the wait */
		if (!c->amd_human && (wait = app_greeting(c)) > 0) {
			c->greet_at_ms = mono_ms() + (uint64_t)wait;
			return;
		}
		g = call_fill(c, p->greeting);
		b = relay_scratch();
		if (oa_build_response_create(b, (enum oa_dialect)c->w->conf->openai_dialect,
		    g ? g : p->greeting, 0) == 0)
			upstream_send(up, buf_head(b), buf_pending(b));
		free(g);
	}
}

void
relay_upstream_failed(struct call *c, struct upstream *up, const char *why)
{
	if (c->state >= CALL_CLOSING)
		return;
	if (c->relay.ctl.next == up && c->relay.ctl.rollover) {
		/* the call goes on in its session; another try later */
		struct relay_ctl *k = &c->relay.ctl;
		log_set_call(call_sid_of(c));
		log_warnx("openai: the fresh session did not open (%s); staying "
		    "on this one, trying again in %d s", why,
		    ROLLOVER_RETRY_MS / 1000);
		log_set_call(NULL);
		k->next = NULL;
		k->rollover = 0;
		k->sw = k->sw_before;
		k->rollover_at_ms = mono_ms() + ROLLOVER_RETRY_MS;
		return;
	}
	if (c->relay.ctl.next == up) {
		snprintf(c->fail_reason, sizeof(c->fail_reason),
		    "openai: the session of persona %s did not open: %s",
		    up->persona->id, why);
		call_close(c, c->fail_reason, 1, 1011);
		return;
	}
	if (up != c->up)
		return;
	snprintf(c->fail_reason, sizeof(c->fail_reason), "openai: %s", why);
	/* closing the stream makes Twilio play the TwiML after <Connect>:
	 * the caller hears the goodbye, not dead air */
	call_close(c, c->fail_reason, 1, 1011);
}

void
relay_upstream_gone(struct call *c, struct upstream *up)
{
	if (c->up == up)
		c->up = NULL;
	if (c->relay.ctl.next == up)
		c->relay.ctl.next = NULL;
	call_release(c);
}

/* ---------------------------------------------------------------- */
/* from the caller */

int
relay_start(struct call *c)
{
	c->up = upstream_new(c, c->persona);
	if (c->up == NULL)
		return -1;
	c->refs++;
	return 0;
}

void
relay_stop(struct call *c)
{
	relay_flush_batch(c);	/* the caller's last frames still go */
	if (c->up != NULL)
		upstream_close(c->up, c->reason);
	if (c->relay.ctl.next != NULL)
		upstream_close(c->relay.ctl.next, "call over");
}

static void
send_append(struct call *c, const char *b64, size_t len)
{
	struct buf *b = relay_scratch();

	if (oa_build_append_parsed(b, b64, len) == 0 &&
	    upstream_send(c->up, buf_head(b), buf_pending(b)) == 0)
		c->w->relayed++;	/* timed when the read callback ends */
}

void
relay_caller_audio(struct call *c, const char *b64, size_t b64_len,
    size_t audio_len)
{
	struct worker *w = c->w;
	struct relay *r = &c->relay;
	unsigned per = (unsigned)w->conf->frames_per_append;

	if (c->up == NULL)
		return;
	if (c->gap_fill_ms > 0) {
		/* lost frames: silence keeps the model's timeline aligned,
		 * after the frames gathered before the gap */
		relay_flush_batch(c);
		unsigned ms = c->gap_fill_ms > MAX_GAP_FILL_MS ? MAX_GAP_FILL_MS :
		    (unsigned)c->gap_fill_ms;
		struct buf *b = relay_scratch();
		c->gap_fill_ms = 0;
		if (oa_build_append_silence(b, ms) == 0)
			upstream_send(c->up, buf_head(b), buf_pending(b));
	}
	if (per <= 1) {
		send_append(c, b64, b64_len);
		return;
	}
	/* several frames per append: decode, gather, encode once */
	size_t need = r->batch_len + audio_len + 3;
	long dl;
	if (need > r->batch_cap) {
		size_t ncap = r->batch_cap ? r->batch_cap : (size_t)per * 200;
		unsigned char *nb;
		while (ncap < need)
			ncap *= 2;
		if ((nb = realloc(r->batch, ncap)) == NULL)
			return;
		r->batch = nb;
		r->batch_cap = ncap;
	}
	/* checked by the parser: room for b64_len / 4 * 3 was made */
	if ((dl = b64_decode(b64, b64_len,
	    r->batch + r->batch_len)) < 0)
		return;
	r->batch_len += (size_t)dl;
	if (r->batch_frames++ == 0) {
		r->batch_ms = mono_ms();
		worker_batch_opened(w);
	}
	if (r->batch_frames >= per)
		relay_flush_batch(c);
}

int
relay_batch_due(struct call *c, uint64_t now)
{
	struct relay *r = &c->relay;

	if (r->batch_frames == 0)
		return 0;
	/* no frame waits longer than the batch would have taken to fill */
	if (now - r->batch_ms >=
	    (uint64_t)c->w->conf->frames_per_append * 20)
		relay_flush_batch(c);
	return r->batch_frames > 0;
}

/* Send the caller frames gathered so far as one append. */
void
relay_flush_batch(struct call *c)
{
	static char enc[64 * 1024];
	struct relay *r = &c->relay;
	size_t elen = 0;

	if (r->batch_frames == 0 || c->up == NULL)
		return;
	if ((r->batch_len + 2) / 3 * 4 + 1 <= sizeof(enc)) {
		elen = b64_encode(r->batch, r->batch_len, enc);
		send_append(c, enc, elen);
	}
	r->batch_len = 0;
	r->batch_frames = 0;
}

/* ---------------------------------------------------------------- */
/* services for apps */

enum oa_dialect
relay_dialect(const struct call *c)
{
	return (enum oa_dialect)c->w->conf->openai_dialect;
}

/* Send the event built in b to the session in use. */
void
relay_send_up(struct call *c, struct buf *b)
{
	if (c->up != NULL)
		upstream_send(c->up, buf_head(b), buf_pending(b));
}

static void
ctl_log(struct call *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
ctl_log(struct call *c, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_set_call(call_sid_of(c));
	if (level == 'w')
		log_warnx("%s", msg);
	else if (level == 'd')
		log_debug("%s", msg);
	else
		log_info("%s", msg);
	log_set_call(NULL);
}

void
relay_say(struct call *c, const char *instructions, int no_tools)
{
	struct buf *b = relay_scratch();

	if (oa_build_response_create(b, relay_dialect(c), instructions, no_tools) == 0)
		relay_send_up(c, b);
}

int
relay_model_busy(const struct call *c)
{
	return c->relay.active_response[0] != '\0';
}

/* Nothing is being generated and the caller heard everything sent. */
static int
quiet(const struct call *c)
{
	return c->relay.active_response[0] == '\0' && c->relay.mcount == 0;
}

void
relay_tool_result(struct call *c, const char *call_id, const char *output,
    int go_on)
{
	struct relay_ctl *k = &c->relay.ctl;
	struct relay_result *r;

	if (go_on)
		k->want_response = 1;
	if (k->nresults == RELAY_RESULTS)
		return;		/* more than a response calls: the model goes on */
	r = &k->results[k->nresults];
	vr_strlcpy(r->call_id, call_id, sizeof(r->call_id));
	if ((r->output = strdup(output)) != NULL)
		k->nresults++;
}

/* The response is over: send what its tools returned, then let the model
 * go on unless the call is ending. */
static void
results_flush(struct call *c)
{
	struct relay_ctl *k = &c->relay.ctl;
	struct buf *b;

	for (unsigned i = 0; i < k->nresults; i++) {
		b = relay_scratch();
		if (oa_build_function_output(b, k->results[i].call_id,
		    k->results[i].output) == 0)
			relay_send_up(c, b);
		free(k->results[i].output);
		k->results[i].output = NULL;
	}
	k->nresults = 0;
	if (k->want_response && !k->ending && k->wrap == RELAY_WRAP_NONE)
		relay_say(c, NULL, 0);
	k->want_response = 0;
}

void
relay_hangup(struct call *c, const char *reason)
{
	struct relay_ctl *k = &c->relay.ctl;

	if (k->ending)
		return;
	k->ending = 1;
	k->ending_reason = reason;
	k->ending_deadline_ms = mono_ms() + END_CALL_GRACE_MS;
}

/*
 * The call is over: end it at Twilio too (an agent that said goodbye must
 * not leave the caller on an open line, and closing the stream alone runs
 * whatever TwiML follows <Connect>), then close the stream once Twilio took
 * the update, or FINISH_WAIT_MS later.  Without an account, the stream
 * closes now, as before.
 */
static void transfer_now(struct call *c);

static void
finish(struct call *c, const char *reason)
{
	struct relay_ctl *k = &c->relay.ctl;

	if (k->finishing || c->state != CALL_LIVE)
		return;
	if (c->leg->ends_itself) {
		/* ConversationRelay: `end` with the hand-off (a transfer is
		 * dialled by the <Connect action>'s answer), see leg_crelay.c */
		call_close(c, reason, 0, 1000);
		return;
	}
	if (k->transfer != NULL && !k->limit_reached) {
		transfer_now(c);
		return;
	}
	if (rest_update_call(c->w->rest, call_sid_of(c), "Status", "completed",
	    c->id) != 0) {
		call_close(c, reason, 0, 1000);
		return;
	}
	k->finishing = 1;
	k->finish_reason = reason;
	k->finish_deadline_ms = mono_ms() + FINISH_WAIT_MS;
	ctl_log(c, 'd', "ending the call at twilio (%s)", reason);
}

/*
 * The hand-over was heard: Twilio is to dial the target instead of running
 * the stream.  What follows the <Dial> runs when nobody answers (or the
 * person hangs up first): back to the line's webhook, or the voicemail
 * message and a hang-up.
 */
/*
 * A warm transfer: the person who answers has read who is calling and what
 * they said (the caller's last lines of the transcript), texted to the
 * target's number, or posted to the line's webhook, before the dial.
 */
static void
summary_text(struct call *c, char *body, size_t len)
{
	struct relay *r = &c->relay;
	unsigned first, shown = 0;
	int n;

	n = snprintf(body, len, "Transferred call from %s (%s). Caller said:",
	    c->tok.caller, c->tok.route);
	first = r->nsaid;
	while (first > 0 && shown < 3)
		if (r->said[--first].role == 'c')
			shown++;
	shown = 0;
	for (unsigned i = first; i < r->nsaid && n > 0 && (size_t)n + 8 < len;
	    i++) {
		if (r->said[i].role != 'c')
			continue;
		n += snprintf(body + n, len - (size_t)n, "%s \"%.200s\"",
		    shown++ ? " /" : "", r->said[i].text);
	}
	if (shown == 0 && n > 0 && (size_t)n + 16 < len)
		snprintf(body + n, len - (size_t)n, " (nothing yet)");
}

static int hook_send(struct call *c, const struct line_hook *h,
    const char *body, const char *tag);

/* The summary and the conversation's last lines, as JSON, signed like a
 * tool's webhook.  Sent, not waited for: the dial goes ahead whatever the
 * webhook answers (counted in transfer_summaries and _failed). */
static void
summary_hook(struct call *c, const struct line_target *t,
    const struct line_hook *h, const char *summary)
{
	struct relay *r = &c->relay;
	json_t *doc, *lines;
	char *body;
	int rc;

	lines = json_array();
	for (unsigned i = r->nsaid > 10 ? r->nsaid - 10 : 0; i < r->nsaid; i++)
		json_array_append_new(lines, json_pack("{s:s,s:s}", "role",
		    r->said[i].role == 'c' ? "caller" : "assistant", "text",
		    r->said[i].text));
	doc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "call_sid",
	    call_sid_of(c), "line", c->tok.route, "caller", c->tok.caller,
	    "target", t->label, "to", t->number != NULL ? t->number : t->sip,
	    "summary", summary, "transcript", lines);
	body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	rc = body != NULL ? hook_send(c, h, body, RELAY_SUMMARY_TAG) : -1;
	free(body);
	if (rc != 0)
		worker_count(c->w, SC_transfer_summaries_failed, 1);
	if (rc == -2)
		ctl_log(c, 'w', "no summary for %s: the webhook cannot be "
		    "reached", t->label);
}

static void
transfer_summary(struct call *c, const struct line_target *t)
{
	const struct line *l = c->line;
	char body[700];

	summary_text(c, body, sizeof(body));
	if (l->transfer_hook != NULL)
		summary_hook(c, t, l->transfer_hook, body);
	if (!l->transfer_warm_sms || t->number == NULL)
		return;
	if (rest_send_sms(c->w->rest, t->number, body, call_sid_of(c)) != 0)
		ctl_log(c, 'w', "no summary for %s: SMS is not configured",
		    t->label);
}

static void
transfer_now(struct call *c)
{
	struct relay_ctl *k = &c->relay.ctl;
	const struct line *l = c->line;
	const struct line_target *t = k->transfer;
	const char *pub = c->w->conf->public_url;
	struct twiml tw;
	char action[1200], marker[RESUME_MAX_LEN];
	int have_pub = pub != NULL && pub[0] != '\0', back = 0;

	transfer_summary(c, t);
	if (l->transfer_back && have_pub &&
	    resume_make(c->w->conf->stream_secret, call_sid_of(c), l->id,
	    c->outbound, wall_ms() / 1000 + (uint64_t)l->transfer_timeout + RESUME_MARGIN_S,
	    marker, sizeof(marker)) > 0)
		back = 1;
	twiml_begin(&tw);
	if (have_pub) {
		/*
		 * The dial's end comes to the master's /transfer/<line>/done
		 * with how long the dialled party talked (the call's record
		 * bills it) and gets what follows there: a hang-up, or for
		 * nobody answering the way back to the line (the resume
		 * marker rides in the URL) or the voicemail message.  Verbs
		 * after a <Dial action> never run.
		 */
		snprintf(action, sizeof(action), "%s/transfer/%s/done%s%s", pub,
		    l->id, back ? "?resume=" : "", back ? marker : "");
		twiml_dial_with(&tw, t->number, t->sip, l->transfer_caller_id,
		    l->transfer_timeout, action);
	} else {
		/* no public URL to come back to: what follows the <Dial>
		 * runs when nobody answers, and the dial's length is not
		 * known here */
		twiml_dial_with(&tw, t->number, t->sip, l->transfer_caller_id,
		    l->transfer_timeout, NULL);
		twiml_say(&tw, l->transfer_voicemail ? l->transfer_voicemail :
		    "Goodbye.", NULL);
		twiml_hangup(&tw);
	}
	if (twiml_end(&tw) != 0 || rest_update_call(c->w->rest, call_sid_of(c),
	    "Twiml", tw.buf, c->id) != 0) {
		twiml_free(&tw);
		relay_rest_done(c, 0);
		return;
	}
	twiml_free(&tw);
	k->finishing = 1;
	k->finish_reason = "transferred";
	k->finish_deadline_ms = mono_ms() + FINISH_WAIT_MS;
	ctl_log(c, 'i', "transferring the caller to %s", t->label);
}

void
relay_rest_done(struct call *c, int ok)
{
	struct relay_ctl *k = &c->relay.ctl;

	if (c->state != CALL_LIVE)
		return;
	if (k->transfer != NULL) {
		worker_count(c->w, ok ? SC_transfers : SC_transfers_failed, 1);
		if (!ok) {
			/* the caller is still on the stream: the model says so */
			ctl_log(c, 'w', "transfer to %s failed; the call goes on",
			    k->transfer->label);
			k->transfer = NULL;
			k->transfer_arm = 0;
			k->finishing = 0;
			k->ending = 0;
			relay_say(c, "The transfer did not go through. Tell the "
			    "caller so in one short sentence and offer to help "
			    "another way.", 0);
			return;
		}
		record_transfer(c, k->transfer->number != NULL ?
		    k->transfer->number : k->transfer->sip);
		ctl_log(c, 'i', "transferred to %s", k->transfer->label);
	}
	if (!k->finishing)
		return;
	if (!ok)
		ctl_log(c, 'w', "twilio did not take the call update; closing "
		    "the stream");
	call_close(c, k->finish_reason, 0, 1000);
}

void
relay_set_limit(struct call *c, uint64_t at_ms, const char *wrapup,
    unsigned grace_s, double quota_minutes)
{
	struct relay_ctl *k = &c->relay.ctl;

	k->limit_at_ms = at_ms;
	k->quota_minutes = quota_minutes;
	k->wrapup_grace_s = grace_s;
	free(k->wrapup);
	k->wrapup = wrapup != NULL ? strdup(wrapup) : NULL;
}

int
relay_limit_reached(const struct call *c)
{
	return c->relay.ctl.limit_reached;
}

uint64_t
relay_remaining_ms(const struct call *c, uint64_t now)
{
	const struct relay_ctl *k = &c->relay.ctl;

	if (k->limit_at_ms == 0)
		return UINT64_MAX;
	return now >= k->limit_at_ms ? 0 : k->limit_at_ms - now;
}

static void
wrapup_request(struct call *c)
{
	struct relay_ctl *k = &c->relay.ctl;

	relay_say(c, k->wrapup, 1);
	k->wrap = RELAY_WRAP_ASKED;
	k->wrap_response[0] = '\0';
	k->wrap_done = 0;
}

static void
limit_reached(struct call *c, uint64_t now)
{
	struct relay_ctl *k = &c->relay.ctl;

	k->limit_reached = 1;
	k->wrap_deadline_ms = now + (uint64_t)k->wrapup_grace_s * 1000;
	ctl_log(c, 'i', "time limit reached (%.2f minutes): asking %s to wrap up",
	    k->quota_minutes, c->persona->id);
	if (k->sw == RELAY_SW_OPENING && k->next != NULL) {
		/* no new persona for a caller whose time is up */
		upstream_close(k->next, "time limit");
		k->sw = k->rollover ? k->sw_before : RELAY_SW_NONE;
		k->rollover = 0;
	}
	if (k->wrapup == NULL)
		finish(c, "time limit reached");	/* no goodbye */
	else if (!relay_model_busy(c))
		wrapup_request(c);
	else
		k->wrap = RELAY_WRAP_WANTED;	/* after the current response */
}

int
relay_send_sms(struct call *c, const char *body)
{
	if (!rest_sms_configured(c->w->rest))
		return -1;
	if (rest_send_sms(c->w->rest, c->tok.caller, body, call_sid_of(c)) != 0) {
		ctl_log(c, 'i', "no SMS: %s is not a phone number", c->masked);
		return -1;
	}
	return 0;
}

int
relay_transfer(struct call *c, const char *label, const char *handover)
{
	struct relay_ctl *k = &c->relay.ctl;
	const struct line_target *t;

	t = c->line != NULL && label != NULL ? line_target_find(c->line, label) :
	    NULL;
	/* a relay call is transferred by its <Connect action>, no REST */
	if (t == NULL || (!c->leg->ends_itself && !rest_calls_configured(c->w->rest)) ||
	    k->ending ||
	    k->finishing || k->limit_reached || c->state != CALL_LIVE)
		return -1;
	k->transfer = t;
	relay_hangup(c, "transferred");
	if (handover != NULL && !relay_model_busy(c)) {
		relay_say(c, handover, 1);
		k->transfer_arm = 1;	/* until its response is created */
	}
	ctl_log(c, 'd', "transfer to %s once the hand-over was heard", t->label);
	return 0;
}

/* ---------------------------------------------------------------- */
/* the keypad */

/* Tell the model, as the caller's words, and let it answer if it is quiet. */
static void
key_to_model(struct call *c, char digit)
{
	char text[64];
	struct buf *b = relay_scratch();

	snprintf(text, sizeof(text), "The caller pressed %c", digit);
	if (oa_build_text_item(b, text, 0) == 0)
		relay_send_up(c, b);
	if (!relay_model_busy(c) && !c->relay.ctl.ending)
		relay_say(c, NULL, 0);
}

void
relay_keypress(struct call *c, char digit)
{
	struct relay *r = &c->relay;
	const struct line_key *lk;
	const struct persona *p;
	uint64_t now = mono_ms();
	char *text;
	size_t n;

	if (c->state != CALL_LIVE)
		return;
	/* the fifth press before this one was less than a second ago */
	if (r->key_ms[r->key_next] != 0 && now - r->key_ms[r->key_next] < 1000) {
		worker_count(c->w, SC_dtmf_dropped, 1);
		return;
	}
	r->key_ms[r->key_next] = now;
	r->key_next = (r->key_next + 1) % RELAY_KEYS_PER_S;
	lk = c->line != NULL ? line_key(c->line, digit) : NULL;
	switch (lk != NULL ? lk->action : LK_MODEL) {
	case LK_END:
		ctl_log(c, 'i', "key %c: ending the call", digit);
		relay_hangup(c, "the caller ended the call with a key");
		break;
	case LK_REPEAT:
		/* its audio again (a relay call: its text, which Twilio
		 * speaks), else the model is asked to say it once more */
		if (replay_answer(c) == 0 || (c->leg->say_again != NULL &&
		    r->last_answer != NULL && c->leg->say_again(c,
		    r->last_answer) == 0)) {
			ctl_log(c, 'd', "key %c: the last answer again", digit);
			break;
		}
		if (r->last_answer == NULL || relay_model_busy(c)) {
			/* nothing said yet, or something new is being said */
			key_to_model(c, digit);
			break;
		}
		n = strlen(r->last_answer) + 128;
		if ((text = malloc(n)) == NULL)
			break;
		snprintf(text, n, "The caller asked to hear that again. Say exactly "
		    "this, nothing more: %s", r->last_answer);
		relay_say(c, text, 1);
		free(text);
		ctl_log(c, 'd', "key %c: repeating the last answer", digit);
		break;
	case LK_PERSONA:
		p = persona_find(c->w->personas, lk->arg);
		if (p == NULL || p == c->persona || relay_switching(c)) {
			key_to_model(c, digit);
			break;
		}
		n = strlen(p->name ? p->name : p->id) + 160;
		if ((text = malloc(n)) == NULL)
			break;
		snprintf(text, n, "The caller pressed a key to be put through to %s. "
		    "Tell them in one short sentence that you are doing so.",
		    p->name ? p->name : p->id);
		if (relay_switch_persona(c, p, "The caller chose you on the "
		    "keypad.", text) != 0)
			key_to_model(c, digit);
		free(text);
		break;
	case LK_TRANSFER:
		n = strlen(lk->arg) + 160;
		if ((text = malloc(n)) == NULL)
			break;
		snprintf(text, n, "The caller pressed a key to speak with the %s. "
		    "Tell them in one short sentence that you are transferring "
		    "them now.", lk->arg);
		if (relay_transfer(c, lk->arg, text) != 0)
			key_to_model(c, digit);
		free(text);
		break;
	case LK_MODEL:
	default:
		key_to_model(c, digit);
		break;
	}
}

/* ---------------------------------------------------------------- */
/* the persona switch */

int
relay_switch_persona(struct call *c, const struct persona *np,
    const char *intro, const char *handover)
{
	struct relay_ctl *k = &c->relay.ctl;

	if (k->sw != RELAY_SW_NONE || k->limit_reached)
		return -1;
	if ((k->next = upstream_new(c, np)) == NULL)
		return -1;
	c->refs++;
	free(k->intro);
	k->intro = intro != NULL && intro[0] != '\0' ? strdup(intro) : NULL;
	k->next_persona = np;
	k->sw = RELAY_SW_OPENING;
	k->next_open = 0;
	k->handover_done = 0;
	k->handover_response[0] = '\0';
	k->switch_started_ms = mono_ms();
	k->swap_deadline_ms = k->switch_started_ms + SWAP_GRACE_MS;
	ctl_log(c, 'i', "switching to %s (%s)", np->id,
	    np->name ? np->name : np->id);
	k->handover_wanted = 1;
	if (handover == NULL)
		return 0;	/* the response a tool result asks for */
	if (!relay_model_busy(c))
		relay_say(c, handover, 1);
	else {
		/* it is talking: let that be the hand-over */
		vr_strlcpy(k->handover_response, c->relay.active_response,
		    sizeof(k->handover_response));
		k->handover_wanted = 0;
	}
	return 0;
}

int
relay_switching(const struct call *c)
{
	return c->relay.ctl.sw != RELAY_SW_NONE;
}

/*
 * Between turns: the old persona has said its last sentence and the caller
 * has heard it; the next session is open.  It becomes the call's session,
 * is told in one line why, and speaks first.
 */
static double
rollover_minutes(const struct call *c)
{
	return c->line != NULL ? c->line->rollover_minutes :
	    c->w->conf->session_rollover_minutes;
}

/* The session in use nears the model's cap: the same persona opens a
 * fresh one, which takes over at the next turn boundary as a switch does. */
static void
rollover_start(struct call *c, uint64_t now)
{
	struct relay_ctl *k = &c->relay.ctl;

	k->rollover_at_ms = 0;
	if ((k->next = upstream_new(c, c->persona)) == NULL) {
		ctl_log(c, 'w', "no fresh session (out of memory); trying again "
		    "in %d s", ROLLOVER_RETRY_MS / 1000);
		k->rollover_at_ms = now + ROLLOVER_RETRY_MS;
		return;
	}
	c->refs++;
	k->sw_before = k->sw;
	k->sw = RELAY_SW_OPENING;
	k->rollover = 1;
	k->next_persona = c->persona;
	k->next_open = 0;
	k->next_expires = 0;
	k->handover_wanted = 0;
	k->handover_done = 1;		/* no hand-over: a turn boundary will do */
	k->handover_response[0] = '\0';
	k->switch_started_ms = now;
	k->swap_deadline_ms = now + ROLLOVER_GRACE_MS;
	ctl_log(c, 'i', "session rollover after %.2f minutes: opening a fresh "
	    "session", (now - c->start_ms) / 60000.0);
}

/* The fresh session learns the conversation so far, as text items. */
static void
rollover_seed(struct call *c, struct upstream *up)
{
	struct relay *r = &c->relay;
	struct buf *b = relay_scratch();

	if (oa_build_text_item(b, "This phone call continues from an earlier "
	    "session; the conversation so far follows. Go on from where it "
	    "left off; do not greet the caller again.", 1) == 0)
		upstream_send(up, buf_head(b), buf_pending(b));
	for (unsigned i = 0; i < r->nsaid; i++) {
		b = relay_scratch();
		if ((r->said[i].role == 'c' ?
		    oa_build_text_item(b, r->said[i].text, 0) :
		    oa_build_assistant_text_item(b, relay_dialect(c), r->said[i].text,
		    NULL)) == 0)
			upstream_send(up, buf_head(b), buf_pending(b));
	}
	ctl_log(c, 'd', "fresh session seeded with %u lines", r->nsaid);
}

static void
rollover_swap(struct call *c)
{
	struct relay_ctl *k = &c->relay.ctl;
	struct upstream *old = c->up;
	uint64_t now = mono_ms();

	relay_flush_batch(c);		/* what the old session was hearing */
	c->up = k->next;
	k->next = NULL;
	k->sw = k->sw_before;
	k->rollover = 0;
	relay_reset_playback(&c->relay);
	c->relay.session_expires = k->next_expires;
	k->rollover_at_ms = now + (uint64_t)(rollover_minutes(c) * 60000.0);
	worker_count(c->w, SC_session_rollovers, 1);
	record_rollover(c);
	ctl_log(c, 'i', "now on a fresh session (rollover took %llu ms)",
	    (unsigned long long)(now - k->switch_started_ms));
	if (old != NULL)
		upstream_close(old, "session rollover");
}

static void
swap(struct call *c)
{
	struct relay_ctl *k = &c->relay.ctl;
	struct upstream *old = c->up;
	const struct persona *np = k->next_persona;
	struct buf *b;

	if (k->rollover) {
		rollover_swap(c);
		return;
	}
	c->up = k->next;
	k->next = NULL;
	k->sw = RELAY_SW_DONE;
	c->persona = np;
	record_persona(c, np->id);
	relay_reset_playback(&c->relay);
	if (c->slot >= 0)
		shm_call_set_persona(c->w->shm, c->slot, np->id);
	if (k->intro != NULL) {
		b = relay_scratch();
		if (oa_build_text_item(b, k->intro, 1) == 0)
			relay_send_up(c, b);
	}
	relay_say(c, np->greeting, 0);
	ctl_log(c, 'i', "now talking to %s (switch took %llu ms)", np->id,
	    (unsigned long long)(mono_ms() - k->switch_started_ms));
	if (old != NULL)
		upstream_close(old, "persona switch");
}

static void
maybe_swap(struct call *c)
{
	struct relay_ctl *k = &c->relay.ctl;

	if (k->sw != RELAY_SW_OPENING || !k->next_open || c->state != CALL_LIVE)
		return;
	if ((k->handover_done && quiet(c)) || mono_ms() >= k->swap_deadline_ms)
		swap(c);
}

static void
next_open(struct call *c, struct upstream *up)
{
	c->relay.ctl.next_open = 1;
	ctl_log(c, 'd', "next session open (persona %s)", up->persona->id);
	if (c->relay.ctl.rollover)
		rollover_seed(c, up);
	maybe_swap(c);
}

/* ---------------------------------------------------------------- */
/* where the app is told, and the relay's own part of each point */

static void
ctl_response_created(struct call *c, struct oa_msg *m)
{
	struct relay_ctl *k = &c->relay.ctl;

	k->transfer_arm = 0;	/* the hand-over is being said */
	if (k->wrap == RELAY_WRAP_ASKED && k->wrap_response[0] == '\0')
		vr_strlcpy(k->wrap_response, m->response_id, sizeof(k->wrap_response));
	if (k->sw == RELAY_SW_OPENING && k->handover_wanted &&
	    k->handover_response[0] == '\0') {
		vr_strlcpy(k->handover_response, m->response_id,
		    sizeof(k->handover_response));
		k->handover_wanted = 0;
	}
}

static void
ctl_response_done(struct call *c, struct oa_msg *m)
{
	struct relay_ctl *k = &c->relay.ctl;

	if (k->nresults > 0 || k->want_response)
		results_flush(c);
	if (k->wrap == RELAY_WRAP_WANTED) {
		wrapup_request(c);
		return;
	}
	if (k->wrap == RELAY_WRAP_ASKED && strcmp(m->response_id,
	    k->wrap_response) == 0)
		k->wrap_done = 1;
	if (k->sw == RELAY_SW_OPENING && strcmp(m->response_id,
	    k->handover_response) == 0)
		k->handover_done = 1;
	if (c->app->response_done != NULL) {
		c->app->response_done(c, m->response_id);
		if (c->state != CALL_LIVE)
			return;
	}
	on_played(c);
}

/* Every mark echoed, or a response done: is anything waiting for quiet? */
static void
on_played(struct call *c)
{
	struct relay_ctl *k = &c->relay.ctl;

	if (c->state != CALL_LIVE || k->finishing)
		return;
	if (k->wrap == RELAY_WRAP_ASKED && k->wrap_done && quiet(c)) {
		finish(c, "time limit reached");
		return;
	}
	if (k->ending && !k->transfer_arm && quiet(c)) {
		finish(c, k->ending_reason);
		return;
	}
	maybe_swap(c);
	if (c->app->idle != NULL && c->state == CALL_LIVE &&
	    k->sw != RELAY_SW_OPENING && quiet(c))
		c->app->idle(c);
}

/*
 * The relay's own tools, for a tool no app answered: end_call and
 * get_remaining_time work on every line.
 */
static void
builtin_tool(struct call *c, const struct app_tool *t)
{
	struct relay_ctl *k = &c->relay.ctl;
	char out[256];

	if (strcmp(t->name, "get_remaining_time") == 0) {
		uint64_t left = relay_remaining_ms(c, mono_ms());
		if (left == UINT64_MAX)
			snprintf(out, sizeof(out), "{\"minutes_remaining\":null,"
			    "\"seconds_remaining\":null,\"unlimited\":true}");
		else
			snprintf(out, sizeof(out), "{\"minutes_remaining\":%.1f,"
			    "\"seconds_remaining\":%llu,\"free_minutes\":%g}",
			    left / 60000.0, (unsigned long long)(left / 1000),
			    k->quota_minutes);
		relay_tool_result(c, t->call_id, out, 1);
	} else if (strcmp(t->name, "transfer_call") == 0) {
		json_t *a = json_loads(t->args, 0, NULL);
		const char *label = json_string_value(json_object_get(a, "target"));
		if (relay_transfer(c, label, NULL) == 0)
			relay_tool_result(c, t->call_id, "{\"ok\":true}", 0);
		else
			relay_tool_result(c, t->call_id, "{\"error\":\"no transfer "
			    "to that target now; go on helping the caller\"}", 1);
		json_decref(a);
	} else if (strcmp(t->name, "end_call") == 0) {
		/* the persona said goodbye; hang up once the caller heard it */
		relay_tool_result(c, t->call_id, "{\"ok\":true}", 0);
		relay_hangup(c, "the persona ended the call");
	} else
		relay_tool_result(c, t->call_id,
		    "{\"error\":\"this tool is not available\"}", 1);
}

/*
 * The arguments of a tool call, at debug only: what the caller said (names,
 * dates of birth, account digits, addresses) is not for the log at info.
 * A field the persona marks sensitive is never written, at any level, nor
 * arguments that are not a JSON object (nothing tells their fields apart).
 */
static void
log_tool_args(struct call *c, const struct persona *p, const char *tool,
    const char *text)
{
	json_t *args, *v, *shown;
	const char *k;
	char *out;

	if (c->w->conf->log_level < 1)
		return;
	args = json_loads(text, 0, NULL);
	if (!json_is_object(args) || (shown = json_object()) == NULL) {
		ctl_log(c, 'd', "tool call %.64s: arguments are not a JSON "
		    "object (not shown)", tool);
		json_decref(args);
		return;
	}
	json_object_foreach(args, k, v)
		json_object_set_new(shown, k, persona_field_sensitive(p, tool, k) ?
		    json_string("(sensitive)") : json_incref(v));
	out = json_dumps(shown, JSON_COMPACT);
	if (out != NULL)
		ctl_log(c, 'd', "tool call %.64s arguments: %.400s", tool, out);
	free(out);
	json_decref(shown);
	json_decref(args);
}

/* What a tool's result says, for the info line: never its data. */
static void
tool_outcome(const char *output, char *out, size_t outlen)
{
	json_t *j = json_loads(output, 0, NULL);
	const char *err = json_string_value(json_object_get(j, "error"));
	const char *ref = json_string_value(json_object_get(j, "reference"));

	if (err != NULL)
		snprintf(out, outlen, "error: %.80s", err);
	else if (json_is_false(json_object_get(j, "ok")))
		snprintf(out, outlen, "refused");
	else if (ref != NULL)
		snprintf(out, outlen, "done, reference %.32s", ref);
	else
		snprintf(out, outlen, "done");
	json_decref(j);
}

/* ---------------------------------------------------------------- */
/* tools that reach the business */

#define HOOK_FILLER "The system you asked is taking a moment. Tell the " \
    "caller in one short sentence that you are still checking. Do not " \
    "call any tool."

/* "t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">", keyed by secret. */
static int
hook_signature(const char *secret, const char *body, char *out, size_t outlen)
{
	const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	unsigned char mac[32];
	mbedtls_md_context_t md;
	char t[24];
	int n, rc;

	snprintf(t, sizeof(t), "%llu", (unsigned long long)(wall_ms() / 1000));
	mbedtls_md_init(&md);
	rc = info == NULL || mbedtls_md_setup(&md, info, 1) != 0 ||
	    mbedtls_md_hmac_starts(&md, (const unsigned char *)secret,
	    strlen(secret)) != 0 ||
	    mbedtls_md_hmac_update(&md, (const unsigned char *)t, strlen(t)) != 0 ||
	    mbedtls_md_hmac_update(&md, (const unsigned char *)".", 1) != 0 ||
	    mbedtls_md_hmac_update(&md, (const unsigned char *)body,
	    strlen(body)) != 0 || mbedtls_md_hmac_finish(&md, mac) != 0;
	mbedtls_md_free(&md);
	if (rc)
		return -1;
	n = snprintf(out, outlen, "X-Voxrelay-Signature: t=%s,v1=", t);
	for (int i = 0; i < 32 && (size_t)n + 3 < outlen; i++)
		n += snprintf(out + n, outlen - (size_t)n, "%02x", mac[i]);
	return 0;
}

/*
 * Send body (JSON) to the business's webhook h: signed with its secret,
 * with the call's CallSid and h's own headers (their ${NAME} values were
 * filled in when the line was loaded), through the worker's REST client.
 * The answer comes back tagged tag (relay_hook_done() for a tool).
 * 0 sent; -1 not signed; -2 the request could not be started.
 */
static int
hook_send(struct call *c, const struct line_hook *h, const char *body,
    const char *tag)
{
	const char *hdrs[40];
	char sig[160], sid[128];
	size_t n = 0;

	if (hook_signature(h->secret, body, sig, sizeof(sig)) != 0)
		return -1;
	snprintf(sid, sizeof(sid), "X-Voxrelay-Call-Sid: %s", call_sid_of(c));
	hdrs[n++] = "Content-Type: application/json";
	hdrs[n++] = "Expect:";		/* no 100-continue round trip */
	hdrs[n++] = sig;
	hdrs[n++] = sid;
	for (size_t i = 0; h->headers && h->headers[i] && n + 1 < 40; i++)
		hdrs[n++] = h->headers[i];
	hdrs[n] = NULL;
	if (rest_webhook(c->w->rest, h->url, h->method, hdrs, body,
	    h->timeout_ms, call_sid_of(c), c->id, tag) != 0)
		return -2;
	return 0;
}

/* Post the tool's arguments to the business; the answer comes back in
 * relay_hook_done().  1 when sent (or answered with an error now). */
static int
hook_start(struct call *c, const struct line_hook *h, const struct app_tool *t)
{
	struct relay_ctl *k = &c->relay.ctl;
	struct relay_hook_wait *hw = NULL;
	json_t *args, *doc;
	char *body;
	int rc;

	for (int i = 0; i < RELAY_HOOKS; i++)
		if (k->hooks[i].call_id[0] == '\0') {
			hw = &k->hooks[i];
			break;
		}
	args = json_loads(t->args, 0, NULL);
	doc = json_pack("{s:s,s:s,s:s,s:o}", "call_sid", call_sid_of(c), "line",
	    c->tok.route, "caller", c->tok.caller, "arguments",
	    args != NULL ? args : json_string(t->args));
	body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	rc = hw != NULL && body != NULL ? hook_send(c, h, body, t->call_id) : -1;
	free(body);
	if (rc != 0) {
		relay_tool_result(c, t->call_id, rc == -1 ?
		    "{\"error\":\"the business system is busy; try again in a "
		    "moment\"}" : "{\"error\":\"the business system cannot be "
		    "reached\"}", 1);
		return 1;
	}
	worker_count(c->w, SC_webhook_calls, 1);
	vr_strlcpy(hw->call_id, t->call_id, sizeof(hw->call_id));
	hw->filler_at_ms = h->filler_ms > 0 ? mono_ms() + (uint64_t)h->filler_ms : 0;
	return 1;
}

void
relay_hook_done(struct call *c, const struct rest_done *d)
{
	struct relay_ctl *k = &c->relay.ctl;
	struct relay_hook_wait *hw = NULL;
	json_t *ans = NULL;
	char *out = NULL, err[160];

	for (int i = 0; i < RELAY_HOOKS; i++)
		if (k->hooks[i].call_id[0] != '\0' &&
		    strcmp(k->hooks[i].call_id, d->tag) == 0)
			hw = &k->hooks[i];
	if (hw == NULL || c->state != CALL_LIVE)
		return;
	hw->call_id[0] = '\0';
	if (d->ok && (ans = json_loadb(d->body, d->body_len, 0, NULL)) != NULL)
		out = json_dumps(ans, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(ans);
	if (out == NULL) {
		/* what the model can explain; the details are for the log */
		worker_count(c->w, SC_webhook_failed, 1);
		snprintf(err, sizeof(err), "{\"error\":\"the business system %s\"}",
		    !d->ok && strcmp(d->error, "timed out") == 0 ?
		    "did not answer in time" : d->ok || strcmp(d->error,
		    "answer too large") == 0 ? "gave an answer that cannot be read" :
		    "could not be reached");
		ctl_log(c, 'w', "webhook for tool call %s: %s (HTTP %ld)", d->tag,
		    d->ok ? "the answer is not JSON" : d->error, d->status);
		relay_tool_result(c, d->tag, err, 1);
	} else {
		relay_tool_result(c, d->tag, out, 1);
		free(out);
	}
	/* the response that called it is long done: send now, unless a
	 * filler is being said (its response.done sends it) */
	if (!relay_model_busy(c))
		results_flush(c);
}

/* A webhook is slow: the model says a filler line, once per tool call. */
static void
hook_tick(struct call *c, uint64_t now)
{
	struct relay_ctl *k = &c->relay.ctl;

	for (int i = 0; i < RELAY_HOOKS; i++) {
		struct relay_hook_wait *hw = &k->hooks[i];
		if (hw->call_id[0] == '\0' || hw->filler_at_ms == 0 ||
		    now < hw->filler_at_ms || relay_model_busy(c) || k->ending)
			continue;
		hw->filler_at_ms = 0;
		worker_count(c->w, SC_webhook_fillers, 1);
		relay_say(c, HOOK_FILLER, 1);
	}
}

static void
tool_call(struct call *c, struct oa_msg *m)
{
	struct app_tool t = { m->name, m->call_id, m->text };
	struct relay_ctl *k = &c->relay.ctl;
	const struct persona *p = c->persona;
	unsigned before = k->nresults;
	char outcome[128] = "answered later";
	uint64_t t0 = mono_us();

	const struct line_hook *h;

	worker_count(c->w, SC_tool_calls, 1);
	log_tool_args(c, p, m->name, m->text);
	/* a tool the business answers itself */
	if (c->line != NULL && (h = line_hook_find(c->line, m->name)) != NULL)
		hook_start(c, h, &t);
	else if (c->app->tool_call == NULL || !c->app->tool_call(c, &t)) {
		if (c->state == CALL_LIVE)
			builtin_tool(c, &t);
	}
	if (k->nresults > before)
		tool_outcome(k->results[k->nresults - 1].output, outcome,
		    sizeof(outcome));
	/* the name comes from the model: bounded */
	ctl_log(c, 'i', "tool call %.64s by %s: %s", m->name, p->id, outcome);
	record_tool(c, m->name, m->text, outcome, (mono_us() - t0) / 1000);
}

void
relay_call_started(struct call *c)
{
	c->relay.ctl.rollover_at_ms = mono_ms() +
	    (uint64_t)(rollover_minutes(c) * 60000.0);
	record_call_started(c);
	if (c->app->started != NULL)
		c->app->started(c);
}

void
relay_call_ended(struct call *c)
{
	const struct relay_ctl *k = &c->relay.ctl;

	if (c->app->ended != NULL)
		c->app->ended(c);
	/* a relay call is handed over by its `end` (the <Connect action>
	 * dials), which goes out as the call closes */
	if (c->leg->ends_itself && k->transfer != NULL && !k->limit_reached)
		record_transfer(c, k->transfer->number != NULL ?
		    k->transfer->number : k->transfer->sip);
	record_ended(c);
}

/* The greeting that was waiting for the callee, said now. */
static void
greet_now(struct call *c, const char *why)
{
	const char *gr = c->persona->greeting;
	char *g = call_fill(c, gr);

	c->greet_at_ms = 0;
	log_set_call(call_sid_of(c));
	log_debug("greeting: %s; the model speaks first", why);
	log_set_call(NULL);
	if (gr != NULL)
		relay_say(c, g ? g : gr, 0);
	free(g);
}

void
relay_amd(struct call *c, const char *answered_by)
{
	log_set_call(call_sid_of(c));
	log_info("outbound: answered by %s", answered_by);
	log_set_call(NULL);
	if (strcmp(answered_by, "human") != 0 || c->amd_human)
		return;
	c->amd_human = 1;
	/* a session not open yet greets at once when it opens; one waiting
	 * out the pause greets now; one whose callee spoke already has its
	 * answer under way */
	if (c->greet_at_ms != 0 && c->state == CALL_LIVE)
		greet_now(c, "a human answered");
}

void
relay_tick(struct call *c, uint64_t now)
{
	struct relay *r = &c->relay;
	struct relay_ctl *k = &r->ctl;

	if (r->session_expires != 0 &&
	    wall_ms() / 1000 + EXPIRY_MARGIN_S >= r->session_expires) {
		ctl_log(c, 'i', "openai session expires at %llu; ending the call",
		    (unsigned long long)r->session_expires);
		call_close(c, "openai session expired", 0, 1000);
		return;
	}
	if (k->finishing) {
		if (now >= k->finish_deadline_ms) {
			ctl_log(c, 'w', "twilio has not taken the call update in "
			    "%d s; closing the stream", FINISH_WAIT_MS / 1000);
			call_close(c, k->finish_reason, 0, 1000);
		}
		return;
	}
	if (!k->limit_reached && k->limit_at_ms != 0 && now >= k->limit_at_ms) {
		limit_reached(c, now);
		return;
	}
	if (k->rollover_at_ms != 0 && now >= k->rollover_at_ms &&
	    k->sw != RELAY_SW_OPENING && !k->ending && !k->limit_reached)
		rollover_start(c, now);
	if (k->limit_reached && now >= k->wrap_deadline_ms) {
		finish(c, "time limit reached");
		return;
	}
	if (k->ending && now >= k->ending_deadline_ms) {
		finish(c, k->ending_reason);
		return;
	}
	if (c->greet_at_ms != 0 && now >= c->greet_at_ms)
		greet_now(c, "the callee said nothing for the pause");
	hook_tick(c, now);
	if (c->app->tick != NULL) {
		c->app->tick(c, now);
		if (c->state != CALL_LIVE)
			return;
	}
	maybe_swap(c);
}

static const char *
call_var(void *arg, const char *name, size_t len)
{
	char key[40];

	if (len >= sizeof(key))
		return NULL;
	memcpy(key, name, len);
	key[len] = '\0';
	return json_string_value(json_object_get(arg, key));
}

char *
call_fill(const struct call *c, const char *s)
{
	if (c->outvars == NULL || s == NULL || strstr(s, "{{") == NULL)
		return NULL;
	return tmpl_fill(s, call_var, c->outvars);
}
