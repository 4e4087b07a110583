/*
 * config.c — see config.h.
 */
#include "daemon/config.h"
#include "worker/app.h"

#include <stdio.h>
#include <string.h>

int
config_build(const char *path, struct conf *cf, struct persona_set *ps,
    struct line_set *ls, struct campaign_set *cs, char *err, size_t errlen,
    char *warn, size_t warnlen)
{
	size_t n;
	int nerr;

	memset(ps, 0, sizeof(*ps));
	memset(ls, 0, sizeof(*ls));
	memset(cs, 0, sizeof(*cs));
	if (warnlen > 0)
		warn[0] = '\0';
	if (conf_load(path, cf, err, errlen) != 0) {
		n = strlen(err);
		snprintf(err + n, errlen - n, "configuration %s has errors\n",
		    path ? path : "(environment)");
		return 1;
	}
	nerr = persona_set_load(ps, cf->personas_dir,
	    (enum oa_dialect)cf->openai_dialect, err, errlen, warn, warnlen);
	if (nerr != 0) {
		n = strlen(err);
		snprintf(err + n, errlen - n, "personas in %s have errors\n",
		    cf->personas_dir);
		conf_free(cf);
		return nerr;
	}
	nerr = line_set_load(ls, cf->lines_dir, cf, ps, app_names(), err, errlen);
	if (nerr != 0) {
		n = strlen(err);
		snprintf(err + n, errlen - n, "lines in %s have errors\n",
		    cf->lines_dir);
		persona_set_free(ps);
		conf_free(cf);
		return nerr;
	}
	if (line_find(ls, cf->default_route) == NULL &&
	    persona_find(ps, cf->default_route) == NULL) {
		snprintf(err, errlen, "DEFAULT_ROUTE: no line or persona \"%s\" "
		    "(LINES_DIR %s, PERSONAS_DIR %s)\n", cf->default_route,
		    cf->lines_dir, cf->personas_dir);
		config_free(cf, ps, ls, cs);
		return 1;
	}
	n = strlen(warn);
	nerr = campaign_set_load(cs, cf->campaigns_dir, ls, ps,
	    cf->database_url != NULL && cf->database_url[0] != '\0', err, errlen,
	    warn + n, warnlen - n);
	if (nerr != 0) {
		n = strlen(err);
		snprintf(err + n, errlen - n, "campaigns in %s have errors\n",
		    cf->campaigns_dir);
		config_free(cf, ps, ls, cs);
		return nerr;
	}
	/* a campaign keeps each contact's state in the store: without the
	 * call records it could only dial every contact again at each start */
	if (cs->n > 0 && !cf->call_records) {
		snprintf(err, errlen, "CALL_RECORDS=false, but CAMPAIGNS_DIR %s "
		    "holds %zu campaign%s, which keep%s their contacts' state in "
		    "the call records: set CALL_RECORDS=true or move the "
		    "campaign files out\n", cf->campaigns_dir, cs->n,
		    cs->n == 1 ? "" : "s", cs->n == 1 ? "s" : "");
		config_free(cf, ps, ls, cs);
		return 1;
	}
	return 0;
}

void
config_free(struct conf *cf, struct persona_set *ps, struct line_set *ls,
    struct campaign_set *cs)
{
	campaign_set_free(cs);
	line_set_free(ls);
	persona_set_free(ps);
	conf_free(cf);
}
