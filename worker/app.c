/*
 * app.c — the table of apps; see app.h.  Adding an app is a file of its
 * own (app_<name>.c) and one line here.
 */
#include "worker/app.h"

#include <string.h>

static const struct app *const apps[] = {
	&app_practice,
	&app_agent,
};

static const char *const names[] = {
	"practice",
	"agent",
	NULL,
};

const struct app *
app_find(const char *name)
{
	for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
		if (strcmp(apps[i]->name, name) == 0)
			return apps[i];
	return NULL;
}

const struct app *
app_default(void)
{
	/* a route without a line of its own runs as it always has */
	return &app_practice;
}

const char *const *
app_names(void)
{
	return names;
}
