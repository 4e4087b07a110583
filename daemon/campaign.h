/*
 * campaign.h — campaigns: lists of contacts the master calls on a
 * schedule (campaign.c).
 *
 * CAMPAIGNS_DIR holds one JSON file per campaign (its name is the id) and
 * the contacts CSV it names.  config_build() loads them, so start, SIGHUP
 * and `voxrelay -t` refuse the same mistakes.  Each contact's state lives
 * in the store (schema version 3): the master reads it all at start, then
 * keeps it in memory and writes every change through.
 *
 * With DATABASE_URL a campaign's contacts may be a table instead
 * ("contacts": {"table": ..., "schema": ...}).  Loading the file only
 * checks the name; the master reads the rows on the store's thread (at
 * start and on each reload) and `voxrelay -t` reads them at once
 * (campaign_check_tables()), both through the same checks as a CSV's.
 */
#ifndef VR_CAMPAIGN_H
#define VR_CAMPAIGN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"
#include "proto/tz.h"

#define CAMP_ID_MAX		64
#define CAMP_MAX		64	/* campaigns in the directory */
#define CAMP_CONTACTS_MAX	100000	/* contacts in one campaign */
#define CAMP_WINDOWS_MAX	8
#define CAMP_OUTCOME_MAX	24

/* the outcomes retry_minutes names, in its order */
enum camp_retry { CR_NO_ANSWER, CR_BUSY, CR_VOICEMAIL, CR_FAILED, CR__N };

enum camp_state { CS_PENDING, CS_CALLING, CS_RETRY, CS_DONE, CS_EXHAUSTED };

struct camp_window {
	int		 from, to;	/* minutes of the day; to may be 1440 */
};

struct camp_contact {
	char		 phone[SHM_PHONE_MAX];
	char		 name[128];
	char		 tzname[TZ_NAME_MAX];
	const struct tz	*zone;		/* NULL: unknown, never dialled */
	json_t		*vars;		/* the CSV's other columns */
	int		 line;		/* in the CSV */

	enum camp_state	 state;
	int		 attempts;	/* made, the one calling included */
	char		 outcome[CAMP_OUTCOME_MAX];	/* of the last attempt */
	json_t		*detail;	/* the arrangement, or NULL */
	uint64_t	 retry_at;	/* wall ms, for CS_RETRY */
	char		 sid[SHM_SID_MAX];	/* the last attempt's call */
	int		 machine;	/* AMD said a machine */
	int		 busy;		/* being marked or created */
	uint64_t	 calling_since;	/* mono ms */
	/* what the attempt being marked replaces, should the mark fail */
	enum camp_state	 prev_state;
	char		 prev_outcome[CAMP_OUTCOME_MAX];
};

struct campaign {
	char		 id[CAMP_ID_MAX];
	char		*file;
	char		 line[33];
	double		 every_minutes;
	uint64_t	 every_ms;
	struct camp_window windows[CAMP_WINDOWS_MAX];
	int		 nwindows;
	struct camp_window quiet;
	int		 max_attempts;
	double		 retry_minutes[CR__N];
	int		 calls_per_minute;
	int		 max_concurrent;
	/* a contacts table (DATABASE_URL): its name, "" for a CSV */
	char		 table[64];
	char		 schema[64];	/* "": the search_path's */
	json_t		*need;		/* the variables the line's templates
					 * use, in order */
	int		 reading;	/* its table is being read: nothing of
					 * it is dialled meanwhile */
	int		 reread;	/* the last read found the database
					 * down: read again */
	uint64_t	 read_gen;	/* of the read on its way */
	struct camp_contact *ct;
	size_t		 nct;
	size_t		*byphone;	/* indexes of ct in order of phone */
	/* why each contact is not dialled now (NULL: it may be), apart from
	 * ct: written every pass, and the workers forked from the master
	 * share ct's pages until one is written (copying 100000 contacts'
	 * pages cost a first pass 380 ms) */
	const char	**waits;

	/* the schedule */
	int		 paused;
	int		 in_pass;
	size_t		 cursor;
	uint64_t	 next_pass;	/* mono ms */
	uint64_t	 passes;
	uint64_t	 pass_us;	/* the loop's time in this pass */
	uint64_t	*starts;	/* mono ms of the last calls_per_minute
					 * calls, a ring */
	size_t		 nstarts;
};

struct camp_zone {
	char		 name[TZ_NAME_MAX];
	struct tz	*tz;		/* NULL: unknown */
	char		 why[160];
};

struct campaign_set {
	struct campaign	*v;
	size_t		 n;
	struct camp_zone *zones;
	size_t		 nzones;
};

struct line_set;
struct persona_set;

/* Load every *.json of dir (a missing directory is no campaign) into cs.
 * 0, or the number of problems, one per line in err ("file: field:
 * problem").  Contacts whose time zone is unknown are kept and never
 * dialled; each such zone is said once in warn.  have_pg: DATABASE_URL
 * is set, so contacts may be a table (whose rows are not read here). */
int  campaign_set_load(struct campaign_set *cs, const char *dir,
    const struct line_set *ls, const struct persona_set *ps, int have_pg,
    char *err, size_t errlen, char *warn, size_t warnlen);
struct store_cfg;
/* `voxrelay -t`: read every contacts table of cs now (blocking) and check
 * its columns and rows as a CSV's.  0, or the number of problems in err
 * as campaign_set_load() says them. */
int  campaign_check_tables(const struct campaign_set *cs,
    const struct store_cfg *sc, char *err, size_t errlen, char *warn,
    size_t warnlen);
void campaign_set_free(struct campaign_set *cs);

/* ---- the master ---- */
struct master;
struct conn;
struct http_req;

/* After the store started: read the contacts' state, then schedule. */
void campaign_start(struct master *m);
/* m->campaigns was just replaced by a reload: keep what old knew of each
 * contact, free old, and run a first pass. */
void campaign_reloaded(struct master *m, struct campaign_set *old);
/* outbound.c: the call for (campaign, phone) was created as sid, or
 * (sid NULL) not created. */
void campaign_created(struct master *m, const char *campaign,
    const char *phone, const char *sid);
/* callcheck.c: the call of (campaign, phone), left calling with no
 * CallSid by the last run, was found at Twilio as sid (created at
 * created_ms, wall), or (sid NULL) was not: the contact adopts it and
 * Twilio is asked how it went, or its attempt is spent as unknown. */
void campaign_adopt(struct master *m, const char *campaign,
    const char *phone, const char *sid, uint64_t created_ms);
/* outbound.c: a status callback (the record's status names) and an AMD
 * verdict of any call. */
void campaign_call_status(struct master *m, const char *sid,
    const char *status);
void campaign_call_amd(struct master *m, const char *sid, const char *by);
/* outbound.c: sid is the call of a contact still calling (one the run
 * before a restart placed, say). */
int  campaign_call_known(struct master *m, const char *sid);
/* master.c: an "outcome" record from a worker (a line's tool decided how
 * the call went). */
void campaign_call_outcome(struct master *m, const json_t *rec);
/* /api/campaigns... on the operator's listener. */
void campaign_api(struct conn *c, struct http_req *r);

#endif
